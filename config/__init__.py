"""relsync configuration: one YAML file, validated by pydantic models (``config.loader``, ``config.schema``).

Nothing is imported here, so that a module of this package (``config.store_url``) is cheap to load alone.
"""

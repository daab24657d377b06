"""relsync configuration: one YAML file, validated by pydantic models."""
from config.loader import ConfigError, load_config
from config.schema import Config

__all__ = ["Config", "ConfigError", "load_config"]

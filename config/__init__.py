"""relsync configuration: one YAML file, validated by pydantic models."""
from config.loader import ConfigError, load_config, load_config_text, secret
from config.schema import CONVERTERS, Config, JiraSource, Train

__all__ = [
    "CONVERTERS",
    "Config",
    "ConfigError",
    "JiraSource",
    "Train",
    "load_config",
    "load_config_text",
    "secret",
]

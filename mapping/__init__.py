"""Declarative mapping between source records and the normalized ChangeRequest."""
from mapping.converters import CONVERTERS, ConversionError
from mapping.fields import MappingError, SourceMapping, read_path
from mapping.model import PRIORITIES, STATUSES, ChangeRequest

__all__ = [
    "CONVERTERS",
    "PRIORITIES",
    "STATUSES",
    "ChangeRequest",
    "ConversionError",
    "MappingError",
    "SourceMapping",
    "read_path",
]

"""Source record -> ChangeRequest, driven by the configured field mapping."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mapping.converters import ConversionError, convert, describe, map_key
from mapping.model import PRIORITIES, STATUSES, ChangeRequest, SourceRecord

if TYPE_CHECKING:
    # Types only: config.schema imports mapping.model, so a runtime import would be circular.
    from config.schema import FieldMap, FieldMapping, WriteTargets

__all__ = ["MappingError", "SourceMapping", "read_path"]

_ABSENT = object()

# Normalized fields whose values come from a fixed vocabulary, even without a value table.
_VOCABULARIES: dict[str, tuple[str, ...]] = {"status": STATUSES, "priority": PRIORITIES}


class MappingError(Exception):
    """A source record the configured mapping cannot translate: a configuration problem.

    ``path`` is the config key path to fix, ``record`` the record's native key or id,
    ``value`` the source value that could not be mapped (None when absent).
    """

    def __init__(self, path: str, problem: str, *, record: str | None = None, value: Any = None) -> None:
        self.path = path
        self.problem = problem
        self.record = record
        self.value = value
        super().__init__(f"{path}: {problem}")


def read_path(raw: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``raw`` (``fields.fixVersions.0.name``), or None.

    Integer segments index lists; anything absent or null along the way gives None.
    """
    current = raw
    for segment in path.split("."):
        if isinstance(current, dict):
            current = current.get(segment, _ABSENT)
        elif isinstance(current, list) and segment.isdecimal() and segment.isascii():
            index = int(segment)
            current = current[index] if index < len(current) else _ABSENT
        else:
            return None
        if current is _ABSENT or current is None:
            return None
    return current


class SourceMapping:
    """The field mapping of one configured source, applied to its records."""

    def __init__(
        self,
        source_name: str,
        system: str,
        fields: FieldMapping,
        write: WriteTargets,
        config_path: str | None = None,
    ) -> None:
        self.source_name = source_name
        self.system = system
        self.fields = fields
        self.write = write
        self.config_path = config_path or f"sources.{source_name}"
        self._specs: list[tuple[str, FieldMap]] = [
            (name, spec)
            for name in type(fields).model_fields
            if (spec := getattr(fields, name)) is not None
        ]

    @classmethod
    def for_source(cls, source_name: str, source: Any) -> SourceMapping:
        """The mapping of a configured source (any kind: it needs kind, fields, write)."""
        return cls(source_name, source.kind, source.fields, source.write)

    def source_paths(self) -> list[str]:
        """The dotted source paths this mapping reads, in field order, without repeats."""
        return list(dict.fromkeys(spec.path for _, spec in self._specs))

    def source_status_for(self, normalized_status: str) -> str | None:
        """The source's own status name the engine writes for ``normalized_status``, if any."""
        return self.write.status.get(normalized_status)

    def release_field(self) -> str | None:
        """The source field the release name is written to, if releases are written back."""
        return self.write.release.field if self.write.release is not None else None

    def status_from_source(self, source_status: str) -> str:
        """The relsync status a source status name reads as on a pull (map, then default)."""
        _, status = self._translate("status", self.fields.status, source_status, None)
        if status is None:
            raise MappingError(f"{self.config_path}.fields.status", "an empty source status has no relsync status")
        return status

    def normalize(self, record: SourceRecord) -> ChangeRequest:
        """Translate one source record; raises MappingError naming the key to fix."""
        ref = record.native_key or record.native_id
        values: dict[str, str | None] = {}
        source_status: str | None = None
        for name, spec in self._specs:
            before, after = self._read(name, spec, record.raw, ref)
            values[name] = after
            if name == "status":
                source_status = before
        for required in ("title", "status"):
            if not values.get(required):
                spec = getattr(self.fields, required)
                raise MappingError(
                    f"{self.config_path}.fields.{required}",
                    f"record {ref} has no value at {spec.path!r} and no default is set",
                    record=ref,
                )
        return ChangeRequest(
            key=f"{self.source_name}:{ref}",
            source=self.source_name,
            system=self.system,
            native_id=record.native_id,
            native_key=record.native_key,
            url=record.url,
            title=values["title"] or "",
            description=values.get("description"),
            type=values.get("type"),
            department=values.get("department"),
            requester=values.get("requester"),
            owner=values.get("owner"),
            priority=values.get("priority"),
            status=values["status"] or "",
            source_status=source_status,
            release=values.get("release"),
            affected=values.get("affected"),
            created_at=values.get("created_at"),
            updated_at=values.get("updated_at"),
            source_version=record.version,
            raw=record.raw,
        )

    def _read(self, name: str, spec: FieldMap, raw: dict[str, Any], ref: str) -> tuple[str | None, str | None]:
        """(source value before the value table, normalized value) for one field."""
        key_path = f"{self.config_path}.fields.{name}"
        found = read_path(raw, spec.path)
        if spec.convert is not None:
            try:
                found = convert(spec.convert, found)
            except ConversionError as error:
                raise MappingError(
                    f"{key_path}.convert",
                    f"record {ref}: the value at {spec.path!r} cannot be converted: {error}",
                    record=ref,
                    value=found,
                ) from None
        if isinstance(found, (dict, list)):
            raise MappingError(
                f"{key_path}.path",
                f"{spec.path!r} on record {ref} is {describe(found)}, not a single value; "
                "point the path at one of its keys or add a converter (names, join, first)",
                record=ref,
                value=found,
            )
        return self._translate(name, spec, None if found is None else map_key(found), ref)

    def _translate(
        self, name: str, spec: FieldMap, value: str | None, ref: str | None
    ) -> tuple[str | None, str | None]:
        """(value, normalized value) through the field's value table and default."""
        key_path = f"{self.config_path}.fields.{name}"
        on_record = f" on record {ref}" if ref else ""
        if value is None or not value.strip():
            return None, spec.default
        if spec.map is None:
            vocabulary = _VOCABULARIES.get(name)
            if vocabulary is None or value in vocabulary:
                return value, value
            if spec.default is not None:
                return value, spec.default
            raise MappingError(
                f"{key_path}.map",
                f"source value {value!r}{on_record} is not a relsync {name} "
                f"({', '.join(vocabulary)}) and there is no map or default to translate it",
                record=ref,
                value=value,
            )
        if value in spec.map:
            return value, spec.map[value]
        if spec.default is not None:
            return value, spec.default
        raise MappingError(
            f"{key_path}.map",
            f"source value {value!r}{on_record} is not mapped and no default is set; "
            f"add it to the map (mapped now: {', '.join(map(repr, spec.map)) or 'nothing'})",
            record=ref,
            value=value,
        )

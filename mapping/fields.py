"""Source record -> ChangeRequest, driven by the configured field mapping."""
from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from mapping.converters import ConversionError, convert, describe, map_key, references
from mapping.model import PRIORITIES, STATUSES, ChangeRequest, SourceRecord
from mapping.readers import FieldReader, field_reader, path_reader, read_path

if TYPE_CHECKING:
    # Types only: config.schema imports mapping.model, so a runtime import would be circular.
    from config.schema import FieldMap, FieldMapping, WriteTargets

__all__ = ["MappingError", "SourceMapping", "read_path"]

# Normalized fields whose values come from a fixed vocabulary, even without a value table.
_VOCABULARIES: dict[str, tuple[str, ...]] = {"status": STATUSES, "priority": PRIORITIES}


class MappingError(Exception):
    """A source value the configured mapping cannot translate.

    When one record is at fault, ``record`` is its request key (``airtable:recX``) and
    ``field`` the source field path (``fields.Title``): the message starts with both,
    and sync quarantines that record while the rest of its source goes on. ``path`` is
    the config key path that translates the value, ``value`` the source value (None
    when absent). Without a record the error is the configuration's alone.
    """

    def __init__(
        self, path: str, problem: str, *, record: str | None = None, field: str | None = None, value: Any = None
    ) -> None:
        self.path = path
        self.problem = problem
        self.record = record
        self.field = field
        self.value = value
        where = " ".join(part for part in (record, field) if part) or path
        super().__init__(f"{where}: {problem}")


def shown_value(value: Any) -> str | None:
    """A written field's value as relsync compares it: text, a select's option value, or None when empty."""
    if isinstance(value, dict):
        value = value.get("value", value.get("name"))
    if value is None or value == "" or isinstance(value, (dict, list)):
        return None
    return str(value)


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
        prefix = "" if system == "salesforce" else "fields."  # Jira and Airtable nest a record's fields
        self._target_paths = {f"source_{name}": prefix + target.field for name, target in write.field_targets().items()}
        self._readers: list[tuple[str, FieldMap, FieldReader | None]] = [
            (name, spec, None if name == "depends_on" else field_reader(name, spec, _VOCABULARIES.get(name)))
            for name, spec in self._specs
        ]
        self._target_readers = [(column, path_reader(path)) for column, path in self._target_paths.items()]
        self._fingerprint: str | None = None

    @classmethod
    def for_source(cls, source_name: str, source: Any) -> SourceMapping:
        """The mapping of a configured source (any kind: it needs kind, fields, write)."""
        return cls(source_name, source.kind, source.fields, source.write)

    def source_paths(self) -> list[str]:
        """The dotted source paths this mapping reads, in field order, without repeats (written fields last)."""
        read = [path for _, spec in self._specs for path in [spec.path, *getattr(spec, "also", [])]]
        return list(dict.fromkeys([*read, *self.target_paths().values()]))

    def target_paths(self) -> dict[str, str]:
        """Where each plain field relsync writes (the planned date, the phase) is read back: column -> dotted path."""
        return dict(self._target_paths)

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
        """Translate one source record; raises MappingError naming the record and the field."""
        ref = record.native_key or record.native_id
        key = f"{self.source_name}:{ref}"
        values: dict[str, str | None] = {}
        source_status: str | None = None
        raw = record.raw
        for name, spec, reader in self._readers:
            read = reader(raw) if reader is not None else None
            # No answer from the reader: the value is refused (or is depends_on); _read says why.
            before, after = read if read is not None else self._read(name, spec, raw, key)
            values[name] = after
            if name == "status":
                source_status = before
        for required in ("title", "status"):
            if not values.get(required):
                raise MappingError(
                    f"{self.config_path}.fields.{required}",
                    "required value is missing",
                    record=key,
                    field=getattr(self.fields, required).path,
                )
        shown = {column: shown_value(read(raw)) for column, read in self._target_readers}
        return ChangeRequest(
            key=key,
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
            depends_on=values.get("depends_on"),
            created_at=values.get("created_at"),
            updated_at=values.get("updated_at"),
            source_version=record.version,
            raw=record.raw,
            source_planned_date=shown.get("source_planned_date"),
            source_phase=shown.get("source_phase"),
        )

    def fingerprint(self) -> str:
        """A digest of what ``normalize`` depends on: it changes when the field mapping does."""
        if self._fingerprint is None:  # the fields are frozen config: worked out once, asked on every page
            content = json.dumps([self.source_name, self.fields.model_dump(mode="json")], sort_keys=True)
            self._fingerprint = hashlib.sha256(content.encode()).hexdigest()
        return self._fingerprint

    def _read(self, name: str, spec: FieldMap, raw: dict[str, Any], key: str) -> tuple[str | None, str | None]:
        """(source value before the value table, normalized value) for one field of record ``key``."""
        key_path = f"{self.config_path}.fields.{name}"
        found = read_path(raw, spec.path)
        if name == "depends_on":
            refs: list[str] = []
            for index, path in enumerate([spec.path, *getattr(spec, "also", [])]):
                value = found if index == 0 else read_path(raw, path)
                try:
                    refs += references(value, getattr(spec, "link_types", None) if index == 0 else None)
                except ConversionError as error:
                    where = f"{key_path}.path" if index == 0 else f"{key_path}.also.{index - 1}"
                    raise MappingError(where, str(error), record=key, field=path, value=value) from None
            return (", ".join(dict.fromkeys(refs)) or None,) * 2
        if spec.convert is not None:
            try:
                found = convert(spec.convert, found)
            except ConversionError as error:
                raise MappingError(
                    f"{key_path}.convert", str(error), record=key, field=spec.path, value=found
                ) from None
        if isinstance(found, (dict, list)):
            raise MappingError(
                f"{key_path}.path",
                f"holds {describe(found)}, not a single value; point {key_path}.path at one of its keys "
                "or add a converter (person_name, person_email, names, join, first)",
                record=key,
                field=spec.path,
                value=found,
            )
        return self._translate(name, spec, None if found is None else map_key(found), key)

    def _translate(
        self, name: str, spec: FieldMap, value: str | None, key: str | None
    ) -> tuple[str | None, str | None]:
        """(value, normalized value) through the field's value table and default.

        ``key`` is the record the value came from (None: a value relsync wrote itself).
        """
        key_path = f"{self.config_path}.fields.{name}"
        if value is None or not value.strip():
            return None, spec.when_empty if spec.when_empty is not None else spec.default
        if spec.map is None:
            vocabulary = _VOCABULARIES.get(name)
            if vocabulary is None or value in vocabulary:
                return value, value
            if spec.default is not None:
                return value, spec.default
            problem = (
                f"source value {value!r} is not a relsync {name} ({', '.join(vocabulary)}) "
                f"and {key_path} has no map or default to translate it"
            )
        elif value in spec.map:
            return value, spec.map[value]
        elif spec.default is not None:
            return value, spec.default
        else:
            problem = (
                f"source value {value!r} is not mapped and no default is set; add it to {key_path}.map "
                f"(mapped now: {', '.join(map(repr, spec.map)) or 'nothing'})"
            )
        raise MappingError(
            f"{key_path}.map", problem, record=key, field=spec.path if key else None, value=value
        )

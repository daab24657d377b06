"""List records: parameters (query string or listRecords body), filter, sort, pages, offsets.

Paging follows Airtable's model: the first request runs the query and, if there is more
than one page, opens a server-side iterator; its ``offset`` (``itr…/rec…``, the shape
Airtable hands out) names the iterator and the next record. Later pages walk the ids
matched when the iterator opened and render each record as it is now, so edits made
during paging neither skip nor repeat records; records deleted meanwhile are left out.
Airtable does not document what an iterator sees; this snapshot model is the sandbox's
reading of "iterator" and of the documented expiry (422 LIST_RECORDS_ITERATOR_NOT_AVAILABLE,
after which "it may then restart iteration from the beginning").
"""
from __future__ import annotations

import functools
import re
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

import flask

from sandboxes.airtable.cells import context, render, resolve_field, sort_key
from sandboxes.airtable.data import AirtableState, Table, airtable_id
from sandboxes.airtable.formula import FormulaError, compile_formula
from sandboxes.airtable.formula_eval import matches
from sandboxes.airtable.http import (
    AirtableError,
    error,
    flag,
    invalid_formula,
    invalid_request,
    query_array,
)

MAX_PAGE_SIZE = 100
MAX_ITERATORS = 256
_SORT_KEY = re.compile(r"sort\[(\d+)\]\[(field|direction)\]$")
_OFFSET = re.compile(r"(itr[0-9A-Za-z]{14})/(rec[0-9A-Za-z]{14})$")


@dataclass
class ListOptions:
    """The list-records parameters, whichever way they came."""

    page_size: int = MAX_PAGE_SIZE
    max_records: int | None = None
    offset: str | None = None
    fields: list[str] | None = None
    formula: str | None = None
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    view: str | None = None
    cell_format: str = "json"
    time_zone: str | None = None
    user_locale: str | None = None
    by_field_id: bool = False
    comment_count: bool = False


@dataclass
class RecordIterator:
    """An open listing: the ids it matched, and the page starts it has handed out."""

    id: str
    table_id: str
    ids: list[str]
    used: float
    cursors: dict[str, int] = field(default_factory=dict)


def _integer(raw: Any, low: int, high: int | None) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise invalid_request() from None
    if isinstance(raw, float) and not raw.is_integer() or value < low or (high is not None and value > high):
        raise invalid_request()
    return value


def _sort_entries(raw: Any) -> list[tuple[str, bool]]:
    if not isinstance(raw, list):
        raise invalid_request()
    entries = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("field"), str):
            raise invalid_request()
        direction = item.get("direction", "asc")
        if direction not in ("asc", "desc"):
            raise invalid_request()
        entries.append((item["field"], direction == "desc"))
    return entries


def _finish(options: ListOptions, raw: dict[str, Any]) -> ListOptions:
    if raw.get("pageSize") is not None:
        options.page_size = _integer(raw["pageSize"], 1, MAX_PAGE_SIZE)
    if raw.get("maxRecords") is not None:
        options.max_records = _integer(raw["maxRecords"], 1, None)
    for name, attribute in (("offset", "offset"), ("filterByFormula", "formula"), ("view", "view")):
        if raw.get(name) is not None:
            if not isinstance(raw[name], str):
                raise invalid_request()
            setattr(options, attribute, raw[name])
    if raw.get("cellFormat") is not None:
        options.cell_format = str(raw["cellFormat"])
    if options.cell_format not in ("json", "string"):
        raise invalid_request()
    if options.cell_format == "string":
        # Airtable requires timeZone and userLocale with string cells; the sandbox renders json only.
        if options.time_zone and options.user_locale:
            raise invalid_request("cellFormat=string is not supported by the relsync sandbox")
        raise invalid_request()
    if options.time_zone is not None:
        try:
            zoneinfo.ZoneInfo(options.time_zone)
        except (ValueError, zoneinfo.ZoneInfoNotFoundError):
            raise invalid_request() from None
    if raw.get("returnFieldsByFieldId") is not None:
        options.by_field_id = flag(raw["returnFieldsByFieldId"])
    return options


def options_from_query() -> ListOptions:
    """``GET /v0/{base}/{table}``: parameters from the query string."""
    args = flask.request.args
    sorts: dict[int, dict[str, str]] = {}
    for key in args:
        match = _SORT_KEY.match(key)
        if match:
            sorts.setdefault(int(match.group(1)), {})[match.group(2)] = args[key]
    metadata = query_array("recordMetadata") or []
    options = ListOptions(fields=query_array("fields"), sort=_sort_entries([sorts[i] for i in sorted(sorts)]),
                          time_zone=args.get("timeZone"), user_locale=args.get("userLocale"),
                          comment_count="commentCount" in metadata)
    return _finish(options, {k: args[k] for k in args if not k.endswith("]")})


def options_from_body(body: dict[str, Any]) -> ListOptions:
    """``POST /v0/{base}/{table}/listRecords``: parameters from the JSON body.

    pyairtable switches to this form when the GET URL would reach 16,000 characters, and
    keeps ``timeZone``/``userLocale`` in the query string, which is where they are read.
    """
    args = flask.request.args
    fields = body.get("fields")
    if fields is not None and (not isinstance(fields, list) or not all(isinstance(f, str) for f in fields)):
        raise invalid_request()
    metadata = body.get("recordMetadata") or []
    if not isinstance(metadata, list):
        raise invalid_request()
    options = ListOptions(fields=fields, sort=_sort_entries(body.get("sort") or []), time_zone=args.get("timeZone"),
                          user_locale=args.get("userLocale"), comment_count="commentCount" in metadata)
    return _finish(options, body)


def iterator_unavailable() -> AirtableError:
    """422 LIST_RECORDS_ITERATOR_NOT_AVAILABLE, as observed: a type and no message."""
    return error(422, "LIST_RECORDS_ITERATOR_NOT_AVAILABLE")


def invalid_offset(offset: str) -> AirtableError:
    """422 INVALID_OFFSET_VALUE for an offset that is no iterator's, in Airtable's words."""
    return error(422, "INVALID_OFFSET_VALUE", f"The value of offset {offset} is invalid")


def _check_view(table: Table, view: str | None) -> None:
    if view is None or view in (table.view_id, table.view_name):
        return
    if view.startswith("viw"):
        raise error(422, "VIEW_ID_NOT_FOUND", f'View "{view}" not found')
    raise error(422, "VIEW_NAME_NOT_FOUND", f'View "{view}" not found')


def _matching_ids(state: AirtableState, table: Table, options: ListOptions) -> list[str]:
    records = list(table.records.values())
    if options.formula and options.formula.strip():
        try:
            formula = compile_formula(options.formula, lambda name: table.field(name) is not None)
        except FormulaError as failure:
            raise invalid_formula(failure.detail) from None
        now = state.clock.peek()
        records = [r for r in records if matches(formula, context(state, table, r, now))]
    if options.sort:
        records.sort(key=lambda r: r.id)  # the final tie-break
        for key, descending in reversed(options.sort):
            found = resolve_field(table, key)
            records.sort(key=functools.partial(sort_key, state, table, found), reverse=descending)
    ids = [r.id for r in records]
    return ids[:options.max_records] if options.max_records else ids


def _resume(state: AirtableState, table: Table, offset: str) -> tuple[RecordIterator, int]:
    match = _OFFSET.match(offset)
    if match is None:
        raise invalid_offset(offset)
    iterator = state.iterators.get(match.group(1))
    if iterator is None or iterator.table_id != table.id:
        raise iterator_unavailable()
    if state.iterator_ttl is not None and state.clock.source.monotonic() - iterator.used > state.iterator_ttl:
        del state.iterators[iterator.id]
        raise iterator_unavailable()
    start = iterator.cursors.get(match.group(2))
    if start is None:
        raise iterator_unavailable()
    return iterator, start


def _open(state: AirtableState, table: Table, ids: list[str]) -> RecordIterator:
    state.iterators_made += 1
    iterator = RecordIterator(airtable_id("itr", state.seed, state.iterators_made), table.id, ids, state.clock.source.monotonic())
    state.iterators[iterator.id] = iterator
    while len(state.iterators) > MAX_ITERATORS:  # like a server restart for the oldest
        state.iterators.popitem(last=False)
    return iterator


def list_page(state: AirtableState, table: Table, options: ListOptions) -> dict[str, Any]:
    """One page of ``table`` for ``options``: ``{"records": [...], "offset"?}``."""
    only = None
    if options.fields is not None:
        only = {resolve_field(table, key).id for key in options.fields}
    with state.lock:
        if options.offset:
            iterator, start = _resume(state, table, options.offset)
            ids = iterator.ids
        else:
            _check_view(table, options.view)
            ids, start, iterator = _matching_ids(state, table, options), 0, None
        page = ids[start:start + options.page_size]
        records = [render(state, table, table.records[rid], by_id=options.by_field_id, only=only,
                          comment_count=options.comment_count) for rid in page if rid in table.records]
        body: dict[str, Any] = {"records": records}
        following = start + options.page_size
        if following < len(ids):
            iterator = iterator or _open(state, table, ids)
            iterator.cursors[ids[following]] = following
            iterator.used = state.clock.source.monotonic()
            state.iterators.move_to_end(iterator.id)
            body["offset"] = f"{iterator.id}/{ids[following]}"
        return body


def expire_iterators(state: AirtableState) -> int:
    """Forget every open iterator (their offsets answer 422 from now on); how many there were."""
    with state.lock:
        count = len(state.iterators)
        state.iterators.clear()
        return count


__all__ = [
    "ListOptions", "expire_iterators", "invalid_offset", "iterator_unavailable", "list_page", "options_from_body",
    "options_from_query",
]

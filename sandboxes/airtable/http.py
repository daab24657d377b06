"""Airtable's error bodies and request parsing, shared by the sandbox's route modules.

Bodies are the ones Airtable sends (see the test module's docstring for where each was
checked): most errors are ``{"error": {"type", "message"}}``, an unknown route is the bare
``{"error": "NOT_FOUND"}``, and a rate-limited request gets ``{"errors": [...]}``.
"""
from __future__ import annotations

import json
from typing import Any

import flask

from sandboxes.airtable.data import AirtableState, Field, Table

STATE_KEY = "relsync_sandbox_airtable"
PARAMETERS_INVALID = "Invalid request: parameter validation failed. Check your request data."
NO_MODEL = ("Invalid permissions, or the requested model was not found. Check that both your user and your token "
            "have the required permissions, and that the model names and/or ids are correct.")
FORMULA_INVALID = "The formula for filtering records is invalid: "
RETRIABLE = "Server encountered an error while processing your request, and it is safe to retry the request"


class AirtableError(Exception):
    """An error answer: HTTP status and Airtable's JSON body."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}

    def response(self) -> flask.Response:
        """The Flask response for this error."""
        response = flask.jsonify(self.body)
        response.status_code = self.status
        for name, value in self.headers.items():
            response.headers[name] = value
        return response


def error(status: int, kind: str, message: str | None = None) -> AirtableError:
    """The object-form error ``{"error": {"type", "message"}}``."""
    body: dict[str, Any] = {"type": kind}
    if message is not None:
        body["message"] = message
    return AirtableError(status, {"error": body})


def invalid_request(message: str = PARAMETERS_INVALID) -> AirtableError:
    """422 INVALID_REQUEST_UNKNOWN, Airtable's answer to parameters it cannot use."""
    return error(422, "INVALID_REQUEST_UNKNOWN", message)


def route_not_found() -> AirtableError:
    """404 for a path Airtable serves nothing at."""
    return AirtableError(404, {"error": "NOT_FOUND"})


def no_model() -> AirtableError:
    """403 for a base or table the token cannot see (or that does not exist)."""
    return error(403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND", NO_MODEL)


def record_not_found() -> AirtableError:
    """404 for a record id in the path that is not in the table."""
    return error(404, "MODEL_ID_NOT_FOUND", "Record not found")


def row_missing(record_id: str) -> AirtableError:
    """422 for a record id in a batch body that is not in the table."""
    return error(422, "ROW_DOES_NOT_EXIST", f"Record ID {record_id} does not exist in this table")


def unknown_field(name: str) -> AirtableError:
    """422 UNKNOWN_FIELD_NAME."""
    return error(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{name}"')


def invalid_formula(detail: str) -> AirtableError:
    """422 INVALID_FILTER_BY_FORMULA."""
    return error(422, "INVALID_FILTER_BY_FORMULA", FORMULA_INVALID + detail)


def cannot_accept(field: Field) -> AirtableError:
    """422 INVALID_VALUE_FOR_COLUMN for a value of the wrong shape."""
    return error(422, "INVALID_VALUE_FOR_COLUMN", f'Field "{field.name}" cannot accept the provided value')


def state_of(app: flask.Flask) -> AirtableState:
    """The Airtable state of a sandbox app."""
    return app.extensions[STATE_KEY]


def current_state() -> AirtableState:
    """The Airtable state of the app serving this request."""
    return state_of(flask.current_app)


def require_table(state: AirtableState, base_id: str, table: str) -> Table:
    """The table named (or id'd) in the path, or Airtable's 403."""
    found = state.table(table) if base_id == state.base_id else None
    if found is None:
        raise no_model()
    return found


def read_body() -> dict[str, Any]:
    """The JSON object in the request body; 400 if it is not one."""
    raw = flask.request.get_data(as_text=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise error(400, "INVALID_REQUEST_UNKNOWN", "Could not parse request body") from None
    if not isinstance(body, dict):
        raise invalid_request()
    return body


def query_array(name: str) -> list[str] | None:
    """An array query parameter: ``name[]`` (repeatable), or ``name`` given at least twice.

    Airtable's parser is lenient about repeating the bare name but reads a single bare
    ``name=x`` as a string, which fails validation (Airtable community, "Error
    requesting a single field"; pyairtable issue #94 for ``records=``).
    """
    args = flask.request.args
    if f"{name}[]" in args:
        return args.getlist(f"{name}[]") + args.getlist(name)
    values = args.getlist(name)
    if not values:
        return None
    if len(values) == 1:
        raise invalid_request()
    return values


def flag(value: Any) -> bool:
    """A boolean parameter from a query string ("true", "1") or a JSON body."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str) and value.lower() in ("true", "1", "false", "0", ""):
        return value.lower() in ("true", "1")
    raise invalid_request()


__all__ = [
    "AirtableError", "cannot_accept", "current_state", "error", "flag", "invalid_formula", "invalid_request",
    "no_model", "query_array", "read_body", "record_not_found", "require_table", "route_not_found", "row_missing",
    "state_of", "unknown_field",
]

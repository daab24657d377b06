"""One vcrpy setup for every replay test: credentials filtered, record mode ``none`` in CI.

``RELSYNC_RECORD=all python -m pytest -k replays`` records the cassettes anew from the
live sandboxes (delete the old cassette first: "all" keeps interactions it no longer
plays, and replay checks that every recorded one is played).
"""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import vcr

CASSETTES = Path(__file__).parent / "cassettes"
RECORD_MODE = os.environ.get("RELSYNC_RECORD", "none")
NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
"""The replayed runs' clock: release dates, and so the writes, depend on it."""


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """Drop noisy headers; replace any OAuth access token or signature in a token answer."""
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() in ("set-cookie", "date", "server"):
            del headers[name]
    body = response.get("body", {}).get("string")
    if body and b'"access_token"' in (body if isinstance(body, bytes) else body.encode()):
        answer = json.loads(body)
        answer.update(access_token="FILTERED", signature="FILTERED")
        response["body"]["string"] = json.dumps(answer).encode()
        for name in [n for n in headers if n.lower() == "content-length"]:
            headers[name] = [str(len(response["body"]["string"]))]
    return response


recorder = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode=RECORD_MODE,
    match_on=["method", "path", "query", "body"],
    filter_headers=["authorization", "cookie"],
    filter_post_data_parameters=["client_id", "client_secret", "refresh_token"],
    before_record_response=scrub_response,
    decode_compressed_response=True,
)

"""Test knobs of the Jira sandbox, under ``/_sandbox/jira/`` (never authenticated or counted).

- ``GET|POST config {"timezone"?, "short_pages"?, "index_lag_seconds"?}``: the account's
  profile time zone; search pages cut at ``SHORT_PAGE_BYTES`` of issue JSON (Jira does not
  promise full pages); how far the search index trails writes (0: not at all).
- ``POST expire-tokens``: every outstanding nextPageToken answers 400 from now on.
- ``POST edit-during-paging {"edits": [{"issue", "fields"|"update"}]}`` (or ``"issues"``
  and ``"fields"``): apply these edits just before the next search page is served.
- ``GET issues/{key}``: an issue with every field and its changelog.
- ``POST people {"name", "email"}``: an account for a person, with an API token, so a test
  edits issues as that person through the real client (the changelog names them).
"""
from __future__ import annotations

import secrets
import zoneinfo
from typing import Any

import flask

from sandboxes.core import controls, sandbox_route
from sandboxes.jira.data import JiraState
from sandboxes.jira.edit import edit_issue
from sandboxes.jira.http import find_issue_or_404, root_url
from sandboxes.jira.render import issue_json, select_fields


def settings(state: JiraState) -> dict[str, Any]:
    """The Jira settings a test can read and change."""
    with state.lock:
        return {"timezone": state.timezone, "short_pages": state.short_pages,
                "index_lag_seconds": state.index.lag_seconds}


def register_knobs(app: flask.Flask, state: JiraState) -> None:
    """Add the Jira knobs to ``app``; its settings also show in ``GET /_sandbox/config``."""
    controls(app).vendor_config = lambda: settings(state)

    @sandbox_route(app, "/jira/config", methods=["GET", "POST"])
    def jira_config() -> flask.Response | tuple[flask.Response, int]:
        """GET or POST /_sandbox/jira/config: profile time zone, short pages, index lag."""
        if flask.request.method == "POST":
            body = flask.request.get_json(silent=True) or {}
            lag = body.get("index_lag_seconds", state.index.lag_seconds)
            if isinstance(lag, bool) or not isinstance(lag, (int, float)) or lag < 0:
                return flask.jsonify({"error": "index_lag_seconds is a number of seconds, 0 or more"}), 400
            with state.lock:
                if "timezone" in body:
                    try:
                        zoneinfo.ZoneInfo(str(body["timezone"]))
                    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
                        return flask.jsonify({"error": f"unknown time zone {body['timezone']!r}"}), 400
                    state.timezone = str(body["timezone"])
                if "short_pages" in body:
                    state.short_pages = bool(body["short_pages"])
                if lag != state.index.lag_seconds:
                    state.index.set_lag(float(lag))
        return flask.jsonify(settings(state))

    @sandbox_route(app, "/jira/expire-tokens", methods=["POST"])
    def expire_tokens() -> flask.Response:
        """POST /_sandbox/jira/expire-tokens: every outstanding page token stops working."""
        with state.lock:
            state.token_generation += 1
        return flask.Response(status=204)

    @sandbox_route(app, "/jira/edit-during-paging", methods=["POST"])
    def edit_during_paging() -> tuple[flask.Response, int]:
        """POST /_sandbox/jira/edit-during-paging: edit issues just before the next search page."""
        body = flask.request.get_json(silent=True) or {}
        edits = body.get("edits") or [{"issue": key, "fields": body.get("fields") or {}} for key in body.get("issues", [])]
        if not edits:
            return flask.jsonify({"error": "give 'edits': [{'issue', 'fields'|'update'}] or 'issues' and 'fields'"}), 400

        def apply() -> None:
            """Apply the edits as the sandbox editor account."""
            with state.lock:
                for change in edits:
                    issue = state.find_issue(str(change["issue"]))
                    if issue is not None:
                        payload = {k: change[k] for k in ("fields", "update") if k in change}
                        edit_issue(state, issue, payload, api="3", author=state.editor)

        controls(app).schedule("jira.search.next_page", apply)
        return flask.jsonify({"scheduled": len(edits)}), 202

    @sandbox_route(app, "/jira/people", methods=["POST"])
    def add_person() -> tuple[flask.Response, int]:
        """POST /_sandbox/jira/people: a person's account and API token (Basic email:token, as any Jira user)."""
        body = flask.request.get_json(silent=True) or {}
        name, email = str(body.get("name") or "").strip(), str(body.get("email") or "").strip()
        if not name or "@" not in email:
            return flask.jsonify({"error": "give 'name' and 'email'"}), 400
        with state.lock:
            user = state.add_user(name, email)
            token = state.people_tokens.setdefault(email.lower(), secrets.token_urlsafe(24))
        return flask.jsonify({"accountId": user.account_id, "displayName": user.name, "email": email,
                              "token": token}), 201

    @sandbox_route(app, "/jira/issues/<key>", methods=["GET"])
    def raw_issue(key: str) -> flask.Response:
        """GET /_sandbox/jira/issues/{key}: the issue with every field and its changelog."""
        with state.lock:
            issue = find_issue_or_404(state, key)
            fields = select_fields(None, default="*all")
            return flask.jsonify(issue_json(state, issue, root=root_url(), api="3", fields=fields, expand={"changelog"}))


__all__ = ["register_knobs"]

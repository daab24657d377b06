"""A Salesforce REST API fake (OAuth token endpoint, Versions, Limits, describe, SOQL query,
sObject Rows, sObject Collections, Composite, Get Updated/Deleted) over HTTPS, for tests and the demo.

The real simple-salesforce client talks to it unchanged; relsync fetches tokens from
``/services/oauth2/token`` itself (simple-salesforce's own OAuth helpers only reach
``https://<domain>.salesforce.com``). Behaviours and their sources are listed in
tests/sandbox/test_salesforce_sandbox.py. State lives on the app:
``app.extensions["relsync_sandbox_salesforce"]`` is the
:class:`~sandboxes.salesforce.data.SalesforceState`.

Defaults are Salesforce's ("real"): an access token idle longer than the session
timeout (2 hours) answers 401 INVALID_SESSION_ID; a query cursor is good for 2 days;
query batches come back larger or smaller than the ``batchSize`` asked, the same for
the same query and seed. ``behaviour="kind"`` gives sessions and cursors that never
expire and batches of exactly the size asked. ``GET|POST /_sandbox/salesforce/config``
reads and changes these (they also show under "salesforce" in ``GET /_sandbox/config``).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import ssl
from typing import Any

import flask
import trustme

from sandboxes.behaviour import REAL
from sandboxes.clock import SYSTEM_TIME, TimeSource
from sandboxes.core import make_app
from sandboxes.salesforce.composite import register_composite_route
from sandboxes.salesforce.data import SalesforceState
from sandboxes.salesforce.http import (
    API_VERSIONS,
    NOT_FOUND,
    STATE_KEY,
    SalesforceHttpError,
    authorized,
    fault_body,
    render_error,
    root_url,
    sf_error,
    throttled,
    unauthorized,
    versions_body,
)
from sandboxes.salesforce.knobs import register_knobs
from sandboxes.salesforce.query import register_query_routes
from sandboxes.salesforce.records import register_record_routes
from sandboxes.salesforce.schema import (
    GLOBAL_TYPES,
    describe_object,
    global_entry,
)
from sandboxes.serving import RunningSandbox, serve

SANDBOX_USERNAME = "relsync@example.com"
OBJECT_NAME = "Case"
RECORD_TYPE = "Change Request"
_API_PREFIX = "/services/data/v"
MAX_REQUEST_BYTES = 16_384


def create_salesforce_app(
    *, records: int = 200, seed: int = 7, client_id: str, client_secret: str, object_name: str = OBJECT_NAME,
    daily_limit: int = 15000, username: str = SANDBOX_USERNAME, password: str | None = None,
    time_source: TimeSource = SYSTEM_TIME, behaviour: str = REAL,
) -> flask.Flask:
    """A Salesforce org sandbox seeded with ``records`` change requests of ``object_name``.

    Args:
        records: how many change requests to seed (Cases of record type "Change Request",
            or Change_Request__c records); a few "Support" Cases are added beside them.
        seed: the data seed (same seed, same records, ids and timestamps).
        client_id, client_secret: the connected app's consumer key and secret.
        object_name: ``Case`` or ``Change_Request__c``: which object holds the requests.
        daily_limit: the org's daily API request allocation (Sforce-Limit-Info).
        username, password: credentials for the username-password grant (off when password is None).
        time_source: the org's time (rate limits, modstamps, token issue times, session and
            cursor expiry); the machine's clock unless a test passes a :class:`~sandboxes.clock.ManualTime`.
        behaviour: "real" (the default) or "kind" (see the module docstring).
    """
    state = SalesforceState(records=records, seed=seed, client_id=client_id, client_secret=client_secret,
                            object_name=object_name, daily_limit=daily_limit, username=username, password=password,
                            time_source=time_source, behaviour=behaviour)
    app = make_app("salesforce", auth=authorized(state), unauthorized=unauthorized, throttled=throttled,
                   fault_body=fault_body, time_source=time_source, behaviour=behaviour)
    app.extensions[STATE_KEY] = state
    _register_errors(app)
    _register_quota(app, state)
    _register_oauth(app, state)
    _register_meta_routes(app, state)
    register_query_routes(app, state)
    register_record_routes(app, state)
    register_composite_route(app, state)
    register_knobs(app, state)
    return app


def _register_errors(app: flask.Flask) -> None:
    app.register_error_handler(SalesforceHttpError, render_error)

    @app.before_request
    def request_size() -> flask.Response | None:
        """URI and headers together take at most 16,384 bytes: 414 when the URI alone is over, else 431
        (Salesforce Help 000386264, "Maximum number of rows returned by SOQL queries over the REST API")."""
        uri = len(flask.request.environ.get("RAW_URI") or flask.request.full_path)
        headers = sum(len(name) + len(value) + 4 for name, value in flask.request.headers.items())
        if uri > MAX_REQUEST_BYTES:
            return flask.Response("URI Too Long", status=414, mimetype="text/plain")
        if uri + headers > MAX_REQUEST_BYTES:
            return flask.Response("Request Header Fields Too Large", status=431, mimetype="text/plain")
        return None

    @app.errorhandler(404)
    def no_resource(_: Exception) -> flask.Response:
        """No such resource: NOT_FOUND in Salesforce's body."""
        return render_error(sf_error(404, "NOT_FOUND", NOT_FOUND))

    @app.errorhandler(405)
    def no_method(error: Any) -> flask.Response:
        """A method the resource does not take."""
        allowed = [m for m in (getattr(error, "valid_methods", None) or []) if m not in ("OPTIONS",)]
        message = f"HTTP Method '{flask.request.method}' not allowed. Allowed are {','.join(allowed)}"
        return render_error(sf_error(405, "METHOD_NOT_ALLOWED", message))

    @app.after_request
    def json_charset(response: flask.Response) -> flask.Response:
        """Salesforce names the charset on every JSON answer."""
        if response.mimetype == "application/json" and "charset" not in response.content_type:
            response.content_type = "application/json;charset=UTF-8"
        return response


def _register_quota(app: flask.Flask, state: SalesforceState) -> None:
    @app.before_request
    def count_api_request() -> flask.Response | None:
        """Check the API version, then charge the daily allocation (403 REQUEST_LIMIT_EXCEEDED when spent)."""
        if not flask.request.path.startswith(_API_PREFIX) or not flask.g.get("relsync_counted"):
            return None
        version = (flask.request.view_args or {}).get("version")
        if version is not None and version not in API_VERSIONS:
            return render_error(sf_error(404, "NOT_FOUND", NOT_FOUND))
        flask.g.relsync_sf_limited = True
        with state.lock:
            if state.quota.used >= state.quota.max:
                return render_error(sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
            state.quota.used += 1
        return None

    @app.after_request
    def limit_info(response: flask.Response) -> flask.Response:
        """Sforce-Limit-Info on every REST answer (not on Versions or the token endpoint)."""
        if flask.g.get("relsync_sf_limited"):
            with state.lock:
                response.headers["Sforce-Limit-Info"] = f"api-usage={state.quota.used}/{state.quota.max}"
        return response


def _oauth_error(error: str, description: str, status: int = 400) -> SalesforceHttpError:
    return SalesforceHttpError(status, {"error": error, "error_description": description})


def _client(state: SalesforceState) -> tuple[str, str]:
    form = flask.request.form
    client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
    auth = flask.request.authorization
    if auth is not None and auth.type == "basic":
        client_id, client_secret = auth.username or "", auth.password or ""
    if client_id != state.client_id:
        raise _oauth_error("invalid_client_id", "client identifier invalid")
    return client_id, client_secret


def _register_oauth(app: flask.Flask, state: SalesforceState) -> None:
    @app.post("/services/oauth2/token")
    def token() -> flask.Response:
        """POST /services/oauth2/token: client_credentials, password or refresh_token grants."""
        grant = flask.request.form.get("grant_type")
        if grant not in ("client_credentials", "password", "refresh_token"):
            raise _oauth_error("unsupported_grant_type", "grant type not supported")
        _, secret = _client(state)
        with state.lock:
            if grant == "refresh_token":
                if flask.request.form.get("refresh_token") not in state.sessions.refresh:
                    raise _oauth_error("invalid_grant", "expired access/refresh token")
                if secret and secret != state.client_secret:
                    raise _oauth_error("invalid_client", "invalid client credentials")
            elif secret != state.client_secret:
                raise _oauth_error("invalid_client", "invalid client credentials")
            if grant == "password":
                form = flask.request.form
                if state.password is None or form.get("username") != state.username or form.get("password") != state.password:
                    raise _oauth_error("invalid_grant", "authentication failure")
            access = state.issue_token()
            identity = f"{root_url()}/id/{state.org_id}/{state.integration_user}"
        issued = str(int(state.clock.source.utc().timestamp() * 1000))
        signature = base64.b64encode(hmac.new(state.client_secret.encode(), (identity + issued).encode(),
                                              hashlib.sha256).digest()).decode()
        body = {"access_token": access, "signature": signature, "scope": "api", "instance_url": root_url(),
                "id": identity, "token_type": "Bearer", "issued_at": issued}
        return flask.jsonify(body)


def _register_meta_routes(app: flask.Flask, state: SalesforceState) -> None:
    @app.get("/services/data/", strict_slashes=False)
    def versions() -> flask.Response:
        """GET /services/data/: the API versions served (public)."""
        return flask.jsonify(versions_body())

    @app.get("/services/data/v<version>/", strict_slashes=False)
    def resources(version: str) -> flask.Response:
        """GET /services/data/vXX.X/: the resources of a version."""
        base = f"/services/data/v{version}"
        names = ("sobjects", "query", "queryAll", "limits", "composite")
        return flask.jsonify({name: f"{base}/{name}" for name in names})

    @app.get("/services/data/v<version>/limits/", strict_slashes=False)
    def limits(version: str) -> flask.Response:
        """GET limits/: DailyApiRequests and a few neighbours."""
        with state.lock:
            used, top = state.quota.used, state.quota.max
        return flask.jsonify({
            "DailyApiRequests": {"Max": top, "Remaining": max(0, top - used)},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
            "DataStorageMB": {"Max": 1024, "Remaining": 1000},
            "SingleEmail": {"Max": 5000, "Remaining": 5000},
        })

    @app.get("/services/data/v<version>/sobjects/", strict_slashes=False)
    def describe_global(version: str) -> flask.Response:
        """GET sobjects/: describeGlobal."""
        base = f"/services/data/v{version}"
        objects = [global_entry(state.catalog[name.lower()], base) for name in GLOBAL_TYPES]
        return flask.jsonify({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": objects})

    @app.get("/services/data/v<version>/sobjects/<name>/", strict_slashes=False)
    def basic_info(version: str, name: str) -> flask.Response:
        """GET sobjects/{type}/: objectDescribe and recentItems."""
        obj = state.sobject(name)
        if obj is None:
            raise sf_error(404, "NOT_FOUND", NOT_FOUND)
        return flask.jsonify({"objectDescribe": global_entry(obj, f"/services/data/v{version}"), "recentItems": []})

    @app.get("/services/data/v<version>/sobjects/<name>/describe/", strict_slashes=False)
    def describe(version: str, name: str) -> flask.Response:
        """GET sobjects/{type}/describe/: fields, picklist values, record types."""
        obj = state.sobject(name)
        if obj is None:
            raise sf_error(404, "NOT_FOUND", NOT_FOUND)
        base = f"/services/data/v{version}"
        record_types: list[dict[str, Any]] = []
        if obj.name == "Case":
            for row in state.tables["RecordType"].values():
                record_types.append({
                    "active": True, "available": True, "defaultRecordTypeMapping": row["Id"] == state.change_type,
                    "developerName": row["DeveloperName"], "master": False, "name": row["Name"],
                    "recordTypeId": row["Id"], "urls": {"layout": f"{base}/sobjects/Case/describe/layouts/{row['Id']}"},
                })
        return flask.jsonify(describe_object(obj, base, record_types))


def start_salesforce(records: int, seed: int, *, time_source: TimeSource = SYSTEM_TIME,
                     behaviour: str = REAL) -> tuple[RunningSandbox, dict[str, Any]]:
    """Serve a seeded Salesforce sandbox over HTTPS with its own CA; return it and its description."""
    client_id = "3MVG9" + secrets.token_urlsafe(60)
    client_secret = secrets.token_urlsafe(48)
    app = create_salesforce_app(records=records, seed=seed, client_id=client_id, client_secret=client_secret,
                                time_source=time_source, behaviour=behaviour)
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    running = serve(app, ssl_context=context)
    description = {
        "url": running.url,
        "env": {"RELSYNC_SF_CLIENT_ID": client_id, "RELSYNC_SF_CLIENT_SECRET": client_secret},
        "object": OBJECT_NAME,
        "record_type": RECORD_TYPE,
        "ca_pem": authority.cert_pem.bytes().decode(),
    }
    return running, description


def sandbox_state(app: flask.Flask) -> SalesforceState:
    """The org state of an app built by :func:`create_salesforce_app`."""
    return app.extensions[STATE_KEY]



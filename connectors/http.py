"""HTTP session details shared by the connectors."""
from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter


class _PinnedCA(HTTPAdapter):
    """Verifies TLS against one CA bundle whatever the environment says.

    requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override ``session.verify``
    when a call passes no ``verify`` of its own, which is how the client libraries
    call. Pinning at the adapter keeps the configured ``ca_bundle`` in force and
    leaves the environment's proxy settings alone.
    """

    def __init__(self, ca_bundle: str) -> None:
        super().__init__()
        self.ca_bundle = ca_bundle

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if kwargs.get("verify") is not False:
            kwargs["verify"] = self.ca_bundle
        return super().send(request, **kwargs)


def trust(session: requests.Session, ca_bundle: str | None) -> requests.Session:
    """Make ``session`` verify HTTPS against ``ca_bundle`` (if one is configured)."""
    if ca_bundle:
        session.verify = ca_bundle
        session.mount("https://", _PinnedCA(ca_bundle))
    return session

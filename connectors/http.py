"""HTTP session details shared by the connectors: the CA bundle to trust, and a default timeout."""
from __future__ import annotations

from collections.abc import Mapping

import requests
from requests.adapters import HTTPAdapter

Timeout = float | tuple[float, float] | tuple[float, None] | None
Cert = bytes | str | tuple[bytes | str, bytes | str] | None

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a connection: a host that does not answer the handshake is down, not slow."""


def timeouts(read: float) -> tuple[float, float]:
    """(connect, read) timeouts for requests: a short connect, the configured read."""
    return (min(CONNECT_TIMEOUT, read), read)


class _Adapter(HTTPAdapter):
    """Verifies TLS against one CA bundle whatever the environment says, and times out a silent server.

    requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override ``session.verify``
    when a call passes no ``verify`` of its own, which is how the client libraries
    call. Pinning at the adapter keeps the configured ``ca_bundle`` in force and
    leaves the environment's proxy settings alone. A client library that passes no
    timeout (simple-salesforce) gets ``timeout``: without one a stalled connection hangs the run.
    """

    def __init__(self, ca_bundle: str | None, timeout: Timeout) -> None:
        super().__init__()
        self.ca_bundle = ca_bundle
        self.timeout = timeout

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Timeout = None,
        verify: bool | str = True,
        cert: Cert = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        if self.ca_bundle and verify is not False:
            verify = self.ca_bundle
        if timeout is None:
            timeout = self.timeout
        return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)


def trust(session: requests.Session, ca_bundle: str | None, *, timeout: Timeout = None) -> requests.Session:
    """Make ``session`` verify HTTPS against ``ca_bundle`` (if one is configured), and time out after ``timeout``."""
    if ca_bundle:
        session.verify = ca_bundle
    if ca_bundle or timeout is not None:
        adapter = _Adapter(ca_bundle, timeout)
        session.mount("https://", adapter)
        if timeout is not None:
            session.mount("http://", adapter)
    return session

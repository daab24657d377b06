"""Running sandboxes in-process: each app on its own free port of 127.0.0.1, in a daemon thread.

Nothing here prints; werkzeug's per-request log lines are switched off, and callers
decide what to tell the user (``describe()`` has everything a client needs).
"""
from __future__ import annotations

import ssl
import threading
from types import TracebackType
from typing import Any

import flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    """A request handler that keeps werkzeug's access log off stderr."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log(self, *args: Any, **kwargs: Any) -> None:
        pass


class RunningSandbox:
    """A sandbox app being served; ``url`` is its base URL. Stop it, or use ``with``."""

    def __init__(self, app: flask.Flask, server: BaseWSGIServer, thread: threading.Thread, scheme: str) -> None:
        self.app = app
        self._server = server
        self._thread = thread
        self.url = f"{scheme}://127.0.0.1:{server.server_port}"

    def stop(self) -> None:
        """Stop serving and wait for the server thread to end."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()


def serve(app: flask.Flask, *, ssl_context: ssl.SSLContext | tuple[str, str] | None = None) -> RunningSandbox:
    """Serve ``app`` on 127.0.0.1 on a free port, threaded, in a daemon thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler, ssl_context=ssl_context)
    # A client that connects and resets before the server accepts (a runner killed mid-request) leaves the
    # listening socket readable with nothing to accept: a blocking accept() would then wait for the next
    # client forever, and stop() with it. With a timeout, accept() gives up and serve_forever goes on.
    server.socket.settimeout(1.0)
    # A short poll interval keeps stop() quick; the default half second adds up in tests.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"sandbox-{app.name}", daemon=True)
    thread.start()
    return RunningSandbox(app, server, thread, "https" if ssl_context else "http")

"""The sandboxes' in-process server: it always stops, even after a client reset before it accepted."""
from __future__ import annotations

import threading

import flask

from sandboxes.serving import serve


def test_an_accept_with_nothing_to_accept_gives_up_so_the_server_can_stop():
    app = flask.Flask("serving-test")
    running = serve(app)
    try:
        # What serve_forever does once its poll saw a connection that was reset before accept():
        # accept on the listening socket with nothing there. It must come back, not block for good.
        done = threading.Event()
        worker = threading.Thread(target=lambda: (running._server._handle_request_noblock(), done.set()), daemon=True)
        worker.start()
        assert done.wait(timeout=10), "accept() blocked: stop() would wait for the next client forever"
    finally:
        running.stop()
    assert not running._thread.is_alive()

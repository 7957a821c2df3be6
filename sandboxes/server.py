"""Runs a sandbox's WSGI app on 127.0.0.1 in a background thread (tests) or in the foreground (CLI)."""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from flask import Flask, jsonify
from werkzeug.serving import BaseWSGIServer, make_server

# Which checkout a sandbox belongs to: demo mode reuses a sandbox on its port only if it is its own.
CHECKOUT = str(Path(__file__).resolve().parent.parent)


def add_identity(app: Flask, name: str) -> None:
    """`GET /_sandbox/identity` -> {"sandbox": name, "checkout": <folder>}, so no stranger is taken for us."""
    app.add_url_rule("/_sandbox/identity", "identity", lambda: jsonify(sandbox=name, checkout=CHECKOUT))


class ServerThread:
    """A threaded werkzeug server on 127.0.0.1; `port=0` picks a free port."""

    def __init__(self, app: Callable, port: int = 0, host: str = "127.0.0.1") -> None:
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True)
        self.host = host
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve_forever(app: Callable, name: str, default_port: int, argv: list[str] | None = None) -> int:
    """CLI entry shared by the sandboxes: `python -m sandboxes.<name> --port N`."""
    parser = argparse.ArgumentParser(description=f"Run the {name} sandbox on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=default_port)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = make_server("127.0.0.1", args.port, app, threaded=True)
    logging.getLogger(name).info("%s sandbox listening on http://127.0.0.1:%d", name, server.server_port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0

"""JSON errors at the edge: every /api/ failure answers {"error": code, "message": text} (STYLE.md).

`message` is short and safe to show a buyer or an operator; vendor and stack details go to the log only.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from storage import StorageError


def api_error(status: int, error: str, message: str) -> tuple[Response, int]:
    return jsonify(error=error, message=message), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        if not request.path.startswith("/api/"):
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        return api_error(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(StorageError)
    def storage_error(exc: StorageError):  # type: ignore[no-untyped-def]
        app.logger.error("storage: %s", exc)
        return api_error(503, "storage_unavailable", "Orders are temporarily unavailable. Please try again shortly.")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return api_error(500, "internal_error", "Something went wrong on our side. Please try again.")

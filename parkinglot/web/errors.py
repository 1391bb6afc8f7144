"""One JSON error shape everywhere under /api: ``{"error": {"code", "message", "details"}}``.

Console pages get HTML error pages instead (registered by the console).
"""
from __future__ import annotations

import logging

from flask import Flask, has_request_context, jsonify, request
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from ..records.errors import ParkingError

log = logging.getLogger("parkinglot.web")


LANE_PATHS = "/api/v1/lanes/"
WAIT = "Please wait: an attendant will assist"
UNAVAILABLE = "Not available: please contact the attendant"


def lane_failure(status: int) -> str:
    """What a barrier controller is told when its request failed: never ``open``. A refused
    key or a server fault denies; anything the lane can put right calls an attendant."""
    return "deny" if status in (401, 403) or status >= 500 else "attendant"


def error_body(code: str, message: str, status: int, details: dict | None = None):
    """The one error shape; under /api/v1/lanes/ it also carries the barrier's ``decision``,
    whatever failed (413, 405, malformed JSON, a crash), so a controller never opens on it."""
    body: dict = {"error": {"code": code, "message": message, "details": details or {}}}
    if has_request_context() and request.path.startswith(LANE_PATHS):
        decision = lane_failure(status)
        body.update(decision=decision, reason=code,
                    message_for_display=WAIT if decision == "attendant" else UNAVAILABLE)
    resp = jsonify(body)
    resp.status_code = status
    return resp


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path in ("/healthz", "/readyz")


def init_app(app: Flask) -> None:
    @app.errorhandler(ParkingError)
    def _parking_error(exc: ParkingError):
        if not wants_json() and "console_error_page" in app.view_functions:
            return app.view_functions["console_error_page"](exc.status, exc.message)
        return error_body(exc.code, exc.message, exc.status, {k: str(v) for k, v in exc.details.items()})

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if not wants_json() and "console_error_page" in app.view_functions:
            return app.view_functions["console_error_page"](exc.code or 500, exc.description or exc.name)
        code = (exc.name or "error").lower().replace(" ", "_")
        resp = error_body(code, exc.description or exc.name, exc.code or 500)
        for name, value in exc.get_headers():  # e.g. Allow on 405, Retry-After
            if name.lower() != "content-type":
                resp.headers[name] = value
        return resp

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def _db_error(exc: Exception):
        log.error("database error on %s %s: %s", request.method, request.path, exc)
        if not wants_json() and "console_error_page" in app.view_functions:
            return app.view_functions["console_error_page"](503, "The database is unavailable. Try again shortly.")
        return error_body("database_unavailable", "the database is unavailable; nothing was recorded", 503)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        if not wants_json() and "console_error_page" in app.view_functions:
            return app.view_functions["console_error_page"](500, "Something went wrong. It has been logged.")
        return error_body("internal_error", "internal error; nothing was recorded", 500)

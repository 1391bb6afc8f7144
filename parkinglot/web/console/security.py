"""Console security: CSRF on every form, cookie flags, session expiry, upload limit, headers.

The API blueprint is exempt from CSRF (it is token- or Basic-authenticated and
takes JSON only). Headers go on every response, so error pages and static files
are covered too; the CSP allows scripts and styles only from this origin.
"""
from __future__ import annotations

import time
from datetime import timedelta

from flask import Flask, Response, current_app, flash, jsonify, redirect, request, session, url_for
from flask_login import current_user, logout_user
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()

CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
API_CSP = "default-src 'none'; frame-ancestors 'none'"

DEFAULT_MAX_UPLOAD = 2 * 1024 * 1024  # console CSV imports; lane frames use the app-wide limit
LOGIN_AT = "login_at"


def is_api_path(path: str) -> bool:
    return path.startswith("/api/")


def _limit_upload() -> None:
    """Console forms never need the lane endpoint's 16 MiB: anything bigger is a 413."""
    if not is_api_path(request.path):
        request.max_content_length = int(current_app.config.get("CONSOLE_MAX_UPLOAD", DEFAULT_MAX_UPLOAD))


def session_expired() -> bool:
    """An absolute limit on a login's age (the signed cookie also expires when idle)."""
    started = session.get(LOGIN_AT)
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    return started is None or time.time() - float(started) > lifetime


def _expire_old_sessions():
    if request.blueprint != "console" or request.endpoint in ("console.static", "console.login"):
        return None
    if current_user.is_authenticated and session_expired():
        logout_user()
        session.clear()
        if request.endpoint == "console.live":
            return jsonify(error={"code": "session_expired", "message": "log in again"}), 401
        flash("Your session has expired. Please log in again.", "info")
        return redirect(url_for("console.login", next=request.full_path if request.method == "GET" else None))
    return None


def _headers(response: Response) -> Response:
    h = response.headers
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("X-Frame-Options", "DENY")
    if is_api_path(request.path):
        h.setdefault("Content-Security-Policy", API_CSP)
    else:
        h.setdefault("Content-Security-Policy", CSP)
        h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if response.mimetype == "text/html" or request.endpoint == "console.live":
            h.setdefault("Cache-Control", "no-store")  # pages show personal data: never kept in caches
    return response


def init_app(app: Flask) -> None:
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    app.config.setdefault("SESSION_COOKIE_SECURE", False)
    lifetime = app.config.get("PERMANENT_SESSION_LIFETIME", 12 * 3600)
    if not isinstance(lifetime, timedelta):
        app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=int(lifetime))
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # the token lives as long as the login session
    app.before_request(_limit_upload)  # registered before CSRFProtect, which reads the form
    csrf.init_app(app)
    from ..api import bp as api_bp

    csrf.exempt(api_bp)
    app.before_request(_expire_old_sessions)
    app.after_request(_headers)

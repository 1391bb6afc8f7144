"""Error pages in the console's look. ``web/errors.py`` calls ``console_error_page`` for non-API paths."""
from __future__ import annotations

import logging

from flask import Flask, current_app, g, render_template
from flask_login import current_user
from werkzeug.exceptions import Forbidden

log = logging.getLogger("parkinglot.web")

TITLES = {
    400: "That request could not be handled",
    401: "Please log in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    409: "Already changed",
    413: "File too large",
    422: "Please check your input",
    429: "Too many attempts",
    500: "Something went wrong",
    503: "Temporarily unavailable",
}

HINTS = {
    403: "Your role or your sites do not include this page. Use the menu to go back, or ask a supervisor.",
    404: "Check the address, or use the menu and the search.",
    413: "Upload a smaller file (split a large CSV into several).",
    429: "Wait a few minutes before trying again.",
    503: "Wait a moment and reload the page.",
}


def _render_as_visitor() -> None:
    """No nav and no user on this page: Flask-Login's template context loads the user
    eagerly, from the database that may be what failed."""
    g._console_bare = True
    g._login_user = current_app.login_manager.anonymous_user()


def render_error(status: int, message: str):
    """The console's error page; never touches the database if the error may be the database's."""
    g._console_error = True
    if status >= 500:
        g._console_bare = True  # no nav counts or banners: they need the database
        if "_login_user" not in g:
            _render_as_visitor()
    else:
        try:
            current_user.is_authenticated  # noqa: B018 - loads the user; fails if the database is down
        except Exception:  # noqa: BLE001
            _render_as_visitor()
    if status == 403 and message == Forbidden.description:  # a bare abort(403) from a role check
        message = "Your role may not use this page."
    if status == 400 and "CSRF" in (message or ""):
        message = "This form has expired or was not sent from the console. Reload the page and try again."
    body = render_template("console/error.html", status=status, title=TITLES.get(status, "Error"),
                           message=message, hint=HINTS.get(status, ""))
    return body, status


def init_app(app: Flask) -> None:
    app.view_functions["console_error_page"] = render_error

"""The attendant / supervisor / finance console: server-rendered HTML under ``/``.

Everything here is routes and templates. Pages parse and validate their input,
call a service with ``db()`` (actions) or ``read_db()`` (pages), and render.
The console is built to run under a strict CSP (``default-src 'self'``): no
inline script or style, no CDN, so it works offline on a site's LAN.
"""
from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint(
    "console",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/console-static",
)

# Routes-only modules; importing them registers their views on ``bp``.
_VIEW_MODULES = (
    "views_auth",
    "views_dashboard",
    "views_stays",
    "views_cashdesk",
    "views_lanes",
    "views_alerts",
    "views_permits",
    "views_passes",
    "views_disputes",
    "views_shifts",
    "views_revenue",
    "views_users",
    "views_setup",
    "views_subject_exports",
    "views_evidence",
)


def init_app(app: Flask) -> None:
    """Register the console: security (CSRF, cookies, headers, upload limit), pages, error pages."""
    import importlib

    from . import errors, security, templating

    security.init_app(app)  # before the blueprint: CSRF and size limits apply to every console form
    templating.init_app(app)
    for name in _VIEW_MODULES:
        importlib.import_module(f"{__name__}.{name}")
    app.register_blueprint(bp)
    errors.init_app(app)
    _install_webhook(app)


def _install_webhook(app: Flask) -> None:
    """Announce new alerts to ``WEBHOOK_URL`` (optional) from a background thread."""
    url = app.config.get("WEBHOOK_URL") or ""
    if not url:
        return
    from ...records.notify import WebhookNotifier, watch_alerts

    ctx = app.extensions["parkinglot"]
    notifier = WebhookNotifier(ctx.sessions, url, timeout_s=float(app.config.get("WEBHOOK_TIMEOUT_S", 2.0)),
                               secret=str(app.config.get("WEBHOOK_SECRET", "")))
    watch_alerts(ctx.sessions, notifier)
    app.extensions["parkinglot_notifier"] = notifier

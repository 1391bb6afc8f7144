"""/api/v1: JSON only, device- or user-authenticated. Routes live in ``web/api_*.py``."""
from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def init_app(app: Flask) -> None:
    from . import api_lanes, api_pay, api_reports, openapi  # noqa: F401  (registers routes on bp)

    app.register_blueprint(bp)

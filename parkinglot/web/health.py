"""Liveness and readiness probes for load balancers and supervisors."""
from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from .transaction import context

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process answers. No database call, so a database outage doesn't kill workers."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Ready to take lane traffic: the database answers and the recogniser is loaded."""
    checks: dict[str, str] = {}
    ok = True
    try:
        with context().engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"unavailable: {type(exc).__name__}"
        ok = False
    from ..lpr.pipeline import is_warm

    checks["recognizer"] = "loaded" if is_warm() else "not loaded"
    ok = ok and is_warm()
    return jsonify(status="ok" if ok else "unavailable", checks=checks), (200 if ok else 503)

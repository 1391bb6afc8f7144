"""The dashboard and the small JSON endpoint its script polls every second."""
from __future__ import annotations

from typing import Any

from flask import jsonify, render_template, request
from flask_login import current_user

from ...records import activity, alerts
from ..auth import roles_required
from ..transaction import read_db
from . import bp
from .scope import my_site_ids, my_sites, sites_by_id
from .templating import allowed

FEED_LENGTH = 15
ALERTS_SHOWN = 20


def _panels() -> dict[str, Any]:
    session = read_db()
    ids = my_site_ids()
    return {
        "sites": sites_by_id(),
        "alerts": alerts.open_alerts(session, ids, limit=ALERTS_SHOWN),
        "lanes": activity.lane_snapshots(session, ids),
        "feed": activity.recent_decisions(session, ids, FEED_LENGTH),
        "occupancy": activity.occupancy(session, ids),
        "emergency_sites": [s for s in my_sites() if s.emergency_mode],
    }


@bp.get("/dashboard")
@roles_required("view_dashboard")
def dashboard():
    token = activity.change_token(read_db())
    return render_template("console/dashboard.html", token=token, **_panels())


@bp.get("/live.json")
def live():
    """Changed panels as server-rendered fragments, or ``changed: false`` (nothing new since ``token``)."""
    if not current_user.is_authenticated:
        return jsonify(error={"code": "unauthorized", "message": "log in again"}), 401
    if not allowed("view_dashboard"):
        return jsonify(error={"code": "forbidden", "message": "your role has no dashboard"}), 403
    token = activity.change_token(read_db())
    if request.args.get("token", type=int) == token:
        return jsonify(token=token, changed=False)
    data = _panels()
    render = lambda name: render_template(f"console/_{name}.html", **data)  # noqa: E731
    return jsonify(
        token=token, changed=True,
        open_alerts=sum(1 for a in data["alerts"] if a.status == "open"),
        alert_ids=[a.id for a in data["alerts"] if a.status == "open"],
        panels={"alerts": render("alerts_panel"), "lanes": render("lanes_panel"), "feed": render("feed_panel"),
                "occupancy": render("occupancy_panel"), "banner": render("emergency_banner")},
    )

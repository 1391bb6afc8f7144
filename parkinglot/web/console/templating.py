"""Template filters and the values every console page shows (navigation, banners, counts)."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple, Optional

from flask import Flask, g, request
from flask_login import current_user
from sqlalchemy import func, select

from ...records import permits, users
from ...records.models import Alert, Shift, Site
from ..transaction import read_db
from . import formatting, history


ALERT_KINDS = {
    "hotlist": "Hotlist hit",
    "no_entry": "Exit without an entry",
    "ticket_mismatch": "Ticket / plate mismatch",
    "locked_vehicle": "Locked vehicle tried to leave",
    "expired_stay": "Stay past its maximum",
    "driver_failure": "Barrier driver failure",
}

UNPAID_CAUSES = {
    "confirm_match": "Confirmed match",
    "manual_exit": "Manual exit",
    "emergency_exit": "Emergency exit",
}


def from_iso(text: Optional[str]) -> Optional[datetime]:
    """An ISO 8601 string from a JSON snapshot back to a datetime (for ``localtime``)."""
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


class NavItem(NamedTuple):
    endpoint: str
    label: str
    action: str


NAV = (
    NavItem("console.dashboard", "Dashboard", "view_dashboard"),
    NavItem("console.stays", "Vehicles & stays", "view_stays"),
    NavItem("console.lanes", "Lanes", "operate_lanes"),
    NavItem("console.alerts", "Alerts", "work_alerts"),
    NavItem("console.disputes", "Disputes", "open_dispute"),
    NavItem("console.permits", "Permits", "view_permits"),
    NavItem("console.passes", "Visitor passes", "visitor_passes"),
    NavItem("console.hotlist", "Hotlist", "work_alerts"),
    NavItem("console.shift", "My shift", "shifts"),
    NavItem("console.shift_log", "Shift log", "view_kpis"),
    NavItem("console.kpis", "Service KPIs", "view_kpis"),
    NavItem("console.subject_exports", "Data requests", "subject_exports"),
    NavItem("console.revenue", "Revenue", "view_revenue"),
    NavItem("console.users_list", "Users", "manage_users"),
    NavItem("console.setup", "Site setup", "manage_sites"),
)


def allowed(action: str) -> bool:
    return bool(current_user.is_authenticated and users.can(current_user, action))


def _page_state() -> dict[str, Any]:
    """Emergency banner, open-alert count and shift status: three small indexed queries."""
    if g.get("_console_bare") or not current_user.is_authenticated:
        return {"emergency_sites": [], "open_alert_count": 0, "on_shift": None}
    from .scope import my_site_ids

    ids = my_site_ids()
    session = read_db()
    emergency = list(session.scalars(select(Site).where(Site.id.in_(ids), Site.emergency_mode.is_(True))
                                     .order_by(Site.code))) if ids else []
    count = 0
    if ids and allowed("work_alerts"):
        count = session.scalar(select(func.count()).select_from(Alert)
                               .where(Alert.site_id.in_(ids), Alert.status == "open")) or 0
    row = session.execute(select(Shift, Site).join(Site, Site.id == Shift.site_id)
                          .where(Shift.user_id == current_user.id, Shift.ended_at.is_(None))).first()
    on_shift = {"shift": row[0], "site": row[1]} if row else None
    return {"emergency_sites": emergency, "open_alert_count": count, "on_shift": on_shift}


def init_app(app: Flask) -> None:
    env = app.jinja_env
    env.filters["localtime"] = formatting.local_time
    env.filters["money"] = formatting.money
    env.filters["clock"] = formatting.clock
    env.filters["duration"] = formatting.duration
    env.filters["percent"] = formatting.percent
    env.globals["allowed"] = allowed
    env.globals["alert_kinds"] = ALERT_KINDS
    env.globals["unpaid_causes"] = UNPAID_CAUSES
    env.globals["pass_terms"] = permits.pass_terms
    env.globals["history_lines"] = lambda events, site: history.lines(read_db(), events, site)
    env.filters["fromiso"] = from_iso
    env.globals["timedelta"] = timedelta
    env.globals["box_points"] = formatting.box_points

    @app.context_processor
    def _console_context() -> dict[str, Any]:
        if request.blueprint != "console" and not g.get("_console_error"):
            return {}
        bare = bool(g.get("_console_bare"))
        nav = [item for item in NAV if allowed(item.action)] if not bare else []
        return {"nav": nav, "page_state": _page_state, "bare_page": bare}

"""Finance reports: ``GET /api/v1/reports/revenue`` as JSON or CSV.

Reports read through ``read_db()`` so a long report never holds SQLite's write
lock (lanes keep deciding while finance exports a year).
"""
from __future__ import annotations

from datetime import date

from flask import Response, current_app, jsonify, request

from ..billing import reports
from ..records import sites
from ..records.errors import InvalidInput
from .api import bp
from .auth import require_api_permission, require_site_access
from .transaction import read_db

FORMATS = ("json", "csv")


def _date(name: str) -> date:
    raw = request.args.get(name, "").strip()
    if not raw:
        raise InvalidInput(f"'{name}' is required (a date, YYYY-MM-DD)", parameter=name)
    try:
        if len(raw) != 10:
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"'{name}' must be a date as YYYY-MM-DD, got {raw[:40]!r}", parameter=name) from None


def _choice(name: str, allowed: tuple[str, ...], default: str) -> str:
    value = request.args.get(name, default).strip().lower() or default
    if value not in allowed:
        raise InvalidInput(f"'{name}' must be one of {', '.join(allowed)}", parameter=name)
    return value


@bp.get("/reports/revenue")
def revenue_report():
    """Revenue of one site over local dates ``from``..``to`` (inclusive), for finance and admins."""
    user = require_api_permission("view_revenue")
    code = request.args.get("site", "").strip()
    if not code:
        raise InvalidInput("'site' is required (a site code)", parameter="site")
    first, last = _date("from"), _date("to")
    group_by = _choice("group_by", reports.GROUPINGS, "day")
    fmt = _choice("format", FORMATS, "json")
    session = read_db()
    site = sites.get_site(session, code)
    require_site_access(user, site.id)
    report = reports.report(session, site, first, last, group_by=group_by,
                            max_days=int(current_app.config.get("REPORT_MAX_DAYS", reports.DEFAULT_MAX_DAYS)))
    if fmt == "csv":
        name = f"revenue-{site.code}-{first.isoformat()}-{last.isoformat()}-{group_by}.csv"
        return Response(reports.to_csv(report), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{_safe(name)}"',
                                 "Cache-Control": "no-store"})
    resp = jsonify(report.to_dict())
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _safe(filename: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in filename)

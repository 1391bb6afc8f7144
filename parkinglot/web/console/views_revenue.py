"""Revenue for finance: takings by day, week or month with splits, a chart and CSV; and reconciliation.

The two are separate views because they cost differently: revenue is an
index-only aggregate over the range's payments, reconciliation walks every stay
that left in the range. Each defaults to the range finance looks at most (the
last 30 days; yesterday's close).
"""
from __future__ import annotations

from datetime import date, timedelta

from flask import current_app, flash, redirect, render_template, request, url_for

from ...billing import balances, reports
from ...records.errors import InvalidInput, ParkingError
from ...records.models import UnpaidBalance
from ...records.models import Site
from ...records.types import utcnow
from ...records.wallclock import zone
from ..auth import roles_required
from ..transaction import db, read_db, rollback_only
from . import bp
from .charts import bar_chart
from .formatting import to_decimal
from .forms import PeriodForm, RevenueForm, WriteOffForm
from .scope import chosen_site, get_scoped, me, my_sites
from .templating import allowed

REVENUE_DAYS = 30
TOP_BALANCES = 15


def short_label(label: str, group_by: str) -> str:
    """Axis labels: ``11-21`` for days and weeks (ISO dates), ``2026-11`` for months."""
    if group_by == "month":
        return label[:7]
    return label[5:] if len(label) == 10 else label


def _range(form: PeriodForm, site: Site, default_first: date, default_last: date) -> tuple[date, date]:
    first = form.start.data or default_first
    last = form.end.data or max(default_last, first)
    form.start.data, form.end.data = first, last  # show the range actually used
    return first, last


def _max_days() -> int:
    return int(current_app.config.get("REPORT_MAX_DAYS", reports.DEFAULT_MAX_DAYS))


@bp.get("/revenue")
@roles_required("view_revenue")
def revenue():
    site = chosen_site()
    form = RevenueForm()
    rv, chart, csv_url, error = None, None, None, None
    if form.validate():
        today = utcnow().astimezone(zone(site.timezone)).date()
        first, last = _range(form, site, today - timedelta(days=REVENUE_DAYS - 1), today)
        group_by = form.group_by.data or "day"
        try:
            rv = reports.revenue(read_db(), site, first, last, group_by=group_by, max_days=_max_days())
        except InvalidInput as exc:
            error = exc.message
        else:
            chart = bar_chart([(short_label(r.label, group_by), to_decimal(r.totals.takings_minor, site.currency),
                                to_decimal(r.totals.refunds_minor, site.currency)) for r in rv.rows], site.currency)
            csv_url = url_for("api.revenue_report", site=site.code, group_by=group_by, format="csv",
                              **{"from": first.isoformat(), "to": last.isoformat()})
    return render_template("console/revenue.html", site=site, sites=my_sites(), form=form, rv=rv, chart=chart,
                           csv_url=csv_url, error=error), 422 if (error or form.errors) else 200


@bp.get("/revenue/reconciliation")
@roles_required("view_revenue")
def reconciliation():
    site = chosen_site()
    form = PeriodForm()
    rc, error = None, None
    if form.validate():
        yesterday = utcnow().astimezone(zone(site.timezone)).date() - timedelta(days=1)
        first, last = _range(form, site, yesterday, yesterday)
        try:
            period = reports.period(site, first, last, max_days=_max_days())
            rc = reports.reconciliation(read_db(), period, top=TOP_BALANCES)
        except InvalidInput as exc:
            error = exc.message
    return render_template("console/reconciliation.html", site=site, sites=my_sites(), form=form, rc=rc,
                           error=error, write_off_form=WriteOffForm(formdata=None) if allowed("write_off") else None
                           ), 422 if (error or form.errors) else 200


@bp.post("/revenue/unpaid/<int:balance_id>/write-off")
@roles_required("write_off")
def write_off(balance_id: int):
    """Finance gives up on what a car left owing: a credit with the reason, under their name."""
    session = db()
    balance = get_scoped(session, UnpaidBalance, balance_id, "unpaid balance")
    site = next(s for s in my_sites() if s.id == balance.site_id)
    form = WriteOffForm()
    back = url_for("console.reconciliation", site=site.code, start=request.form.get("start") or None,
                   end=request.form.get("end") or None) + "#unpaid"
    try:
        if not form.validate():
            raise InvalidInput("; ".join(form.reason.errors))
        balances.write_off(session, balance, me(), form.reason.data)
    except ParkingError as exc:
        rollback_only()
        flash(f"Not written off: {exc.message}", "error")
    else:
        flash(f"Balance of stay #{balance.session_id} written off. Recorded under your name.", "success")
    return redirect(back, 303)

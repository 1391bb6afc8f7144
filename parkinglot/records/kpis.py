"""Service KPIs per site and lane over a period, against the site's targets.

- read rate: reads with a plate at or above the site's confidence threshold / all reads
  (repeat reads of the same car are left out);
- attendant share: camera decisions that called an attendant / all camera decisions;
- manual opens per shift: barriers opened by hand / shifts started in the period;
- time to acknowledge: mean seconds from an alert being raised to its acknowledgement;
- dispute resolution time: mean days from opening to resolving, for disputes opened in the period.

Every figure is one SQL aggregate over an index range (``(lane_id, received_at)``,
``(lane_id, created_at)``, ``(site_id, status, created_at)``, ``(site_id, status, opened_at)``),
so the page costs the same with a year of history as with a day.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from .errors import InvalidInput
from .models import ALERT_STATES, Alert, Decision, Dispute, Lane, PlateRead, Shift, Site

# target name -> True if higher is better
TARGETS = {
    "read_rate": True,
    "attendant_share": False,
    "manual_opens_per_shift": False,
    "ack_minutes": False,
    "dispute_days": False,
}


def epoch_seconds(column: Any, dialect: str) -> Any:
    """Seconds since 1970 of a stored UTC timestamp, in SQL (for averaging durations)."""
    if dialect == "sqlite":
        return (func.julianday(column) - 2440587.5) * 86400.0
    return func.extract("epoch", column)


def _ratio(part: int, whole: int) -> Optional[float]:
    return part / whole if whole else None


@dataclass
class LaneKpis:
    lane: Optional[Lane]  # None: the site's total
    reads: int = 0
    good_reads: int = 0
    decisions: int = 0
    attendant_decisions: int = 0
    manual_opens: int = 0
    alerts: int = 0
    acknowledged: int = 0
    ack_seconds_total: float = 0.0
    misses: set[str] = field(default_factory=set)

    @property
    def read_rate(self) -> Optional[float]:
        return _ratio(self.good_reads, self.reads)

    @property
    def attendant_share(self) -> Optional[float]:
        return _ratio(self.attendant_decisions, self.decisions)

    @property
    def ack_minutes(self) -> Optional[float]:
        return self.ack_seconds_total / self.acknowledged / 60 if self.acknowledged else None

    def add(self, other: "LaneKpis") -> None:
        for name in ("reads", "good_reads", "decisions", "attendant_decisions", "manual_opens", "alerts",
                     "acknowledged", "ack_seconds_total"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class SiteKpis:
    site: Site
    start: datetime
    end: datetime
    lanes: list[LaneKpis]
    total: LaneKpis
    shifts: int
    disputes_opened: int
    disputes_resolved: int
    dispute_seconds_total: float
    targets: dict[str, float]
    misses: set[str]

    @property
    def manual_opens_per_shift(self) -> Optional[float]:
        return self.total.manual_opens / self.shifts if self.shifts else None

    @property
    def dispute_days(self) -> Optional[float]:
        return self.dispute_seconds_total / self.disputes_resolved / 86400 if self.disputes_resolved else None

    def value(self, name: str) -> Optional[float]:
        if name in ("read_rate", "attendant_share", "ack_minutes"):
            return getattr(self.total, name)
        return getattr(self, name)


def _missed(name: str, value: Optional[float], targets: dict[str, float]) -> bool:
    target = targets.get(name)
    if value is None or target is None:
        return False
    return value < target if TARGETS[name] else value > target


def site_kpis(session: Session, site: Site, start: datetime, end: datetime) -> SiteKpis:
    """KPIs for ``[start, end)`` at ``site``, per lane and in total, with missed targets marked."""
    if end <= start:
        raise InvalidInput("the end of the period must be after its start")
    dialect = session.get_bind().dialect.name
    lanes = list(session.scalars(select(Lane).where(Lane.site_id == site.id).order_by(Lane.code)))
    per_lane = {lane.id: LaneKpis(lane) for lane in lanes}
    lane_ids = list(per_lane)
    if lane_ids:
        good = case((PlateRead.plate != "", case((PlateRead.confidence >= site.min_confidence, 1), else_=0)), else_=0)
        for lane_id, n, ok in session.execute(
            select(PlateRead.lane_id, func.count(), func.coalesce(func.sum(good), 0))
            .where(PlateRead.lane_id.in_(lane_ids), PlateRead.received_at >= start, PlateRead.received_at < end,
                   PlateRead.duplicate_of_id.is_(None))
            .group_by(PlateRead.lane_id)
        ):
            per_lane[lane_id].reads, per_lane[lane_id].good_reads = n, int(ok)
        camera = case((Decision.read_id.is_not(None), 1), else_=0)
        attendant = case((Decision.read_id.is_not(None), case((Decision.outcome == "attendant", 1), else_=0)), else_=0)
        manual = case((Decision.reason == "manual_open", 1), else_=0)
        for lane_id, cam, att, man in session.execute(
            select(Decision.lane_id, func.coalesce(func.sum(camera), 0), func.coalesce(func.sum(attendant), 0),
                   func.coalesce(func.sum(manual), 0))
            .where(Decision.lane_id.in_(lane_ids), Decision.created_at >= start, Decision.created_at < end)
            .group_by(Decision.lane_id)
        ):
            k = per_lane[lane_id]
            k.decisions, k.attendant_decisions, k.manual_opens = int(cam), int(att), int(man)
    ack_seconds = epoch_seconds(Alert.acknowledged_at, dialect) - epoch_seconds(Alert.created_at, dialect)
    site_alerts = LaneKpis(None)
    for lane_id, n, acked, secs in session.execute(
        select(Alert.lane_id, func.count(), func.count(Alert.acknowledged_at), func.coalesce(func.sum(ack_seconds), 0))
        .where(Alert.site_id == site.id, Alert.status.in_(ALERT_STATES), Alert.created_at >= start,
               Alert.created_at < end)
        .group_by(Alert.lane_id)
    ):
        k = per_lane.get(lane_id, site_alerts)
        k.alerts, k.acknowledged, k.ack_seconds_total = k.alerts + n, k.acknowledged + acked, k.ack_seconds_total + float(secs)
    shifts = session.scalar(select(func.count()).select_from(Shift).where(
        Shift.site_id == site.id, Shift.started_at >= start, Shift.started_at < end)) or 0
    resolve_seconds = epoch_seconds(Dispute.resolved_at, dialect) - epoch_seconds(Dispute.opened_at, dialect)
    opened, resolved, dispute_secs = session.execute(
        select(func.count(), func.count(Dispute.resolved_at), func.coalesce(func.sum(resolve_seconds), 0))
        .where(Dispute.site_id == site.id, Dispute.status.in_(("open", "resolved")), Dispute.opened_at >= start,
               Dispute.opened_at < end)
    ).one()
    total = LaneKpis(None)
    for k in (*per_lane.values(), site_alerts):
        total.add(k)
    targets = {k: float(v) for k, v in (site.kpi_targets or {}).items() if k in TARGETS and v is not None}
    for k in per_lane.values():
        k.misses = {n for n in ("read_rate", "attendant_share", "ack_minutes") if _missed(n, getattr(k, n), targets)}
    report = SiteKpis(site, start, end, list(per_lane.values()), total, shifts, opened, resolved, float(dispute_secs),
                      targets, set())
    report.misses = {n for n in TARGETS if _missed(n, report.value(n), targets)}
    total.misses = report.misses & {"read_rate", "attendant_share", "ack_minutes"}
    return report

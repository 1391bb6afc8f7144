"""What is happening now: lane snapshots, the event feed, occupancy and a change token.

The console's dashboard polls these every second, so each is a handful of index
probes (``(lane_id, received_at)``, ``(site_id, created_at)``, the partial
open-stay index), never a scan that grows with the history.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import stays
from .models import Alert, AuditHead, Decision, Evidence, Lane, PlateRead, Site, Zone


@dataclass(frozen=True)
class LaneSnapshot:
    lane: Lane
    last_read: Optional[PlateRead]
    read_decision: Optional[Decision]  # what the lane was told about that read
    last_decision: Optional[Decision]  # the newest decision of any kind (a manual open has no read)
    photo: Optional[Evidence]
    alerts: tuple[Alert, ...] = ()  # raised by that read: a stop-list hit names the entry it matched

    @property
    def held(self) -> Optional[PlateRead]:
        """The read of a car still waiting for an attendant: the lane's last read was not let
        through (held or refused without a stay to pair) and nobody has acted since. At an
        entry the attendant admits it (a stay is opened); at an exit they name its stay."""
        d = self.read_decision
        if d is None or self.last_read is None or d.outcome == "open" or d.reason == "event_id_reused":
            return None
        if self.last_decision is not None and self.last_decision.id != d.id:
            return None  # a later decision (a manual open, another read) dealt with it
        if self.lane.direction == "entry" and (d.outcome != "attendant" or d.session_id is not None):
            return None  # refused by a rule, or already inside: nothing to admit
        return self.last_read


@dataclass(frozen=True)
class FeedItem:
    decision: Decision
    read: Optional[PlateRead]
    lane: Lane


@dataclass(frozen=True)
class ZoneOccupancy:
    zone: Optional[Zone]
    inside: int
    capacity: Optional[int]


@dataclass(frozen=True)
class SiteOccupancy:
    site: Site
    inside: int
    zones: tuple[ZoneOccupancy, ...]


def change_token(session: Session) -> int:
    """Bumped by every audited change (reads' decisions, alerts, stays, modes): cheap to poll."""
    return session.scalar(select(AuditHead.last_id).where(AuditHead.id == 1)) or 0


def lanes_of(session: Session, site_ids: Sequence[int]) -> list[Lane]:
    if not site_ids:
        return []
    return list(session.scalars(select(Lane).where(Lane.site_id.in_(list(site_ids))).order_by(Lane.site_id, Lane.code)))


def lane_snapshot(session: Session, lane: Lane) -> LaneSnapshot:
    read = session.scalar(select(PlateRead).where(PlateRead.lane_id == lane.id)
                          .order_by(PlateRead.received_at.desc(), PlateRead.id.desc()).limit(1))
    read_decision = session.scalar(select(Decision).where(Decision.read_id == read.id)) if read else None
    last = session.scalar(select(Decision).where(Decision.lane_id == lane.id)
                          .order_by(Decision.created_at.desc(), Decision.id.desc()).limit(1))
    photo = session.get(Evidence, read.evidence_sha256) if read is not None and read.evidence_sha256 else None
    raised = tuple(session.scalars(select(Alert).where(Alert.read_id == read.id).order_by(Alert.id))) if read else ()
    return LaneSnapshot(lane, read, read_decision, last, photo, raised)


def lane_snapshots(session: Session, site_ids: Sequence[int]) -> list[LaneSnapshot]:
    return [lane_snapshot(session, lane) for lane in lanes_of(session, site_ids)]


def recent_decisions(session: Session, site_ids: Sequence[int], limit: int = 15) -> list[FeedItem]:
    """The newest decisions across ``site_ids`` (one index range per site, merged)."""
    rows: list[tuple[Decision, Optional[PlateRead], Lane]] = []
    for site_id in site_ids:
        rows.extend(session.execute(
            select(Decision, PlateRead, Lane)
            .join(Lane, Lane.id == Decision.lane_id)
            .outerjoin(PlateRead, PlateRead.id == Decision.read_id)
            .where(Decision.site_id == site_id)
            .order_by(Decision.created_at.desc(), Decision.id.desc())
            .limit(limit)
        ).all())
    rows.sort(key=lambda r: (r[0].created_at, r[0].id), reverse=True)
    return [FeedItem(d, r, lane) for d, r, lane in rows[:limit]]


def occupancy(session: Session, site_ids: Sequence[int]) -> list[SiteOccupancy]:
    """Vehicles inside per site and zone, against capacity."""
    out = []
    for site in session.scalars(select(Site).where(Site.id.in_(list(site_ids))).order_by(Site.code)):
        counts = stays.occupancy(session, site.id)
        zones = [ZoneOccupancy(z, counts.get(z.id, 0), z.capacity) for z in site.zones]
        if counts.get(None):
            zones.append(ZoneOccupancy(None, counts[None], None))
        out.append(SiteOccupancy(site, sum(counts.values()), tuple(zones)))
    return out


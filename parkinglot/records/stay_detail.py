"""Everything about one stay, for the person who has to explain it: reads, photos, fee, money, history.

Each part is an indexed lookup by the stay's own keys (its reads, ``session_id``
on payments and decisions, the audit trail's ``(entity_type, entity_id)``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ..barrier.decide import StopHit
from ..billing import fees
from ..billing.tariff_model import TariffError
from . import vehicles
from .models import (
    Alert,
    AuditEvent,
    Decision,
    Dispute,
    Evidence,
    Lane,
    ParkingSession,
    Payment,
    Permit,
    PlateRead,
    ReadFrame,
    Site,
    TariffVersion,
    User,
    VisitorPass,
)
from .types import utcnow


@dataclass(frozen=True)
class ReadView:
    read: PlateRead
    photo: Optional[Evidence]
    frames: tuple[Evidence, ...]
    decision: Optional[Decision]


@dataclass(frozen=True)
class StayDetail:
    stay: ParkingSession
    site: Site
    entry: Optional[ReadView]
    exit: Optional[ReadView]
    lanes: dict[int, Lane]
    tariff: Optional[TariffVersion]
    fee: Optional[fees.FeeStatus]
    fee_at: datetime
    fee_error: Optional[str]
    payments: list[Payment]
    decisions: list[Decision]
    alerts: list[Alert]
    disputes: list[Dispute]
    permit: Optional[Permit]
    visitor_pass: Optional[VisitorPass]
    history: list[AuditEvent]
    people: dict[int, User]
    stops: tuple[StopHit, ...] = ()  # hotlist entries and locks the stay's plate hits, exactly or as a look-alike


def read_view(session: Session, read_id: Optional[int]) -> Optional[ReadView]:
    if read_id is None:
        return None
    read = session.get(PlateRead, read_id)
    if read is None:
        return None
    frames = tuple(session.scalars(
        select(Evidence).join(ReadFrame, ReadFrame.evidence_sha256 == Evidence.sha256)
        .where(ReadFrame.read_id == read.id).order_by(ReadFrame.position)))
    photo = session.get(Evidence, read.evidence_sha256) if read.evidence_sha256 else None
    decision = session.scalar(select(Decision).where(Decision.read_id == read.id))
    return ReadView(read, photo, frames, decision)


def _history(session: Session, stay: ParkingSession, payments: list[Payment], decisions: list[Decision],
             alerts: list[Alert], disputes: list[Dispute]) -> list[AuditEvent]:
    wanted = {
        "stay": [stay.id],
        "payment": [p.id for p in payments],
        "decision": [d.id for d in decisions],
        "alert": [a.id for a in alerts],
        "dispute": [d.id for d in disputes],
    }
    conds = [and_(AuditEvent.entity_type == kind, AuditEvent.entity_id.in_([str(i) for i in ids]))
             for kind, ids in wanted.items() if ids]
    return list(session.scalars(select(AuditEvent).where(or_(*conds)).order_by(AuditEvent.id)))


def _people(session: Session, ids: set[int]) -> dict[int, User]:
    ids.discard(None)  # type: ignore[arg-type]
    if not ids:
        return {}
    return {u.id: u for u in session.scalars(select(User).where(User.id.in_(ids)))}


def stay_detail(session: Session, stay: ParkingSession, *, now: Optional[datetime] = None) -> StayDetail:
    """Gather the stay's record; an open stay is priced as if it left ``now``."""
    site = session.get(Site, stay.site_id)
    lanes = {lane.id: lane for lane in session.scalars(select(Lane).where(Lane.site_id == site.id))}
    payments = list(session.scalars(select(Payment).where(Payment.session_id == stay.id).order_by(Payment.id)))
    decisions = list(session.scalars(select(Decision).where(Decision.session_id == stay.id).order_by(Decision.id)))
    alerts = list(session.scalars(select(Alert).where(Alert.session_id == stay.id).order_by(Alert.id)))
    disputes = list(session.scalars(select(Dispute).where(Dispute.session_id == stay.id).order_by(Dispute.id)))
    fee_at = stay.exited_at or now or utcnow()
    fee, fee_error = None, None
    try:
        fee = fees.fee_status(session, site, stay, fee_at)
    except TariffError as exc:
        fee_error = str(exc)
    history = _history(session, stay, payments, decisions, alerts, disputes)
    people_ids = {p.user_id for p in payments} | {d.user_id for d in decisions}
    people_ids |= {int(e.actor_id) for e in history if e.actor_type == "user" and (e.actor_id or "").isdigit()}
    people_ids |= {d.opened_by for d in disputes} | {d.resolved_by for d in disputes}
    people_ids |= {a.acknowledged_by for a in alerts} | {a.resolved_by for a in alerts}
    return StayDetail(
        stay=stay, site=site, entry=read_view(session, stay.entry_read_id), exit=read_view(session, stay.exit_read_id),
        lanes=lanes, tariff=session.get(TariffVersion, stay.tariff_version_id) if stay.tariff_version_id else None,
        fee=fee, fee_at=fee_at, fee_error=fee_error, payments=payments, decisions=decisions, alerts=alerts,
        disputes=disputes, permit=session.get(Permit, stay.permit_id) if stay.permit_id else None,
        visitor_pass=session.get(VisitorPass, stay.visitor_pass_id) if stay.visitor_pass_id else None,
        history=history, people=_people(session, people_ids),
        stops=tuple(vehicles.stop_hits(session, site.id, stay.plate)),
    )

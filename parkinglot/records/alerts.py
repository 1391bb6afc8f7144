"""Theft and operational alerts: raised by rules, worked by attendants (open -> acknowledged -> resolved)."""
from __future__ import annotations

from typing import Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import audit
from .errors import Conflict, InvalidInput
from .models import ALERT_KINDS, Alert
from .types import utcnow


def raise_alert(
    session: Session,
    *,
    site_id: int,
    kind: str,
    message: str,
    plate: str = "",
    lane_id: Optional[int] = None,
    read_id: Optional[int] = None,
    session_id: Optional[int] = None,
    actor: audit.Actor = audit.SYSTEM,
) -> Alert:
    if kind not in ALERT_KINDS:
        raise InvalidInput(f"unknown alert kind {kind!r}")
    alert = Alert(
        site_id=site_id,
        kind=kind,
        message=message[:300],
        plate=plate,
        lane_id=lane_id,
        read_id=read_id,
        session_id=session_id,
        status="open",
    )
    session.add(alert)
    session.flush()
    # the message is not copied into the trail: it may name plates (a look-alike's listed plate),
    # and the trail, which can never be edited, holds plates only as keyed digests
    audit.append(session, "alert.raised", "alert", alert.id,
                 {"kind": kind, "plate": plate, "lane_id": lane_id, "read_id": read_id,
                  "session_id": session_id}, actor=actor, site_id=site_id)
    return alert


def acknowledge(session: Session, alert: Alert, user_id: int, note: str) -> Alert:
    if alert.status != "open":
        raise Conflict(f"alert {alert.id} is {alert.status}, not open")
    alert.status = "acknowledged"
    alert.acknowledged_at = utcnow()
    alert.acknowledged_by = user_id
    alert.acknowledge_note = note
    audit.append(session, "alert.acknowledged", "alert", alert.id, {"note": note, "plate": alert.plate},
                 actor=audit.Actor.user(user_id), site_id=alert.site_id)
    return alert


def resolve(session: Session, alert: Alert, user_id: int, note: str) -> Alert:
    if alert.status == "resolved":
        raise Conflict(f"alert {alert.id} is already resolved")
    if not note.strip():
        raise InvalidInput("resolving an alert needs a note")
    if alert.status == "open":
        acknowledge(session, alert, user_id, note)
    alert.status = "resolved"
    alert.resolved_at = utcnow()
    alert.resolved_by = user_id
    alert.resolve_note = note
    audit.append(session, "alert.resolved", "alert", alert.id, {"note": note, "plate": alert.plate},
                 actor=audit.Actor.user(user_id), site_id=alert.site_id)
    return alert


def open_alerts(session: Session, site_ids: list[int], limit: int = 100) -> list[Alert]:
    return list(
        session.scalars(
            select(Alert)
            .where(Alert.site_id.in_(site_ids), Alert.status != "resolved")
            .order_by(Alert.created_at.desc())
            .limit(limit)
        )
    )


def count_open(session: Session, site_ids: list[int]) -> int:
    return session.scalar(
        select(func.count()).select_from(Alert).where(Alert.site_id.in_(site_ids), Alert.status == "open")
    ) or 0

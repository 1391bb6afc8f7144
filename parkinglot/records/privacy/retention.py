"""Retention: plates, tickets and photos of visitors are personal data, kept only as long as needed.

A stay and everything recorded about it are forgotten together, judged by when the stay
ended (its exit, else its entry for a void or expired stay): older than ``days`` and not
protected. Its reads (entry, exit, including a look-alike read an attendant confirmed as its
exit, and every read whose decision points at it) lose their plate, raw text, alternatives,
ticket, box, request digest and photos; its decisions lose the plate, ticket and candidates
from the reply sent to the lane; its alerts, disputes and payments lose the plate and ticket
wherever they were written into text. Reads tied to no stay follow their own age. The stay
keeps its times and money. So a long stay cannot lose its plate but keep its exit photo, a
disputed one keeps the photos it was judged on, and no decision row keeps a plate that the
read lost.

Protected, whatever their age: vehicles still inside, permit holders' stays, stays with an
open dispute, an unpaid balance, or an alert that is unresolved or was resolved within the
period. Credentials that ended before the period (visitor passes, released locks, removed
hotlist entries) lose their plate too, and the stop lists' look-alike keys with it.
Finally, a plate or ticket that no kept record uses any more is swept out of every other
table's text (``scrub.sweep``). The audit trail is never touched: it holds only keyed digests
(``audit.pseudonymise``), so it still verifies.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Optional

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from .. import audit
from ..errors import InvalidInput
from ..evidence import EvidenceStore
from ..models import (Alert, Decision, Dispute, Evidence, HotlistEntry, ParkingSession, Payment, PermitVehicle,
                      PlateKey, PlateRead, ReadFrame, Site, StopKey, VehicleLock, VisitorPass)
from ..types import utcnow
from .scrub import Redactor, sweep

PURGED = "purged: retention"
ENDED = ("closed", "void", "expired")


@dataclass(frozen=True)
class RetentionReport:
    cutoff: datetime
    reads: int
    stays: int
    images: int
    credentials: int
    dry_run: bool
    decisions: int = 0
    alerts: int = 0
    other_rows: int = 0

    def summary(self) -> str:
        verb = "would purge" if self.dry_run else "purged"
        text = (f"{verb} {self.reads} reads, {self.stays} stays' plates, {self.images} images and "
                f"{self.credentials} ended credentials older than {self.cutoff.isoformat(timespec='seconds')}")
        if not self.dry_run:
            text += (f"; redacted {self.decisions} decisions, {self.alerts} alerts and {self.other_rows} other rows "
                     "that mentioned them")
        return text


def check_days(days: Any) -> int:
    """The retention period in whole days (at least 1), else InvalidInput saying why."""
    if isinstance(days, bool) or not isinstance(days, int):
        raise InvalidInput(f"the retention period must be a whole number of days, not {days!r}")
    if days < 1:
        raise InvalidInput(f"the retention period must be at least 1 day (got {days}); "
                           "0 or a negative number would purge everything, including today")
    return days


# --- what may be forgotten -------------------------------------------------------------------------

def _live_alert(cutoff: datetime):
    return or_(Alert.status != "resolved", Alert.resolved_at.is_(None), Alert.resolved_at >= cutoff)


def _released(S, cutoff: datetime):
    """Stays (``S``: the model or an alias) that may be forgotten: ended before ``cutoff``, not protected."""
    paid = (select(func.coalesce(func.sum(Payment.amount_minor), 0))
            .where(Payment.session_id == S.id).scalar_subquery())
    return and_(
        S.status.in_(ENDED),
        func.coalesce(S.exited_at, S.entered_at) < cutoff,
        S.permit_id.is_(None),
        ~exists().where(Dispute.session_id == S.id, Dispute.status == "open"),
        ~exists().where(Alert.session_id == S.id, _live_alert(cutoff)),
        ~and_(S.fee_minor.is_not(None), S.fee_minor > paid),
    )


def _not_purged():
    return PlateRead.no_plate_reason.is_distinct_from(PURGED)


def _purgeable_reads(cutoff: datetime):
    """Reads older than ``cutoff``, not purged yet, with no live alert and tied to no kept stay."""
    by_entry, by_exit, by_decision = aliased(ParkingSession), aliased(ParkingSession), aliased(ParkingSession)
    return select(PlateRead.id).where(
        PlateRead.received_at < cutoff,
        _not_purged(),
        ~exists().where(Alert.read_id == PlateRead.id, _live_alert(cutoff)),
        ~exists().where(by_entry.entry_read_id == PlateRead.id, ~_released(by_entry, cutoff)),
        ~exists().where(by_exit.exit_read_id == PlateRead.id, ~_released(by_exit, cutoff)),
        ~exists().where(Decision.read_id == PlateRead.id, by_decision.id == Decision.session_id,
                        ~_released(by_decision, cutoff)),
    )


def _purgeable_stays(cutoff: datetime):
    return select(ParkingSession.id).where(
        _released(ParkingSession, cutoff),
        or_(ParkingSession.plate != "", ParkingSession.ticket.is_not(None)),
    )


def _ended_credentials(cutoff: datetime, site_ids_keep_longer: dict[int, datetime]):
    """(model, condition) for credentials whose validity ended before the cutoff and still name a plate."""
    pass_end = func.coalesce(VisitorPass.revoked_at, VisitorPass.valid_to)
    pass_ended = pass_end < cutoff
    for site_id, site_cutoff in site_ids_keep_longer.items():  # a lapsed pass still matters to the gate
        pass_ended = and_(pass_ended, or_(VisitorPass.site_id != site_id, pass_end < site_cutoff))
    in_use = exists().where(ParkingSession.visitor_pass_id == VisitorPass.id, ~_released(ParkingSession, cutoff))
    return [
        (VisitorPass, and_(VisitorPass.plate != "", pass_ended, VisitorPass.valid_to < cutoff, ~in_use)),
        (VehicleLock, and_(VehicleLock.plate != "", VehicleLock.released_at.is_not(None),
                           VehicleLock.released_at < cutoff)),
        (HotlistEntry, and_(HotlistEntry.plate != "", HotlistEntry.removed_at.is_not(None),
                            HotlistEntry.removed_at < cutoff)),
    ]


def _lapsed_periods(session: Session, now: datetime, cutoff: datetime) -> dict[int, datetime]:
    """Sites whose lapsed-credential period (gate rule) reaches further back than retention does."""
    days_col = getattr(Site, "lapsed_credential_days", None)
    if days_col is None:
        return {}
    out = {}
    for site_id, lapsed_days in session.execute(select(Site.id, days_col)):
        if lapsed_days and now - timedelta(days=int(lapsed_days)) < cutoff:
            out[site_id] = now - timedelta(days=int(lapsed_days))
    return out


# --- the run ---------------------------------------------------------------------------------------

def run(session: Session, store: EvidenceStore, *, days: int, dry_run: bool = True,
        now: Optional[datetime] = None, batch: int = 2000, actor: audit.Actor = audit.SYSTEM) -> RetentionReport:
    """Purge (or with ``dry_run`` only count) what is older than ``days``. Audited either way."""
    days = check_days(days)
    now = now or utcnow()
    cutoff = now - timedelta(days=days)
    read_ids = list(session.scalars(_purgeable_reads(cutoff)))
    stay_ids = list(session.scalars(_purgeable_stays(cutoff)))
    credentials = _ended_credentials(cutoff, _lapsed_periods(session, now, cutoff))
    credential_count = sum(session.scalar(select(func.count()).select_from(model).where(cond)) or 0
                           for model, cond in credentials)
    images = _orphaned_images(session, read_ids)
    touched: dict[str, set[int]] = {"decisions": set(), "alerts": set()}
    other_rows = 0
    if not dry_run:
        values: set[str] = set()
        for i in range(0, len(stay_ids), batch):
            values |= _purge_stays(session, stay_ids[i:i + batch], touched)
        for i in range(0, len(read_ids), batch):
            values |= _purge_reads(session, read_ids[i:i + batch], touched)
        for model, cond in credentials:
            values |= _purge_credentials(session, model, cond)
        purged_at = utcnow()
        for ev in images:
            store.delete(ev.sha256, ev.content_type)
            ev.purged_at = purged_at
        session.flush()
        forgotten = _no_longer_used(session, values, cutoff)
        _drop_plate_keys(session, forgotten)
        touched["alerts"] |= _redact_alerts_by_plate(session, forgotten, cutoff)
        other_rows = sweep(session, forgotten)
        session.flush()
    report = RetentionReport(cutoff, len(read_ids), len(stay_ids), len(images), credential_count, dry_run,
                             len(touched["decisions"]), len(touched["alerts"]), other_rows)
    audit.append(session, "retention.dry_run" if dry_run else "retention.purged", "retention", None,
                 {"cutoff": cutoff, "days": days, "reads": report.reads, "stays": report.stays,
                  "images": report.images, "credentials": report.credentials, "decisions": report.decisions,
                  "alerts": report.alerts, "other_rows": report.other_rows}, actor=actor)
    return report


def _values(*groups: Iterable[Optional[str]]) -> set[str]:
    return {v for g in groups for v in g if v}


def _redact_decisions(session: Session, where, redact: Redactor) -> set[int]:
    """Blank plate, ticket and candidates in the replies sent to the lane; scrub the message."""
    ids = set()
    for row in session.scalars(select(Decision).where(where)):
        response = dict(row.response or {})
        if response:
            response.update(plate="", ticket=None, candidates=[])  # the same keys: a replay still parses it
            if "message_for_display" in response:
                response["message_for_display"] = redact.text(response["message_for_display"])
            row.response = response
        row.message = redact.text(row.message) or ""
        ids.add(row.id)
    return ids


def _redact_alerts(session: Session, where, redact: Redactor) -> set[int]:
    ids = set()
    for alert in session.scalars(select(Alert).where(where)):
        alert.plate = ""
        alert.message = redact.text(alert.message) or ""
        alert.acknowledge_note = redact.text(alert.acknowledge_note)
        alert.resolve_note = redact.text(alert.resolve_note)
        ids.add(alert.id)
    return ids


def _purge_stays(session: Session, ids: list[int], touched: dict[str, set[int]]) -> set[str]:
    rows = session.execute(select(ParkingSession.id, ParkingSession.plate, ParkingSession.ticket)
                           .where(ParkingSession.id.in_(ids))).all()
    values = _values((r.plate for r in rows), (r.ticket for r in rows))
    redact = Redactor(values)
    touched["decisions"] |= _redact_decisions(session, Decision.session_id.in_(ids), redact)
    touched["alerts"] |= _redact_alerts(session, Alert.session_id.in_(ids), redact)
    for dispute in session.scalars(select(Dispute).where(Dispute.session_id.in_(ids))):
        dispute.reason = redact.text(dispute.reason) or ""
        dispute.resolution_note = redact.text(dispute.resolution_note)
        dispute.evidence = redact.json(dispute.evidence or {})
    for payment in session.scalars(select(Payment).where(Payment.session_id.in_(ids))):
        payment.reason = redact.text(payment.reason)
        payment.reference = redact.text(payment.reference, keep_length=True) or payment.reference
    session.flush()
    session.execute(update(ParkingSession).where(ParkingSession.id.in_(ids)).values(plate="", ticket=None)
                    .execution_options(synchronize_session=False))
    return values


def _purge_reads(session: Session, ids: list[int], touched: dict[str, set[int]]) -> set[str]:
    rows = session.execute(select(PlateRead.plate, PlateRead.raw_text, PlateRead.ticket)
                           .where(PlateRead.id.in_(ids))).all()
    values = _values((r.plate for r in rows), (r.ticket for r in rows))
    redact = Redactor(values | _values(r.raw_text for r in rows))
    touched["decisions"] |= _redact_decisions(session, Decision.read_id.in_(ids), redact)
    touched["alerts"] |= _redact_alerts(session, Alert.read_id.in_(ids), redact)
    session.flush()
    session.execute(delete(ReadFrame).where(ReadFrame.read_id.in_(ids)))
    session.execute(update(PlateRead).where(PlateRead.id.in_(ids)).values(
        plate="", raw_text="", candidates=[], box=None, ticket=None, evidence_sha256=None, request_digest=None,
        no_plate_reason=PURGED).execution_options(synchronize_session=False))
    return values


_STOP_KEY_OF = {HotlistEntry: StopKey.hotlist_entry_id, VehicleLock: StopKey.vehicle_lock_id}


def _purge_credentials(session: Session, model, cond) -> set[str]:
    """Blank the plate (and scrub the notes) of ended credentials; drop their stop-list keys, which
    are the plate folded (``plates.index_keys``) and are no use once the entry has ended."""
    values: set[str] = set()
    ids = []
    for row in session.scalars(select(model).where(cond)):
        values.add(row.plate)
        ids.append(row.id)
        redact = Redactor([row.plate])
        row.plate = ""
        for text_field in ("note", "reason"):
            if hasattr(row, text_field):
                setattr(row, text_field, redact.text(getattr(row, text_field)) or "")
    session.flush()
    key_of = _STOP_KEY_OF.get(model)
    for i in range(0, len(ids), 500):
        if key_of is not None:
            session.execute(delete(StopKey).where(key_of.in_(ids[i:i + 500])))
    return values


def _no_longer_used(session: Session, values: set[str], cutoff: datetime, chunk: int = 500) -> set[str]:
    """The values (plates, tickets) that no kept record holds any more: these are forgotten everywhere."""
    values = {v for v in values if v}
    still: set[str] = set()
    ordered = sorted(values)
    for i in range(0, len(ordered), chunk):
        part = ordered[i:i + chunk]
        still.update(session.scalars(select(PlateRead.plate).where(PlateRead.plate.in_(part), _not_purged())))
        still.update(session.scalars(select(PlateRead.ticket).where(PlateRead.ticket.in_(part), _not_purged())))
        still.update(session.scalars(select(ParkingSession.plate).where(ParkingSession.plate.in_(part))))
        still.update(session.scalars(select(ParkingSession.ticket).where(ParkingSession.ticket.in_(part))))
        still.update(session.scalars(select(PermitVehicle.plate).where(PermitVehicle.plate.in_(part))))
        for model in (VisitorPass, VehicleLock, HotlistEntry):
            still.update(session.scalars(select(model.plate).where(model.plate.in_(part))))
        still.update(session.scalars(select(Alert.plate).where(Alert.plate.in_(part), _live_alert(cutoff))))
    return values - still


def _drop_plate_keys(session: Session, forgotten: set[str], chunk: int = 500) -> None:
    """The fuzzy index rows of plates no stay holds any more (their keys are the plate, folded)."""
    ordered = sorted(forgotten)
    for i in range(0, len(ordered), chunk):
        session.execute(delete(PlateKey).where(PlateKey.plate.in_(ordered[i:i + chunk])))


def _redact_alerts_by_plate(session: Session, forgotten: set[str], cutoff: datetime, chunk: int = 500
                            ) -> set[int]:
    """Alerts tied to no read or stay that still name a forgotten plate (resolved before the period)."""
    ordered = sorted(forgotten)
    ids: set[int] = set()
    for i in range(0, len(ordered), chunk):
        part = ordered[i:i + chunk]
        ids |= _redact_alerts(session, and_(Alert.plate.in_(part), ~_live_alert(cutoff)), Redactor(part))
    session.flush()
    return ids


def _orphaned_images(session: Session, purged_read_ids: list[int]) -> list[Evidence]:
    """Images referenced only by reads about to be purged."""
    if not purged_read_ids:
        return []
    shas: set[str] = set()
    for i in range(0, len(purged_read_ids), 2000):
        chunk = purged_read_ids[i:i + 2000]
        shas.update(s for s in session.scalars(select(PlateRead.evidence_sha256).where(
            PlateRead.id.in_(chunk), PlateRead.evidence_sha256.is_not(None))))
        shas.update(session.scalars(select(ReadFrame.evidence_sha256).where(ReadFrame.read_id.in_(chunk))))
    keep: set[str] = set()
    purged = set(purged_read_ids)
    for sha in shas:
        users_ = set(session.scalars(select(PlateRead.id).where(PlateRead.evidence_sha256 == sha)))
        users_ |= set(session.scalars(select(ReadFrame.read_id).where(ReadFrame.evidence_sha256 == sha)))
        if users_ - purged:
            keep.add(sha)
    return list(session.scalars(select(Evidence).where(Evidence.sha256.in_(shas - keep),
                                                       Evidence.purged_at.is_(None)))) if shas - keep else []

"""Retention: plates and photos of visitors are personal data, kept only as long as needed.

After ``days``, a visitor's reads lose their plate text and candidates, their photos
are deleted from disk, and the stay keeps its times and money but not the plate.
Kept regardless of age: vehicles still inside, permit holders' stays, anything tied
to an open dispute, an unpaid balance or an alert. The audit trail is never touched:
it holds only keyed plate digests (see ``audit.pseudonymise``), so it still verifies.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from . import audit
from .evidence import EvidenceStore
from .models import Alert, Dispute, Evidence, ParkingSession, Payment, PlateKey, PlateRead, ReadFrame
from .types import utcnow

PURGED = "purged: retention"


@dataclass(frozen=True)
class RetentionReport:
    cutoff: datetime
    reads: int
    stays: int
    images: int
    dry_run: bool

    def summary(self) -> str:
        verb = "would purge" if self.dry_run else "purged"
        return (f"{verb} {self.reads} reads, {self.stays} stays' plates and {self.images} images "
                f"older than {self.cutoff.isoformat(timespec='seconds')}")


def _protected_stays():
    """Stays whose reads must be kept: inside, permit holders, disputes, balances, alerts."""
    paid = (select(func.coalesce(func.sum(Payment.amount_minor), 0))
            .where(Payment.session_id == ParkingSession.id).scalar_subquery())
    return or_(
        ParkingSession.status == "open",
        ParkingSession.permit_id.is_not(None),
        exists().where(Dispute.session_id == ParkingSession.id, Dispute.status == "open"),
        exists().where(Alert.session_id == ParkingSession.id),
        and_(ParkingSession.fee_minor.is_not(None), ParkingSession.fee_minor > paid),
    )


def _purgeable_reads(cutoff: datetime):
    """Reads older than ``cutoff``, not purged yet, and not protected."""
    protected_via_stay = exists().where(
        or_(ParkingSession.entry_read_id == PlateRead.id, ParkingSession.exit_read_id == PlateRead.id),
        _protected_stays(),
    )
    return (select(PlateRead.id).where(
        PlateRead.received_at < cutoff,
        or_(PlateRead.plate != "", PlateRead.evidence_sha256.is_not(None)),
        ~exists().where(Alert.read_id == PlateRead.id),
        ~protected_via_stay,
    ))


def _purgeable_stays(cutoff: datetime):
    return select(ParkingSession.id).where(
        ParkingSession.entered_at < cutoff,
        ParkingSession.status.in_(("closed", "void")),
        ParkingSession.plate != "",
        ~_protected_stays(),
    )


def run(session: Session, store: EvidenceStore, *, days: int, dry_run: bool = True,
        now: Optional[datetime] = None, batch: int = 2000, actor: audit.Actor = audit.SYSTEM) -> RetentionReport:
    """Purge (or with ``dry_run`` only count) what is older than ``days``. Audited either way."""
    if days < 1:
        raise ValueError("retention must keep at least one day")
    cutoff = (now or utcnow()) - timedelta(days=days)
    read_ids = list(session.scalars(_purgeable_reads(cutoff)))
    stay_rows = session.execute(select(ParkingSession.id, ParkingSession.site_id, ParkingSession.plate)
                                .where(ParkingSession.id.in_(_purgeable_stays(cutoff)))).all()
    images = _orphaned_images(session, read_ids)
    report = RetentionReport(cutoff, len(read_ids), len(stay_rows), len(images), dry_run)
    if not dry_run:
        for i in range(0, len(read_ids), batch):
            chunk = read_ids[i:i + batch]
            session.execute(delete(ReadFrame).where(ReadFrame.read_id.in_(chunk)))
            session.execute(update(PlateRead).where(PlateRead.id.in_(chunk)).values(
                plate="", raw_text="", candidates=[], box=None, ticket=None, evidence_sha256=None,
                no_plate_reason=PURGED).execution_options(synchronize_session=False))
        stay_ids = [r.id for r in stay_rows]
        for i in range(0, len(stay_ids), batch):
            session.execute(update(ParkingSession).where(ParkingSession.id.in_(stay_ids[i:i + batch]))
                            .values(plate="", ticket=None).execution_options(synchronize_session=False))
        gone = {(r.site_id, r.plate) for r in stay_rows}
        for site_id, plate in gone:
            still_used = session.scalar(select(func.count()).select_from(ParkingSession)
                                        .where(ParkingSession.site_id == site_id, ParkingSession.plate == plate))
            if not still_used:
                session.execute(delete(PlateKey).where(PlateKey.site_id == site_id, PlateKey.plate == plate))
        now_ = utcnow()
        for ev in images:
            store.delete(ev.sha256, ev.content_type)
            ev.purged_at = now_
        session.flush()
    audit.append(session, "retention.dry_run" if dry_run else "retention.purged", "retention", None,
                 {"cutoff": cutoff, "days": days, "reads": report.reads, "stays": report.stays,
                  "images": report.images}, actor=actor)
    return report


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

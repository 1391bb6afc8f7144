"""Disputes: a driver contests a stay's fee; a supervisor resolves it.

Opening a dispute freezes the evidence as it stood (photos' digests, the reads,
the tariff version, the fee breakdown and the payments) into ``Dispute.evidence``,
so later edits elsewhere can never change what the decision was based on.

Resolving never edits money rows or the stay. A change to what the stay owes is a
*credit* (an adjustment row: positive waives part of the fee, negative charges
more); money given back is a *refund* row. Keeping the two apart is what keeps
reconciliation exact: for every stay, ``fee_minor - credits - cash paid`` is what
is still owed, before and after any outcome.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Optional, Sequence

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..records import audit
from ..records.errors import Conflict, InvalidInput
from ..records.models import (
    DISPUTE_OUTCOMES, PAYMENT_METHODS, Dispute, Lane, ParkingSession, Payment, PlateRead, ReadFrame, Site,
    TariffVersion,
)
from ..records.types import utcnow
from . import payments
from .fees import fee_status
from .tariff import TariffError

MAX_TEXT = 2000
REFUND_METHODS = tuple(m for m in PAYMENT_METHODS if m != "adjustment")


class DisputeOpen(Conflict):
    code = "dispute_open"


# --- money of one stay ------------------------------------------------------------------------

@dataclass(frozen=True)
class StayMoney:
    """What a stay was billed, what was credited, and the cash that changed hands."""

    fee_minor: int  # billed at exit (0 if not billed)
    credits_minor: int  # sum of adjustments (positive: waived)
    cash_minor: int  # payments minus refunds

    @property
    def effective_fee_minor(self) -> int:
        return self.fee_minor - self.credits_minor

    @property
    def balance_minor(self) -> int:
        """Still owed (negative: overpaid)."""
        return self.effective_fee_minor - self.cash_minor


def stay_money(session: Session, stay: ParkingSession) -> StayMoney:
    """One aggregate query over the stay's payment rows."""
    cash, credits = session.execute(
        select(
            func.coalesce(func.sum(case((Payment.kind != "adjustment", Payment.amount_minor), else_=0)), 0),
            func.coalesce(func.sum(case((Payment.kind == "adjustment", Payment.amount_minor), else_=0)), 0),
        ).where(Payment.session_id == stay.id)
    ).one()
    return StayMoney(int(stay.fee_minor or 0), int(credits), int(cash))


# --- opening ----------------------------------------------------------------------------------

def _iso(dt: Optional[datetime]) -> Optional[str]:
    return None if dt is None else dt.isoformat()


def _read_snapshot(session: Session, read_id: Optional[int]) -> Optional[dict[str, Any]]:
    if read_id is None:
        return None
    read = session.get(PlateRead, read_id)
    if read is None:
        return None
    frames = list(session.scalars(select(ReadFrame.evidence_sha256).where(ReadFrame.read_id == read.id)
                                  .order_by(ReadFrame.position)))
    lane_code = session.scalar(select(Lane.code).where(Lane.id == read.lane_id))
    return {
        "read_id": read.id, "lane": lane_code, "captured_at": _iso(read.captured_at),
        "received_at": _iso(read.received_at), "raw_text": read.raw_text, "plate": read.plate,
        "confidence": read.confidence, "alternatives": list(read.candidates or []), "box": read.box,
        "source": read.source, "ticket": read.ticket, "photo_sha256": read.evidence_sha256,
        "frames_sha256": frames,
    }


def _payments_snapshot(session: Session, stay_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(select(Payment).where(Payment.session_id == stay_id).order_by(Payment.id))
    return [{"id": p.id, "kind": p.kind, "method": p.method, "amount_minor": p.amount_minor,
             "currency": p.currency, "reference": p.reference, "created_at": _iso(p.created_at),
             "dispute_id": p.dispute_id, "reason": p.reason, "paid_until": _iso(p.paid_until)} for p in rows]


def evidence_of(session: Session, stay: ParkingSession, *, at: Optional[datetime] = None) -> dict[str, Any]:
    """The JSON snapshot attached to a dispute: everything needed to explain the fee."""
    site = session.get(Site, stay.site_id)
    version = session.get(TariffVersion, stay.tariff_version_id) if stay.tariff_version_id else None
    priced_at = stay.exited_at or at or utcnow()
    status = fee_status(session, site, stay, priced_at, lost_ticket=stay.lost_ticket)
    money = stay_money(session, stay)
    return {
        "stay": {"id": stay.id, "plate": stay.plate, "status": stay.status, "entered_at": _iso(stay.entered_at),
                 "exited_at": _iso(stay.exited_at), "ticket": stay.ticket, "lost_ticket": stay.lost_ticket,
                 "fee_minor": stay.fee_minor, "permit_id": stay.permit_id, "reentry_of_id": stay.reentry_of_id},
        "entry": _read_snapshot(session, stay.entry_read_id),
        "exit": _read_snapshot(session, stay.exit_read_id),
        "tariff": None if version is None else {"id": version.id, "code": version.code, "version": version.version,
                                                 "name": version.name, "currency": version.currency},
        "fee": {"priced_at": _iso(priced_at), "currency": status.currency, "total_minor": status.total_minor,
                "paid_minor": status.paid_minor, "due_minor": status.due_minor,
                "quote": status.quote.to_dict() if status.quote is not None else None},
        "money": {"fee_minor": money.fee_minor, "credits_minor": money.credits_minor,
                  "cash_minor": money.cash_minor, "balance_minor": money.balance_minor},
        "payments": _payments_snapshot(session, stay.id),
    }


def _text(value: Optional[str], what: str) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidInput(f"a dispute needs a {what}")
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"the {what} is too long (at most {MAX_TEXT} characters)")
    return text


def open_for(session: Session, stay_id: int) -> Optional[Dispute]:
    return session.scalar(select(Dispute).where(Dispute.session_id == stay_id, Dispute.status == "open"))


def open_dispute(session: Session, stay: ParkingSession, *, user_id: Optional[int], reason: str,
                 now: Optional[datetime] = None) -> Dispute:
    """Open a dispute on ``stay`` with its evidence attached. One open dispute per stay (the
    database enforces it too, so two attendants racing get one dispute and one Conflict)."""
    reason = _text(reason, "reason")
    if open_for(session, stay.id) is not None:
        raise DisputeOpen(f"stay {stay.id} already has an open dispute", session_id=stay.id)
    now = now or utcnow()
    dispute = Dispute(site_id=stay.site_id, session_id=stay.id, status="open", reason=reason,
                      evidence=evidence_of(session, stay, at=now), opened_at=now, opened_by=user_id)
    try:
        with session.begin_nested():
            session.add(dispute)
            session.flush()
    except IntegrityError:
        if open_for(session, stay.id) is not None:
            raise DisputeOpen(f"stay {stay.id} already has an open dispute", session_id=stay.id) from None
        raise
    audit.append(session, "dispute.opened", "dispute", dispute.id,
                 {"session_id": stay.id, "plate": stay.plate, "reason": reason,
                  "fee_minor": stay.fee_minor, "tariff_version_id": stay.tariff_version_id},
                 actor=_actor(user_id), site_id=stay.site_id, at=now)
    return dispute


# --- resolving --------------------------------------------------------------------------------

def _actor(user_id: Optional[int]) -> audit.Actor:
    return audit.Actor.user(user_id) if user_id else audit.SYSTEM


def _aware(dt: Optional[datetime], what: str) -> Optional[datetime]:
    if dt is None:
        return None
    if not isinstance(dt, datetime) or dt.tzinfo is None or dt.utcoffset() is None:
        raise InvalidInput(f"{what} must be an aware date-time (with a UTC offset)")
    return dt


def _reprice(session: Session, site: Site, stay: ParkingSession, entered: datetime, exited: datetime) -> int:
    """The fee under the stay's own tariff version for corrected times."""
    if exited < entered:
        raise InvalidInput("the corrected exit is before the corrected entry")
    try:
        return fee_status(session, site, stay, exited, entered_at=entered, lost_ticket=stay.lost_ticket).total_minor
    except TariffError as exc:
        raise InvalidInput(f"cannot re-price the stay: {exc}") from None


@dataclass(frozen=True)
class _Plan:
    fee_before: int
    fee_after: int
    credit: int  # adjustment row amount (0: none)
    refund: int  # refund amount, positive (0: none)


def _plan(session: Session, site: Site, stay: ParkingSession, outcome: str,
          corrected_entered_at: Optional[datetime], corrected_exited_at: Optional[datetime],
          refund_minor: Optional[int]) -> _Plan:
    money = stay_money(session, stay)
    before = money.effective_fee_minor
    if outcome == "uphold":
        return _Plan(before, before, 0, 0)
    if outcome in ("adjust", "void") and stay.exited_at is None:
        raise InvalidInput(f"stay {stay.id} has not been billed (no exit yet); only uphold or refund apply")
    if outcome == "adjust":
        if corrected_entered_at is None and corrected_exited_at is None:
            raise InvalidInput("an adjustment needs a corrected entry or exit time")
        entered = corrected_entered_at or stay.entered_at
        exited = corrected_exited_at or stay.exited_at
        # The corrected stay's full price replaces the fee (earlier credits included).
        after = _reprice(session, site, stay, entered, exited)
        return _Plan(before, after, before - after, max(money.cash_minor - after, 0))
    if outcome == "refund":
        if isinstance(refund_minor, bool) or not isinstance(refund_minor, int) or refund_minor <= 0:
            raise InvalidInput("a refund outcome needs a positive refund amount (minor units)")
        if refund_minor > money.cash_minor:
            raise InvalidInput(f"refund of {refund_minor} exceeds the {max(money.cash_minor, 0)} paid for this "
                               f"stay (minor units)")
        overpaid = max(money.cash_minor - before, 0)
        credit = max(refund_minor - overpaid, 0)
        return _Plan(before, before - credit, credit, refund_minor)
    # void: the stay is no charge at all; everything paid goes back
    return _Plan(before, 0, before, max(money.cash_minor, 0))


def resolve_dispute(
    session: Session,
    dispute: Dispute,
    *,
    user_id: int,
    outcome: str,
    note: str,
    corrected_entered_at: Optional[datetime] = None,
    corrected_exited_at: Optional[datetime] = None,
    refund_minor: Optional[int] = None,
    refund_method: str = "card",
    now: Optional[datetime] = None,
) -> Dispute:
    """Resolve an open dispute as ``uphold``, ``adjust``, ``refund`` or ``void``.

    - uphold: the fee stands.
    - adjust: re-price under the stay's own tariff version with the corrected entry
      and/or exit; the fee change is a credit (adjustment) and whatever was paid
      beyond the new fee is refunded.
    - refund: give back ``refund_minor`` (at most what was paid); the fee is reduced
      by the part of it that was not an overpayment.
    - void: the whole fee is credited and everything paid is refunded.

    The new payment rows link to the dispute; the dispute records fee before/after;
    one audit event describes the resolution.
    """
    if outcome not in DISPUTE_OUTCOMES:
        raise InvalidInput(f"outcome must be one of {', '.join(DISPUTE_OUTCOMES)}; got {outcome!r}")
    note = _text(note, "resolution note")
    if not user_id:
        raise InvalidInput("a resolution must name the user who decided it")
    if dispute.status != "open":
        raise Conflict(f"dispute {dispute.id} is already resolved ({dispute.outcome})")
    corrected_entered_at = _aware(corrected_entered_at, "the corrected entry time")
    corrected_exited_at = _aware(corrected_exited_at, "the corrected exit time")
    if outcome != "adjust" and (corrected_entered_at or corrected_exited_at):
        raise InvalidInput("corrected times apply only to the adjust outcome")
    if outcome != "refund" and refund_minor is not None:
        raise InvalidInput("a refund amount applies only to the refund outcome")
    if refund_method not in REFUND_METHODS:
        raise InvalidInput(f"refund method must be one of {', '.join(REFUND_METHODS)}; got {refund_method!r}")
    stay = session.get(ParkingSession, dispute.session_id)
    site = session.get(Site, dispute.site_id)
    plan = _plan(session, site, stay, outcome, corrected_entered_at, corrected_exited_at, refund_minor)
    now = now or utcnow()

    # Claim the dispute first (a conditional update), so two supervisors cannot both pay out.
    claimed = session.execute(
        update(Dispute)
        .where(Dispute.id == dispute.id, Dispute.status == "open")
        .values(status="resolved", outcome=outcome, resolution_note=note,
                corrected_entered_at=corrected_entered_at, corrected_exited_at=corrected_exited_at,
                fee_before_minor=plan.fee_before, fee_after_minor=plan.fee_after,
                resolved_at=now, resolved_by=user_id)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        raise Conflict(f"dispute {dispute.id} was resolved by someone else meanwhile")
    session.refresh(dispute)

    reason = f"dispute {dispute.id} ({outcome}): {note}"
    movements: list[dict[str, Any]] = []
    if plan.credit:
        rec = payments.adjust(session, site, stay, amount_minor=plan.credit, reason=reason,
                              reference=f"dispute-{dispute.id}-credit", user_id=user_id, dispute_id=dispute.id)
        movements.append({"payment_id": rec.payment.id, "kind": "adjustment", "amount_minor": plan.credit})
    if plan.refund:
        rec = payments.refund(session, site, stay, amount_minor=plan.refund, reason=reason,
                              reference=f"dispute-{dispute.id}-refund", method=refund_method, user_id=user_id,
                              dispute_id=dispute.id)
        movements.append({"payment_id": rec.payment.id, "kind": "refund", "amount_minor": -plan.refund})
    audit.append(session, "dispute.resolved", "dispute", dispute.id,
                 {"session_id": stay.id, "plate": stay.plate, "outcome": outcome, "note": note,
                  "corrected_entered_at": corrected_entered_at, "corrected_exited_at": corrected_exited_at,
                  "fee_before_minor": plan.fee_before, "fee_after_minor": plan.fee_after,
                  "currency": site.currency, "movements": movements},
                 actor=_actor(user_id), site_id=site.id, at=now)
    return dispute


# --- deadlines --------------------------------------------------------------------------------

def overdue(session: Session, site_ids: Sequence[int], now: Optional[datetime] = None) -> list[Dispute]:
    """Open disputes older than their site's ``dispute_review_days``, oldest first (one query)."""
    if not site_ids:
        return []
    now = now or utcnow()
    by_days: dict[int, list[int]] = {}
    for sid, days in session.execute(select(Site.id, Site.dispute_review_days).where(Site.id.in_(list(site_ids)))):
        by_days.setdefault(int(days), []).append(sid)
    if not by_days:
        return []
    late = or_(*(and_(Dispute.site_id.in_(ids), Dispute.opened_at < now - timedelta(days=days))
                 for days, ids in by_days.items()))
    return list(session.scalars(select(Dispute).where(Dispute.status == "open", late)
                                .order_by(Dispute.opened_at, Dispute.id)))

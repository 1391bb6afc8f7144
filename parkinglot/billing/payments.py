"""Money movements: payments, refunds and adjustments, in minor units.

Nothing is deleted or edited: a correction is a new row. A payment is
idempotent by its reference (a pay station retrying gets the same row back),
and every movement writes an audit event.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..records import audit, revenue_rollup
from ..records.errors import Conflict, InvalidInput, NotFound
from ..records.models import PAYMENT_METHODS, ParkingSession, Payment, Site

MAX_REFERENCE = 64
#: Ways money can move (an adjustment is not money; "app" is the older name of "mobile").
MONEY_METHODS = tuple(m for m in PAYMENT_METHODS if m != "adjustment")


@dataclass(frozen=True)
class Recorded:
    payment: Payment
    created: bool  # False: the reference was already recorded (an idempotent retry)


def _actor(user_id: Optional[int], device_id: Optional[int]) -> audit.Actor:
    if user_id:
        return audit.Actor.user(user_id)
    if device_id:
        return audit.Actor.device(device_id)
    return audit.SYSTEM


def _reference(reference: str) -> str:
    reference = (reference or "").strip()
    if not reference or len(reference) > MAX_REFERENCE:
        raise InvalidInput("a money movement needs a reference (at most 64 characters)")
    return reference


def _same_or_conflict(prior: Payment, kind: str, amount_minor: int, stay_id: Optional[int]) -> "Recorded":
    """An idempotent retry returns the first row; the same reference for another movement is refused."""
    if prior.kind != kind or prior.amount_minor != amount_minor or prior.session_id != stay_id:
        raise Conflict(f"reference {prior.reference!r} was already used for a different movement")
    return Recorded(prior, False)


def cash_paid(session: Session, stay_id: int) -> int:
    """Money actually received for a stay, less refunds and voids (credits/adjustments are not cash)."""
    return int(session.scalar(select(func.coalesce(func.sum(Payment.amount_minor), 0)).where(
        Payment.session_id == stay_id, Payment.kind.in_(("payment", "refund", "void")))) or 0)


def _existing(session: Session, site_id: int, reference: str) -> Optional[Payment]:
    return session.scalar(select(Payment).where(Payment.site_id == site_id, Payment.reference == reference))


def _insert(session: Session, payment: Payment, site: Site, stay: Optional[ParkingSession]) -> Recorded:
    """Write a movement and count it in the daily revenue roll-up, both or neither."""
    try:
        with session.begin_nested():
            session.add(payment)
            session.flush()
            revenue_rollup.add_payment(session, payment, ZoneInfo(site.timezone),
                                       stay.exit_lane_id if stay is not None else None)
    except IntegrityError:
        existing = _existing(session, payment.site_id, payment.reference)
        if existing is None:
            raise
        return Recorded(existing, False)
    return Recorded(payment, True)


def record_payment(
    session: Session,
    site: Site,
    *,
    amount_minor: int,
    method: str,
    reference: str,
    stay: Optional[ParkingSession] = None,
    permit_id: Optional[int] = None,
    paid_until: Optional[datetime] = None,
    lane_id: Optional[int] = None,
    user_id: Optional[int] = None,
    device_id: Optional[int] = None,
    terminal_ref: Optional[str] = None,
    at: Optional[datetime] = None,
    new_reference: bool = False,
) -> Recorded:
    """Record money received. The same ``reference`` twice returns the first row (if it matches).

    ``at`` is when the money was taken, if not now (a pay station that was offline);
    ``terminal_ref`` is the pay station's own transaction reference; ``new_reference``: the
    caller has just looked the reference up in this transaction (a race is still caught)."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
        raise InvalidInput("a payment must be a positive amount")
    if method not in MONEY_METHODS:
        raise InvalidInput(f"payment method must be one of {', '.join(MONEY_METHODS)}; got {method!r}")
    reference = _reference(reference)
    prior = None if new_reference else _existing(session, site.id, reference)
    if prior is not None:
        return _same_or_conflict(prior, "payment", amount_minor, stay.id if stay else None)
    payment = Payment(
        site_id=site.id, session_id=stay.id if stay else None, permit_id=permit_id, kind="payment", method=method,
        amount_minor=amount_minor, currency=site.currency, reference=reference, lane_id=lane_id,
        tariff_version_id=stay.tariff_version_id if stay else None, user_id=user_id, device_id=device_id,
        paid_until=paid_until, terminal_ref=terminal_ref, **({"created_at": at} if at else {}),
    )
    result = _insert(session, payment, site, stay)
    if result.created:
        audit.append(session, "payment.recorded", "payment", payment.id,
                     {"amount_minor": amount_minor, "currency": site.currency, "method": method,
                      "reference": reference, "session_id": payment.session_id, "paid_until": paid_until,
                      "lane_id": lane_id, "terminal_ref": terminal_ref,
                      # the stay's plate and ticket, so a reference that contains them is kept as a digest
                      **({"plate": stay.plate, "ticket": stay.ticket} if stay is not None else {})},
                     actor=_actor(user_id, device_id), site_id=site.id)
    return result


def refund(
    session: Session,
    site: Site,
    stay: ParkingSession,
    *,
    amount_minor: int,
    reason: str,
    reference: str,
    method: str = "card",
    user_id: Optional[int] = None,
    dispute_id: Optional[int] = None,
) -> Recorded:
    """Give money back for a stay: never more than was paid, always with a reason and who/what decided."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
        raise InvalidInput("a refund must be a positive amount")
    if not (reason or "").strip():
        raise InvalidInput("a refund needs a reason")
    if user_id is None and dispute_id is None:
        raise InvalidInput("a refund must name the operator or the dispute behind it")
    if method not in MONEY_METHODS:
        raise InvalidInput(f"unknown refund method {method!r}; one of {', '.join(MONEY_METHODS)}")
    reference = _reference(reference)
    prior = _existing(session, site.id, reference)
    if prior is not None:
        return _same_or_conflict(prior, "refund", -amount_minor, stay.id)
    available = cash_paid(session, stay.id)
    if amount_minor > available:
        raise InvalidInput(f"refund of {amount_minor} exceeds the {available} paid for this stay (minor units)")
    payment = Payment(
        site_id=site.id, session_id=stay.id, kind="refund", method=method, amount_minor=-amount_minor,
        currency=site.currency, reference=reference, tariff_version_id=stay.tariff_version_id,
        user_id=user_id, dispute_id=dispute_id, reason=reason.strip(),
    )
    result = _insert(session, payment, site, stay)
    if result.created:
        audit.append(session, "payment.refunded", "payment", payment.id,
                     {"amount_minor": -amount_minor, "currency": site.currency, "reason": reason,
                      "session_id": stay.id, "dispute_id": dispute_id, "plate": stay.plate},
                     actor=_actor(user_id, None), site_id=site.id)
    return result


def adjust(
    session: Session,
    site: Site,
    stay: ParkingSession,
    *,
    amount_minor: int,
    reason: str,
    reference: str,
    user_id: Optional[int] = None,
    dispute_id: Optional[int] = None,
) -> Recorded:
    """A non-cash correction of what a stay owes (positive: credit to the driver)."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor == 0:
        raise InvalidInput("an adjustment must be a non-zero amount")
    if not (reason or "").strip():
        raise InvalidInput("an adjustment needs a reason")
    if user_id is None and dispute_id is None:
        raise InvalidInput("an adjustment must name the operator or the dispute behind it")
    reference = _reference(reference)
    prior = _existing(session, site.id, reference)
    if prior is not None:
        return _same_or_conflict(prior, "adjustment", amount_minor, stay.id)
    payment = Payment(
        site_id=site.id, session_id=stay.id, kind="adjustment", method="adjustment", amount_minor=amount_minor,
        currency=site.currency, reference=reference, tariff_version_id=stay.tariff_version_id,
        user_id=user_id, dispute_id=dispute_id, reason=reason.strip(),
    )
    result = _insert(session, payment, site, stay)
    if result.created:
        audit.append(session, "payment.adjusted", "payment", payment.id,
                     {"amount_minor": amount_minor, "reason": reason, "session_id": stay.id, "dispute_id": dispute_id,
                      "plate": stay.plate},
                     actor=_actor(user_id, None), site_id=site.id)
    return result


class AlreadyVoided(Conflict):
    code = "already_voided"


def void(
    session: Session,
    site: Site,
    payment: Payment,
    *,
    reason: str,
    user_id: int,
    reference: Optional[str] = None,
) -> Recorded:
    """Cancel a payment recorded by mistake (no money changed hands: the wrong stay, keyed twice).

    Nothing is edited: a ``void`` row with the opposite amount, the same method, lane and
    tariff, and ``voids_id`` naming the payment, so revenue, balances and the roll-up all
    net it out. A payment is voided at most once (a unique index says so too); money that
    was really received and is given back is a refund, not a void."""
    if payment.kind != "payment" or payment.site_id != site.id:
        raise InvalidInput("only a payment of this site can be voided (give money back with a refund)")
    if not (reason or "").strip():
        raise InvalidInput("a void needs a reason")
    if not user_id:
        raise InvalidInput("a void must name the supervisor who made it")
    reference = _reference(reference or f"void:{payment.id}")
    prior = session.scalar(select(Payment).where(Payment.voids_id == payment.id))
    if prior is not None:
        raise AlreadyVoided(f"payment {payment.id} was already voided", void_id=prior.id)
    stay = session.get(ParkingSession, payment.session_id) if payment.session_id else None
    row = Payment(
        site_id=site.id, session_id=payment.session_id, permit_id=payment.permit_id, kind="void",
        method=payment.method, amount_minor=-payment.amount_minor, currency=payment.currency, reference=reference,
        lane_id=payment.lane_id, tariff_version_id=payment.tariff_version_id, user_id=user_id,
        reason=reason.strip(), voids_id=payment.id,
    )
    result = _insert(session, row, site, stay)
    if not result.created:  # a racing void of the same payment (same reference) won
        raise AlreadyVoided(f"payment {payment.id} was already voided", void_id=result.payment.id)
    audit.append(session, "payment.voided", "payment", row.id,
                 {"voids_payment_id": payment.id, "amount_minor": -payment.amount_minor, "currency": payment.currency,
                  "method": payment.method, "reason": reason.strip(), "session_id": payment.session_id,
                  **({"plate": stay.plate} if stay is not None else {})},
                 actor=_actor(user_id, None), site_id=site.id)
    return result


def get_payment(session: Session, payment_id: int) -> Payment:
    p = session.get(Payment, payment_id)
    if p is None:
        raise NotFound(f"unknown payment {payment_id}")
    return p

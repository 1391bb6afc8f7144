"""Unpaid balances: a car let out while its stay still owed money, and writing that money off.

Every exit that leaves money owed (a confirmed look-alike match, an attendant's manual exit,
an evacuation) bills the stay's fee as a normal exit does, so reconciliation sees the open
balance, and records here how much was owed, why, and who approved it. Writing a balance off
is a supervisor's or finance's decision: an ``adjustment`` credit with the reason, noted on
the balance row with their name.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..records import audit, stays
from ..records.errors import Conflict, InvalidInput, NotFound
from ..records.models import UNPAID_CAUSES, AuditEvent, Lane, ParkingSession, Payment, Site, UnpaidBalance, User
from ..records.types import utcnow
from . import fees, payments

MIN_REASON_LEN = 3


def _reason(reason: str, what: str = "a reason") -> str:
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON_LEN:
        raise InvalidInput(f"{what} is required (at least {MIN_REASON_LEN} characters)")
    return reason[:500]


@dataclass(frozen=True)
class Closed:
    """A stay closed by a person or the emergency mode, and what it still owed (if anything)."""

    stay: ParkingSession
    fee_minor: int
    unpaid: Optional[UnpaidBalance]


def record_unpaid(session: Session, site: Site, stay: ParkingSession, *, due_minor: int, cause: str,
                  reason: str, lane: Optional[Lane], user: Optional[User]) -> Optional[UnpaidBalance]:
    """Note that ``stay`` left owing ``due_minor`` (nothing is written when it owed nothing)."""
    if cause not in UNPAID_CAUSES:
        raise InvalidInput(f"unknown cause {cause!r}")
    if due_minor <= 0:
        return None
    row = UnpaidBalance(site_id=site.id, session_id=stay.id, lane_id=lane.id if lane else None,
                        amount_minor=due_minor, currency=site.currency, cause=cause, reason=_reason(reason),
                        approved_by=user.id if user else None, created_at=utcnow())
    session.add(row)
    session.flush()
    audit.append(session, "stay.left_unpaid", "stay", stay.id,
                 {"amount_minor": due_minor, "currency": site.currency, "cause": cause, "reason": row.reason,
                  "lane": lane.code if lane else None, "approved_by": user.username if user else None,
                  "plate": stay.plate},
                 actor=audit.Actor.user(user.id) if user else audit.SYSTEM, site_id=site.id)
    return row


def close_owing(session: Session, stay: ParkingSession, *, lane: Optional[Lane], user: Optional[User], cause: str,
                reason: str, closed_reason: str, at: Optional[datetime] = None,
                exit_read_id: Optional[int] = None) -> Closed:
    """Close ``stay`` at ``at`` with its fee billed, recording any amount still due as unpaid.

    The close itself is ``stays.close_stay`` (exactly once); the fee is priced at the
    moment the car is let out, as at a camera exit."""
    at = at or utcnow()
    site = session.get(Site, stay.site_id)
    status = fees.fee_status(session, site, stay, at)
    actor = audit.Actor.user(user.id) if user else audit.SYSTEM
    stays.close_stay(session, stay, exited_at=at, exit_lane_id=lane.id if lane else None, exit_read_id=exit_read_id,
                     fee_minor=status.total_minor, reason=closed_reason, actor=actor)
    unpaid = record_unpaid(session, site, stay, due_minor=status.due_minor, cause=cause, reason=reason, lane=lane,
                           user=user)
    return Closed(stay, status.total_minor, unpaid)


def emergency_approver(session: Session, site: Site) -> Optional[User]:
    """Who switched the site's emergency mode on (the last ``site.emergency_on``): the person an
    evacuation's unpaid exits are put down to."""
    actor_id = session.scalar(select(AuditEvent.actor_id).where(
        AuditEvent.entity_type == "site", AuditEvent.entity_id == site.code, AuditEvent.action == "site.emergency_on",
        AuditEvent.actor_type == "user").order_by(AuditEvent.id.desc()).limit(1))
    return session.get(User, int(actor_id)) if actor_id and actor_id.isdigit() else None


def remaining_minor(session: Session, balance: UnpaidBalance) -> int:
    """What the stay still owes now: its billed fee less everything paid, refunded or credited."""
    stay = session.get(ParkingSession, balance.session_id)
    return (stay.fee_minor or 0) - fees.payments_of(session, stay.id).paid_minor


def get_balance(session: Session, balance_id: int) -> UnpaidBalance:
    row = session.get(UnpaidBalance, balance_id)
    if row is None:
        raise NotFound(f"unknown unpaid balance {balance_id}")
    return row


def balance_of_stay(session: Session, stay_id: int) -> Optional[UnpaidBalance]:
    return session.scalar(select(UnpaidBalance).where(UnpaidBalance.session_id == stay_id))


def write_off(session: Session, balance: UnpaidBalance, user: User, reason: str) -> UnpaidBalance:
    """Give up on what a stay still owes: a credit of the remaining amount, with the reason and
    the approver. Refused when the balance was written off already or has been paid since."""
    reason = _reason(reason, "a reason for the write-off")
    if balance.written_off_at is not None:
        raise Conflict(f"this balance was already written off on {balance.written_off_at:%Y-%m-%d}")
    left = remaining_minor(session, balance)
    if left <= 0:
        raise Conflict("nothing is left to write off: the stay has been paid since")
    site = session.get(Site, balance.site_id)
    stay = session.get(ParkingSession, balance.session_id)
    credit = payments.adjust(session, site, stay, amount_minor=left, reason=f"write-off: {reason}",
                             reference=f"write-off-{balance.id}", user_id=user.id).payment
    balance.written_off_at = utcnow()
    balance.written_off_by = user.id
    balance.write_off_reason = reason
    balance.write_off_payment_id = credit.id
    session.flush()
    audit.append(session, "stay.balance_written_off", "stay", stay.id,
                 {"amount_minor": left, "currency": site.currency, "reason": reason, "by": user.username,
                  "payment_id": credit.id, "plate": stay.plate},
                 actor=audit.Actor.user(user.id), site_id=site.id)
    return balance


def note_settled(session: Session, balance: UnpaidBalance, payment: Payment, *, user: Optional[User],
                 device_id: Optional[int]) -> None:
    """Audit that ``payment`` paid off what the stay still owed when its car was let out.

    The balance row is not edited: whether it is open or settled is always worked out from
    the stay's payments (``remaining_minor``), so a void of this payment re-opens it."""
    stay = session.get(ParkingSession, balance.session_id)
    actor = audit.Actor.user(user.id) if user else audit.Actor.device(device_id) if device_id else audit.SYSTEM
    audit.append(session, "stay.balance_settled", "stay", stay.id,
                 {"balance_id": balance.id, "payment_id": payment.id, "amount_minor": payment.amount_minor,
                  "currency": payment.currency, "method": payment.method, "terminal_ref": payment.terminal_ref,
                  "by": user.username if user else None, "plate": stay.plate},
                 actor=actor, site_id=balance.site_id)

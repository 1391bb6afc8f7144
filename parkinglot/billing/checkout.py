"""Paying for a stay: find it, quote it, take the money, give a receipt.

Used by pay stations and exit terminals (``web/api_pay.py``) and the attendant's cash
desk (the console's stay page). The server's clock prices the stay at the moment
of payment; the amount offered must equal what a fresh quote says is due, so a
quote that went stale while the driver fumbled for coins is refused with the new
amount instead of leaving a balance (or an overpayment) behind.

An idempotency key makes a payment safe to retry: the same key with the same
payment returns the first row and receipt; the same key with anything else
(another amount, method, stay or terminal reference) is refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Optional

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, joinedload

from ..records import lookup
from ..records.errors import Conflict, InvalidInput, NotFound
from ..records.models import Decision as DecisionRow
from ..records.models import Device, Lane, ParkingSession, Payment, Site, UnpaidBalance, User
from ..records.sites import currency_exponent
from ..records.types import utcnow
from . import balances, fees, payments

#: What a pay station or terminal may record (``app`` is the older name of ``mobile``).
TERMINAL_METHODS = ("cash", "card", "mobile", "validation")
MAX_KEY = 48  # the reference column is 64: room for the device prefix


class StayClosed(Conflict):
    code = "stay_closed"


class NothingDue(Conflict):
    code = "nothing_due"


class AmountMismatch(Conflict):
    code = "amount_mismatch"


class KeyReused(Conflict):
    code = "idempotency_key_reused"


def to_minor(amount: Any, currency: str) -> int:
    """A decimal string in major units (``"12.50"``) -> minor units; never a float."""
    if isinstance(amount, bool) or not isinstance(amount, str) or not 0 < len(amount) <= 16:
        raise InvalidInput("amount must be a decimal string in major units, e.g. \"12.50\"")
    try:
        value = Decimal(amount.strip())
    except InvalidOperation:
        raise InvalidInput(f"amount {amount[:16]!r} is not a decimal number") from None
    if not value.is_finite() or value <= 0:
        raise InvalidInput("amount must be a positive decimal number")
    exp = currency_exponent(currency)
    scaled = value.scaleb(exp)
    if scaled != scaled.to_integral_value():
        raise InvalidInput(f"{currency} amounts have at most {exp} decimals")
    return int(scaled)


def to_major(amount_minor: Optional[int], currency: str) -> Optional[str]:
    """Minor units -> the decimal string the API speaks (``"12.50"``)."""
    if amount_minor is None:
        return None
    exp = currency_exponent(currency)
    return str((Decimal(int(amount_minor)) / (Decimal(10) ** exp)).quantize(Decimal(1).scaleb(-exp)))


# --- finding and quoting a stay ---------------------------------------------------------------

# Built once; the stay's tariff version comes in the same query (the quote needs it).
_WITH_TARIFF = joinedload(ParkingSession.tariff_version)
_BY_TICKET = (select(ParkingSession).options(_WITH_TARIFF)
              .where(ParkingSession.site_id == bindparam("site_id"), ParkingSession.ticket == bindparam("ticket")))
_OPEN_BY_PLATE = select(ParkingSession).options(_WITH_TARIFF).where(*lookup.OPEN_STAY_OF_PLATE)
# No car of that plate inside: its newest stay that left owing money not written off (a driver
# coming back to settle the debt).
_OWING_BY_PLATE = (select(ParkingSession).options(_WITH_TARIFF)
                   .join(UnpaidBalance, UnpaidBalance.session_id == ParkingSession.id)
                   .where(ParkingSession.site_id == bindparam("site_id"), ParkingSession.plate == bindparam("plate"),
                          UnpaidBalance.written_off_at.is_(None))
                   .order_by(UnpaidBalance.created_at.desc(), UnpaidBalance.id.desc()).limit(1))


def find_stay(session: Session, site: Site, *, ticket: Optional[str] = None, plate: Optional[str] = None,
              stay_id: Optional[int] = None, lock: bool = False) -> ParkingSession:
    """The stay a driver is paying for, by ticket, plate (its open stay, else its newest stay that
    left owing money) or id. Closed stays are found too (a ticket or id of a stay that left), so
    the caller can say so clearly or quote the unpaid balance.

    ``lock`` (by id): the stay's row is locked for the transaction (PostgreSQL; SQLite's write
    transactions are serial), so two terminals paying the same stay at once take turns."""
    if sum(x is not None for x in (ticket, plate, stay_id)) != 1:
        raise InvalidInput("give exactly one of ticket, plate or stay id")
    if ticket is not None:
        stay = session.scalar(_BY_TICKET, {"site_id": site.id, "ticket": ticket})
        if stay is None:
            raise NotFound("no stay with that ticket at this site")
    elif plate is not None:
        stay = session.scalar(_OPEN_BY_PLATE, {"site_id": site.id, "plate": plate})
        if stay is None:
            stay = session.scalar(_OWING_BY_PLATE, {"site_id": site.id, "plate": plate})
        if stay is None:
            raise NotFound("no vehicle with that plate is inside this site")
    else:
        if lock and session.get_bind().dialect.name == "postgresql":
            stay = session.get(ParkingSession, stay_id, with_for_update=True, populate_existing=True)
        else:
            stay = session.get(ParkingSession, stay_id, options=[_WITH_TARIFF])
        if stay is None or stay.site_id != site.id:
            raise NotFound(f"no stay {stay_id} at this site")
    return stay


class NotALaneTerminal(Conflict):
    code = "not_a_lane_terminal"


class NoCarWaiting(NotFound):
    code = "no_car_waiting"


# The newest exit refused for payment at a lane (ix_decision_lane_time).
_WAITING = (select(DecisionRow.session_id, DecisionRow.reason).where(DecisionRow.lane_id == bindparam("lane_id"),
                                                 DecisionRow.created_at >= bindparam("since"))
            .order_by(DecisionRow.created_at.desc(), DecisionRow.id.desc()).limit(1))


def waiting_at_lane(session: Session, site: Site, lane_id: Optional[int], *, within_s: int,
                    now: Optional[datetime] = None) -> ParkingSession:
    """The stay of the car at a lane's payment terminal: the last car the lane decided on, if
    that decision (within ``within_s``) refused it for payment. A terminal bound to no lane
    has no car of its own: it looks stays up by ticket or plate instead."""
    if lane_id is None:
        raise NotALaneTerminal("this pay station is not bound to a lane: look the stay up by ticket or plate")
    since = (now or utcnow()) - timedelta(seconds=within_s)
    row = session.execute(_WAITING, {"lane_id": lane_id, "since": since}).first()
    if row is None or row.reason != "payment_required" or row.session_id is None:
        raise NoCarWaiting("no car is waiting to pay at this lane")
    return find_stay(session, site, stay_id=row.session_id)


@dataclass(frozen=True)
class StayQuote:
    """What a stay owes now, and for how long paying that settles it.

    ``balance``: the stay has left and this is its open unpaid balance (``status.due_minor`` is
    what is still owed of it; nothing more accrues)."""

    stay: ParkingSession
    site: Site
    status: fees.FeeStatus
    at: datetime
    exit_grace: timedelta
    balance: Optional[UnpaidBalance] = None

    @property
    def exit_by(self) -> Optional[datetime]:
        """Leave by then and nothing more is due (None: the payment covers the stay for good)."""
        until = self.status.paid_until
        return None if until is None else until + self.exit_grace

    def to_dict(self) -> dict[str, Any]:
        s, cur = self.status, self.status.currency
        q = s.quote
        return {
            "stay_id": self.stay.id, "plate": self.stay.plate, "ticket": self.stay.ticket,
            "status": self.stay.status, "entered_at": _iso(self.stay.entered_at), "quoted_at": _iso(self.at),
            "currency": cur, "amount": to_major(s.total_minor, cur), "paid": to_major(s.paid_minor, cur),
            "amount_due": to_major(s.due_minor, cur), "amount_due_minor": s.due_minor,
            "paid_until": _iso(s.paid_until), "exit_grace_min": int(self.exit_grace.total_seconds() // 60),
            "exit_by": _iso(self.exit_by),
            "basis": "unpaid_balance" if self.balance is not None else q.basis if q else "free",
            "unpaid_balance_id": self.balance.id if self.balance is not None else None,
            "breakdown": [{"kind": ln.kind, "label": ln.label, "amount": str(ln.amount)} for ln in q.lines] if q else [],
        }


def _iso(dt: Optional[datetime]) -> Optional[str]:
    return None if dt is None else dt.isoformat()


def quote_stay(session: Session, site: Site, stay: ParkingSession, at: Optional[datetime] = None) -> StayQuote:
    """Price an open stay as if it left at ``at`` (default: now, the server's clock); a stay
    that left owing money quotes its open unpaid balance (``balance_quote``)."""
    at = at or utcnow()
    if stay.status != "open":
        return balance_quote(session, site, stay, at)
    status = fees.fee_status(session, site, stay, at)
    grace = timedelta(0)
    if status.quote is not None:
        grace = timedelta(minutes=status.quote.tariff.exit_grace_min)
    return StayQuote(stay, site, status, at, grace)


def balance_quote(session: Session, site: Site, stay: ParkingSession, at: datetime) -> StayQuote:
    """What a stay that has left still owes of its unpaid balance: its billed fee less everything
    paid, refunded or credited. Refused (``StayClosed``) when it left owing nothing, or its
    balance was settled or written off since: a closed stay is otherwise never paid."""
    balance = balances.balance_of_stay(session, stay.id)
    paid = fees.payments_of(session, stay.id)
    left = (stay.fee_minor or 0) - paid.paid_minor
    if balance is None or balance.written_off_at is not None or left <= 0:
        why = ("nothing was owed when it left" if balance is None
               else f"its unpaid balance was written off on {balance.written_off_at:%Y-%m-%d}"
               if balance.written_off_at is not None else "its unpaid balance has been settled")
        raise StayClosed(f"this stay is {stay.status}: it left at {_iso(stay.exited_at)} and cannot be paid here "
                         f"({why})", stay_id=stay.id, status=stay.status)
    status = fees.FeeStatus(stay.fee_minor or 0, paid.paid_minor, left, None, None, site.currency)
    return StayQuote(stay, site, status, at, timedelta(0), balance)


# --- taking a payment ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Taken:
    payment: Payment
    created: bool  # False: an idempotent retry; the first payment is returned
    quote: Optional[StayQuote]  # the quote the payment settled (None on a retry)


_BY_REFERENCE = select(Payment).where(Payment.site_id == bindparam("site_id"),
                                      Payment.reference == bindparam("reference"))


def device_reference(device: Device, key: str) -> str:
    """A terminal's idempotency key, scoped to the terminal (two terminals may count alike)."""
    return f"d{device.id}:{key}"


def take_payment(session: Session, site: Site, stay: ParkingSession, *, amount_minor: int, method: str,
                 reference: str, terminal_ref: Optional[str] = None, device: Optional[Device] = None,
                 user: Optional[User] = None, lane: Optional[Lane] = None, at: Optional[datetime] = None,
                 stay_locked: bool = False) -> Taken:
    """Record a payment that settles what ``stay`` owes now, exactly.

    A stay that has left with an open unpaid balance is paid the same way: the amount is the
    balance still owed, and the payment settles it (audited as ``stay.balance_settled``).

    Refused: a stay that is not open and has no open balance (``StayClosed``), nothing to pay (``NothingDue``), an
    amount other than the amount due (``AmountMismatch``, with the amount due), a
    ``reference`` already used for another payment (``KeyReused``). ``stay_locked``: the caller
    found it with ``find_stay(lock=True)``. Flushes only."""
    if method not in TERMINAL_METHODS:
        raise InvalidInput(f"method must be one of {', '.join(TERMINAL_METHODS)}; got {str(method)[:16]!r}")
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
        raise InvalidInput("amount must be positive")
    if not stay_locked and session.get_bind().dialect.name == "postgresql":  # two terminals at once take turns
        stay = session.get(ParkingSession, stay.id, with_for_update=True, populate_existing=True)
    prior = session.scalar(_BY_REFERENCE, {"site_id": site.id, "reference": reference})
    if prior is not None:
        same = (prior.kind == "payment" and prior.session_id == stay.id and prior.amount_minor == amount_minor
                and prior.method == method and (prior.terminal_ref or None) == (terminal_ref or None))
        if not same:
            raise KeyReused("this idempotency key was already used for a different payment",
                            payment_id=prior.id, amount=to_major(prior.amount_minor, prior.currency))
        return Taken(prior, False, None)
    q = quote_stay(session, site, stay, at)
    due = q.status.due_minor
    if due <= 0:
        raise NothingDue("nothing is due for this stay", amount_due=to_major(0, site.currency),
                         paid_until=_iso(q.status.paid_until), exit_by=_iso(q.exit_by))
    if amount_minor != due:
        word = "less" if amount_minor < due else "more"
        raise AmountMismatch(f"the amount is {word} than the {to_major(due, site.currency)} {site.currency} due; "
                             f"pay exactly the amount due", amount_due=to_major(due, site.currency),
                             amount_due_minor=due, currency=site.currency)
    recorded = payments.record_payment(
        session, site, amount_minor=amount_minor, method=method, reference=reference, stay=stay, new_reference=True,
        paid_until=q.status.paid_until, lane_id=lane.id if lane else None, user_id=user.id if user else None,
        device_id=device.id if device else None, terminal_ref=terminal_ref, at=q.at)
    if q.balance is not None and recorded.created:
        balances.note_settled(session, q.balance, recorded.payment, user=user, device_id=device.id if device else None)
    return Taken(recorded.payment, recorded.created, q)


# --- receipts -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Receipt:
    payment: Payment
    stay: Optional[ParkingSession]
    site: Site
    voided_by: Optional[Payment]
    exit_grace: timedelta
    taken_by: str

    @property
    def exit_by(self) -> Optional[datetime]:
        until = self.payment.paid_until
        return None if until is None else until + self.exit_grace

    def to_dict(self) -> dict[str, Any]:
        p, cur = self.payment, self.payment.currency
        return {
            "receipt_no": f"{self.site.code}-{p.id}", "payment_id": p.id, "site": self.site.code,
            "site_name": self.site.name, "stay_id": p.session_id, "plate": self.stay.plate if self.stay else None,
            "ticket": self.stay.ticket if self.stay else None,
            "entered_at": _iso(self.stay.entered_at) if self.stay else None, "paid_at": _iso(p.created_at),
            "amount": to_major(p.amount_minor, cur), "amount_minor": p.amount_minor, "currency": cur,
            "method": p.method, "terminal_ref": p.terminal_ref, "paid_until": _iso(p.paid_until),
            "exit_by": _iso(self.exit_by), "taken_by": self.taken_by,
            "voided": self.voided_by is not None,
            "voided_at": _iso(self.voided_by.created_at) if self.voided_by else None,
        }


def receipt(session: Session, site: Site, payment: Payment, *, known_unvoided: bool = False,
            quote: Optional[StayQuote] = None, device: Optional[Device] = None) -> Receipt:
    """The receipt of a payment (never of a refund or correction), saying if it was voided.

    Just recorded, the caller knows more: ``known_unvoided`` (it cannot be voided yet), the
    ``quote`` it settled (its exit grace) and the ``device`` that took it."""
    if payment.kind != "payment" or payment.site_id != site.id:
        raise NotFound(f"no payment {payment.id} at this site")
    stay = session.get(ParkingSession, payment.session_id) if payment.session_id else None
    voided_by = None if known_unvoided else session.scalar(select(Payment).where(Payment.voids_id == payment.id))
    grace = timedelta(0)
    if quote is not None:
        grace = quote.exit_grace
    elif stay is not None and stay.tariff_version_id:
        version = stay.tariff_version
        if version is not None:
            grace = timedelta(minutes=fees.tariff_of(version).exit_grace_min)
    if payment.device_id:
        if device is None or device.id != payment.device_id:
            device = session.get(Device, payment.device_id)
        taken_by = f"pay station {device.name}" if device else "pay station"
    elif payment.user_id:
        user = session.get(User, payment.user_id)
        taken_by = f"attendant {user.username}" if user else "attendant"
    else:
        taken_by = "system"
    return Receipt(payment, stay, site, voided_by, grace, taken_by)

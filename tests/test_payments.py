"""Payments, refunds and adjustments: signs, idempotency, limits, audit."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from parkinglot.billing import fees, payments, tariffs
from parkinglot.records import audit, stays, users
from parkinglot.records.errors import Conflict, InvalidInput
from parkinglot.records.models import AuditEvent, Payment, User

from .factories import T0, enter, later, make_site

HOURLY = {
    "schema": 1, "currency": "EUR",
    "rates": {"std": {"bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "2.00"}]}},
    "week": {"mon-sun": "std"},
}


@pytest.fixture
def stay(session):
    site, entry, exit_ = make_site(session)
    version = tariffs.create_version(session, site, code="STD", name="Standard", rules=HOURLY,
                                     effective_from=T0 - timedelta(days=1), make_default=True)
    s = enter(session, site, entry, "AB123")
    s.tariff_version_id = version.id
    session.flush()
    return site, s


def test_payment_is_recorded_and_audited(session, stay):
    site, s = stay
    rec = payments.record_payment(session, site, amount_minor=400, method="card", reference="pay-1", stay=s)
    assert rec.created and rec.payment.amount_minor == 400 and rec.payment.currency == "EUR"
    assert rec.payment.tariff_version_id == s.tariff_version_id
    assert fees.payments_of(session, s.id).paid_minor == 400
    session.commit()  # audit events are chained and written at commit
    events = audit.history(session, "payment", rec.payment.id)
    assert [e.action for e in events] == ["payment.recorded"]
    assert audit.verify(session).ok


def test_payment_is_idempotent_by_reference(session, stay):
    site, s = stay
    first = payments.record_payment(session, site, amount_minor=400, method="card", reference="pay-1", stay=s)
    again = payments.record_payment(session, site, amount_minor=400, method="card", reference="pay-1", stay=s)
    assert not again.created and again.payment.id == first.payment.id
    assert session.scalar(select(func.count()).select_from(Payment)) == 1
    with pytest.raises(Conflict):
        payments.record_payment(session, site, amount_minor=500, method="card", reference="pay-1", stay=s)


@pytest.mark.parametrize("amount", [0, -100])
def test_zero_or_negative_payment_is_refused(session, stay, amount):
    site, s = stay
    with pytest.raises(InvalidInput, match="positive"):
        payments.record_payment(session, site, amount_minor=amount, method="cash", reference="bad", stay=s)
    assert session.scalar(select(func.count()).select_from(Payment)) == 0


def test_non_integer_payment_is_refused(session, stay):
    site, s = stay
    with pytest.raises(InvalidInput):
        payments.record_payment(session, site, amount_minor=4.0, method="cash", reference="f", stay=s)  # type: ignore[arg-type]


def test_refund_above_what_was_paid_is_refused(session, stay):
    site, s = stay
    payments.record_payment(session, site, amount_minor=400, method="card", reference="pay-1", stay=s)
    with pytest.raises(InvalidInput, match="exceeds"):
        payments.refund(session, site, s, amount_minor=401, reason="overcharged", reference="r-1",
                        user_id=_user(session))
    rec = payments.refund(session, site, s, amount_minor=400, reason="overcharged", reference="r-2",
                          user_id=_user(session))
    assert rec.payment.amount_minor == -400 and rec.payment.kind == "refund"
    with pytest.raises(InvalidInput, match="exceeds"):
        payments.refund(session, site, s, amount_minor=1, reason="again", reference="r-3", user_id=_user(session))
    assert fees.payments_of(session, s.id).paid_minor == 0


def test_refund_needs_a_reason_and_someone_behind_it(session, stay):
    site, s = stay
    payments.record_payment(session, site, amount_minor=400, method="card", reference="pay-1", stay=s)
    with pytest.raises(InvalidInput, match="reason"):
        payments.refund(session, site, s, amount_minor=100, reason="  ", reference="r", user_id=_user(session))
    with pytest.raises(InvalidInput, match="operator or the dispute"):
        payments.refund(session, site, s, amount_minor=100, reason="x", reference="r")


def test_adjustment_needs_non_zero_amount(session, stay):
    site, s = stay
    with pytest.raises(InvalidInput, match="non-zero"):
        payments.adjust(session, site, s, amount_minor=0, reason="x", reference="a", user_id=_user(session))
    rec = payments.adjust(session, site, s, amount_minor=-150, reason="damaged barrier fee", reference="a",
                          user_id=_user(session))
    assert rec.payment.kind == "adjustment" and rec.payment.method == "adjustment"


def test_rows_are_never_updated(session, stay):
    """Corrections are new rows: a refund leaves the payment row as it was."""
    site, s = stay
    pay = payments.record_payment(session, site, amount_minor=400, method="cash", reference="pay-1", stay=s).payment
    payments.refund(session, site, s, amount_minor=150, reason="goodwill", reference="r-1", user_id=_user(session))
    session.expire_all()
    assert session.get(Payment, pay.id).amount_minor == 400
    assert session.scalar(select(func.count()).select_from(Payment)) == 2
    session.commit()  # audit events are chained and written at commit
    actions = session.scalars(select(AuditEvent.action).where(AuditEvent.entity_type == "payment")).all()
    assert actions == ["payment.recorded", "payment.refunded"]


def test_paid_stay_exits_without_fee_due(session, stay):
    site, s = stay
    status = fees.fee_status(session, site, s, later(90))
    assert status.total_minor == 400 and status.due_minor == 400
    payments.record_payment(session, site, amount_minor=status.due_minor, method="app", reference="pay-1", stay=s,
                            paid_until=status.paid_until)
    assert fees.fee_status(session, site, s, later(95)).due_minor == 0
    stays.close_stay(session, s, exited_at=later(95), fee_minor=400)
    assert s.status == "closed"


def _user(session) -> int:
    existing = session.scalar(select(User).where(User.username == "fin"))
    return (existing or users.create_user(session, username="fin", password="harbour-lantern-test-9", role="finance")).id


def test_credit_adjustment_does_not_make_cash_refundable(session, stay):
    site, s = stay
    payments.adjust(session, site, s, amount_minor=600, reason="fee waived", reference="a-1", user_id=_user(session))
    with pytest.raises(InvalidInput, match="exceeds"):
        payments.refund(session, site, s, amount_minor=600, reason="cash back", reference="r-1",
                        user_id=_user(session))


def test_adjustment_reference_reused_for_another_amount_is_a_conflict(session, stay):
    site, s = stay
    payments.adjust(session, site, s, amount_minor=600, reason="fee waived", reference="a-1", user_id=_user(session))
    with pytest.raises(Conflict):
        payments.adjust(session, site, s, amount_minor=999, reason="other", reference="a-1", user_id=_user(session))


def test_payment_reference_reused_for_another_stay_is_a_conflict(session, stay):
    """A pay station that reuses a key for another car must not make that car look paid."""
    from parkinglot.records.models import Lane

    site, s = stay
    other = enter(session, site, session.get(Lane, s.entry_lane_id), "KX55")
    other.tariff_version_id = s.tariff_version_id
    session.flush()
    payments.record_payment(session, site, amount_minor=400, method="card", reference="pay-1", stay=s)
    for target in (other, None):
        with pytest.raises(Conflict, match="pay-1"):
            payments.record_payment(session, site, amount_minor=400, method="card", reference="pay-1", stay=target)
    assert fees.payments_of(session, other.id).paid_minor == 0
    assert fees.fee_status(session, site, other, later(90)).due_minor == 400
    again = payments.record_payment(session, site, amount_minor=400, method="card", reference="pay-1", stay=s)
    assert not again.created and again.payment.session_id == s.id  # the true retry is still idempotent


def test_refund_reference_reused_for_another_refund_is_a_conflict(session, stay):
    site, s = stay
    payments.record_payment(session, site, amount_minor=400, method="card", reference="pay-1", stay=s)
    first = payments.refund(session, site, s, amount_minor=100, reason="goodwill", reference="r-1",
                            user_id=_user(session))
    with pytest.raises(Conflict, match="r-1"):
        payments.refund(session, site, s, amount_minor=250, reason="more goodwill", reference="r-1",
                        user_id=_user(session))
    with pytest.raises(Conflict, match="pay-1"):
        payments.refund(session, site, s, amount_minor=400, reason="wrong key", reference="pay-1",
                        user_id=_user(session))
    retry = payments.refund(session, site, s, amount_minor=100, reason="goodwill", reference="r-1",
                            user_id=_user(session))
    assert not retry.created and retry.payment.id == first.payment.id
    assert fees.payments_of(session, s.id).paid_minor == 300

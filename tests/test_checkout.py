"""Taking and voiding payments (billing/checkout.py, payments.void), on both backends."""
from datetime import timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from parkinglot.billing import checkout, fees, payments, reports, tariffs
from parkinglot.records import audit, revenue_rollup, stays, users
from parkinglot.records.errors import Conflict, InvalidInput
from parkinglot.records.revenue_rollup import local_day
from parkinglot.records.types import utcnow

from .factories import make_site

UTC = timezone.utc
RULES = {"schema": 1, "currency": "EUR", "exit_grace_min": 10,
         "rates": {"std": {"bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "2.00"}]}},
         "week": {"mon-sun": "std"}}
T0 = utcnow().replace(microsecond=0) - timedelta(hours=3)  # a void is posted at the server's clock


@pytest.fixture
def w(session):
    site, entry, exit_ = make_site(session, code="CK")
    version = tariffs.create_version(session, site, code="STD", name="Standard", rules=RULES,
                                     effective_from=T0 - timedelta(days=1), make_default=True)
    sup = users.create_user(session, username="sup", password="harbour-lantern-test-9", role="supervisor", sites=[site])
    stay = stays.open_stay(session, site_id=site.id, plate="CK1", entered_at=T0, entry_lane_id=entry.id,
                           tariff_version_id=version.id, ticket="CK-T1")
    return {"site": site, "entry": entry, "exit": exit_, "stay": stay, "sup": sup}


def take(session, w, amount=600, at=T0 + timedelta(hours=2, minutes=30), ref="k1", method="cash"):
    return checkout.take_payment(session, w["site"], w["stay"], amount_minor=amount, method=method, reference=ref,
                                 user=w["sup"], at=at)


def test_payment_settles_until_paid_until_plus_grace(session, w):
    q = checkout.quote_stay(session, w["site"], w["stay"], T0 + timedelta(hours=2, minutes=30))
    assert q.status.due_minor == 600 and q.exit_grace == timedelta(minutes=10)
    assert q.exit_by == q.status.paid_until + timedelta(minutes=10)
    taken = take(session, w)
    assert taken.created and taken.payment.paid_until == q.status.paid_until
    # leaving by exit_by costs nothing more; later, the next hour is due
    assert fees.fee_status(session, w["site"], w["stay"], q.exit_by).due_minor == 0
    assert fees.fee_status(session, w["site"], w["stay"], q.exit_by + timedelta(minutes=1)).due_minor == 200


def test_amount_must_equal_the_quote(session, w):
    with pytest.raises(checkout.AmountMismatch) as exc:
        take(session, w, amount=500)
    assert exc.value.details["amount_due"] == "6.00" and exc.value.status == 409
    with pytest.raises(InvalidInput):
        take(session, w, method="adjustment")


def test_void_nets_out_of_revenue_balances_and_rollup(session, w):
    taken = take(session, w)
    zone = ZoneInfo(w["site"].timezone)
    first, day = local_day(T0, zone), local_day(utcnow(), zone)
    before = reports.revenue(session, w["site"], first, day)
    assert before.totals.payments == 1 and before.totals.takings_minor == 600
    voided = payments.void(session, w["site"], taken.payment, reason="keyed on the wrong stay", user_id=w["sup"].id)
    assert voided.payment.kind == "void" and voided.payment.amount_minor == -600
    assert voided.payment.voids_id == taken.payment.id and voided.payment.method == "cash"
    after = reports.revenue(session, w["site"], first, day)
    assert after.totals.payments == 0 and after.totals.takings_minor == 0 and after.totals.net_takings_minor == 0
    assert {r.group: r.totals.takings_minor for r in after.splits["method"]} == {"cash": 0}
    # the money is owed again, and the voided payment's paid_until no longer counts
    status = fees.fee_status(session, w["site"], w["stay"], T0 + timedelta(hours=2, minutes=30))
    assert status.due_minor == 600 and status.paid_until is not None
    assert fees.payments_of(session, w["stay"].id).paid_until is None
    assert revenue_rollup.differences(session) == {}
    audit.write_pending(session)
    events = [e.action for e in audit.history(session, "payment", voided.payment.id)]
    assert events == ["payment.voided"]
    # a stay that leaves owing the voided amount shows it as an open balance
    stays.close_stay(session, w["stay"], exited_at=T0 + timedelta(hours=2, minutes=35), exit_lane_id=w["exit"].id,
                     fee_minor=600)
    rc = reports.reconciliation(session, reports.period(w["site"], first, day))
    assert rc.paid_minor == 0 and rc.open_balance_minor == 600 and rc.collected.takings_minor == 0
    assert revenue_rollup.differences(session) == {}
    assert audit.verify(session).ok


def test_void_is_once_with_a_reason_and_never_of_a_refund(session, w):
    taken = take(session, w)
    with pytest.raises(InvalidInput):
        payments.void(session, w["site"], taken.payment, reason="  ", user_id=w["sup"].id)
    payments.void(session, w["site"], taken.payment, reason="twice", user_id=w["sup"].id)
    with pytest.raises(payments.AlreadyVoided):
        payments.void(session, w["site"], taken.payment, reason="again", user_id=w["sup"].id)
    # a voided payment is no money received: it cannot be refunded
    with pytest.raises(InvalidInput):
        payments.refund(session, w["site"], w["stay"], amount_minor=600, reason="x", reference="r1",
                        user_id=w["sup"].id)


def test_refund_is_not_voidable(session, w):
    take(session, w)
    refund = payments.refund(session, w["site"], w["stay"], amount_minor=100, reason="goodwill", reference="r1",
                             user_id=w["sup"].id)
    with pytest.raises(InvalidInput):
        payments.void(session, w["site"], refund.payment, reason="no", user_id=w["sup"].id)


def test_closed_stay_and_nothing_due_are_conflicts(session, w):
    take(session, w)
    with pytest.raises(checkout.NothingDue):
        take(session, w, ref="k2")
    stays.close_stay(session, w["stay"], exited_at=T0 + timedelta(hours=2, minutes=35), exit_lane_id=w["exit"].id)
    with pytest.raises(checkout.StayClosed) as exc:
        take(session, w, ref="k3")
    assert isinstance(exc.value, Conflict)

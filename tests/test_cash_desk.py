"""The attendant's cash desk on the stay page, receipts, voids and dispute refund methods (both backends)."""
from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from parkinglot.billing import reports
from parkinglot.records import audit, revenue_rollup
from parkinglot.records.models import AuditEvent, Dispute, ParkingSession, Payment, Site, UnpaidBalance, User
from parkinglot.records.types import utcnow

from .console_world import csrf, token
from .test_console import as_role, world  # noqa: F401  (the console's fixtures)

KEY = re.compile(r'name="key" type="hidden" value="([^"]+)"|name="key" value="([^"]+)"')
DUE = re.compile(r'class="amount-due">([0-9.,]+) EUR<')


def desk(client, stay_id):
    """The stay page's desk: its CSRF token, idempotency key and the amount due shown."""
    page = client.get(f"/stays/{stay_id}")
    assert page.status_code == 200
    key = KEY.search(page.text)
    due = DUE.search(page.text)
    return page.text, token(page.text), (key.group(1) or key.group(2)) if key else None, due.group(1) if due else None


def payments_of(db, stay_id):
    with db.sessions() as s:
        return list(s.scalars(select(Payment).where(Payment.session_id == stay_id).order_by(Payment.id)))


def test_attendant_takes_cash_and_prints_a_receipt(as_role, world, db):
    att = as_role("attendant")
    page, csrf_token, key, due = desk(att, world.open_stay)
    assert "Take a payment" in page and key and due == "6.00"   # 2 h and a few seconds: 3 started hours at 2.00
    form = {"csrf_token": csrf_token, "key": key, "method": "cash", "amount": due}
    r = att.post(f"/stays/{world.open_stay}/pay", data=form)
    assert r.status_code == 303 and "/receipt" in r.headers["Location"]
    receipt = att.get(r.headers["Location"])
    assert receipt.status_code == 200
    assert "6.00 EUR" in receipt.text and "AB123" in receipt.text and "Payment of 6.00 EUR" in receipt.text
    assert "attendant attendant" in receipt.text and "Back to the stay" in receipt.text
    # the same form sent again records nothing new
    again = att.post(f"/stays/{world.open_stay}/pay", data=form)
    assert again.status_code == 303
    rows = payments_of(db, world.open_stay)
    assert len(rows) == 1 and rows[0].method == "cash" and rows[0].amount_minor == 600
    with db.sessions() as s:
        att_id = s.scalar(select(User.id).where(User.username == "attendant"))
        assert rows[0].user_id == att_id and rows[0].paid_until is not None
        ev = s.scalar(select(AuditEvent).where(AuditEvent.action == "payment.recorded",
                                               AuditEvent.entity_id == str(rows[0].id)))
        assert ev.actor_type == "user" and ev.actor_id == str(att_id)
    # paid: the desk says nothing is due
    page, _, key, due = desk(att, world.open_stay)
    assert due is None and "Nothing is due now" in page and "Receipt" in page


def test_desk_refuses_another_amount_with_the_amount_due(as_role, world, db):
    att = as_role("attendant")
    _, csrf_token, key, due = desk(att, world.open_stay)
    r = att.post(f"/stays/{world.open_stay}/pay",
                 data={"csrf_token": csrf_token, "key": key, "method": "card", "amount": "3.50"})
    assert r.status_code == 409 and "6.00 EUR due" in r.text and "Payment not recorded" in r.text
    r = att.post(f"/stays/{world.open_stay}/pay",
                 data={"csrf_token": csrf_token, "key": key, "method": "cheque", "amount": due})
    assert r.status_code == 422
    r = att.post(f"/stays/{world.open_stay}/pay", data={"csrf_token": csrf_token, "key": key, "method": "cash"})
    assert r.status_code == 422 and "Enter the amount" in r.text
    assert payments_of(db, world.open_stay) == []


def test_desk_refuses_a_closed_stay_and_finance_sees_no_desk(as_role, world, db):
    att = as_role("attendant")
    page = att.get(f"/stays/{world.closed_stay}").text
    assert "Take a payment" not in page
    r = att.post(f"/stays/{world.closed_stay}/pay",
                 data={"csrf_token": csrf(att), "key": "k" * 20, "method": "cash", "amount": "1.00"})
    assert r.status_code == 409 and "cannot be paid" in r.text
    # another site's stay is out of reach
    r = att.post(f"/stays/{world.other_stay}/pay",
                 data={"csrf_token": csrf(att), "key": "k" * 20, "method": "cash", "amount": "1.00"})
    assert r.status_code == 403


def test_supervisor_voids_a_mistaken_payment_with_a_reason(as_role, world, db):
    att = as_role("attendant")
    _, csrf_token, key, due = desk(att, world.open_stay)
    att.post(f"/stays/{world.open_stay}/pay", data={"csrf_token": csrf_token, "key": key, "method": "card", "amount": due})
    [paid] = payments_of(db, world.open_stay)
    assert "Void payment" not in att.get(f"/stays/{world.open_stay}").text
    assert att.post(f"/payments/{paid.id}/void", data={"csrf_token": csrf(att), "reason": "wrong car"}).status_code == 403
    sup = as_role("supervisor")
    assert "Void payment" in sup.get(f"/stays/{world.open_stay}").text
    r = sup.post(f"/payments/{paid.id}/void", data={"csrf_token": csrf(sup), "reason": ""})
    assert r.status_code == 422 and "not voided" in r.text
    r = sup.post(f"/payments/{paid.id}/void", data={"csrf_token": csrf(sup), "reason": "keyed on the wrong car"})
    assert r.status_code == 303
    again = sup.post(f"/payments/{paid.id}/void", data={"csrf_token": csrf(sup), "reason": "twice"})
    assert again.status_code == 409 and "already voided" in again.text
    rows = payments_of(db, world.open_stay)
    assert [(p.kind, p.amount_minor) for p in rows] == [("payment", 600), ("void", -600)]
    page = sup.get(f"/stays/{world.open_stay}").text
    assert "payment (voided)" in page and "Payment of 6.00 EUR voided: “" in page
    assert "VOIDED" in sup.get(f"/payments/{paid.id}/receipt").text
    _, _, _, due_again = desk(sup, world.open_stay)
    assert due_again == "6.00"   # owed again
    with db.sessions() as s:
        site = s.scalar(select(Site).where(Site.code == world.site))
        totals = takings(s, site)
        # the voided payment is in neither the count nor the sum: only the world's earlier card payment is
        assert totals.payments == 1 and totals.takings_minor == world_card_minor(s, site)
        assert revenue_rollup.differences(s) == {}
        ev = s.scalar(select(AuditEvent).where(AuditEvent.action == "payment.voided"))
        assert "keyed on the wrong car" in ev.data and ev.actor_type == "user"
        assert audit.verify(s).ok


def takings(s, site) -> reports.Totals:
    today = revenue_rollup.local_day(utcnow(), ZoneInfo(site.timezone))
    return reports.revenue(s, site, today - timedelta(days=2), today).totals


def world_card_minor(s, site) -> int:
    return int(s.scalar(select(Payment.amount_minor).where(Payment.site_id == site.id, Payment.reference == "pay-1")))


def test_dispute_refund_uses_the_method_chosen_on_the_form(as_role, world, db):
    att = as_role("attendant")
    r = att.post(f"/stays/{world.closed_stay}/disputes", data={"csrf_token": csrf(att), "reason": "I left earlier"})
    dispute_url = r.headers["Location"]
    sup = as_role("supervisor")
    page = sup.get(dispute_url).text
    assert "Refund paid out by" in page
    r = sup.post(f"{dispute_url}/resolve", data={"csrf_token": csrf(sup), "outcome": "refund", "note": "goodwill",
                                                 "refund": "1.00", "refund_method": "cash"})
    assert r.status_code == 303
    r = sup.post(f"{dispute_url}/resolve", data={"csrf_token": csrf(sup), "outcome": "refund", "note": "x",
                                                 "refund": "1.00", "refund_method": "bitcoin"})
    assert r.status_code == 422
    with db.sessions() as s:
        d = s.scalar(select(Dispute))
        refund = s.scalar(select(Payment).where(Payment.dispute_id == d.id, Payment.kind == "refund"))
        assert refund.method == "cash" and refund.amount_minor == -100
        assert s.get(ParkingSession, world.closed_stay).status == "closed"


def _let_out_owing(att, world, db):
    """The attendant confirms the open stay's car at the exit: it leaves owing 6.00."""
    r = att.post(f"/stays/{world.open_stay}/confirm", data={"csrf_token": csrf(att), "lane": world.exit,
                                                           "reason": "plate dirty, checked"})
    assert r.status_code == 303
    with db.sessions() as s:
        return s.scalar(select(UnpaidBalance).where(UnpaidBalance.session_id == world.open_stay)).id


def _reconciliation(client, world):
    return client.get(f"/revenue/reconciliation?site={world.site}&start={utcnow().date() - timedelta(days=1)}"
                      f"&end={utcnow().date() + timedelta(days=1)}").text


def test_desk_settles_the_unpaid_balance_of_a_car_that_left(as_role, world, db):
    att = as_role("attendant")
    _let_out_owing(att, world, db)
    page, csrf_token, key, due = desk(att, world.open_stay)
    assert "Unpaid balance" in page and "Settle the balance" in page and due == "6.00"
    r = att.post(f"/stays/{world.open_stay}/pay",
                 data={"csrf_token": csrf_token, "key": key, "method": "card", "amount": "5.00"})
    assert r.status_code == 409 and "6.00 EUR due" in r.text and "Payment not recorded" in r.text
    form = {"csrf_token": csrf_token, "key": key, "method": "card", "amount": due, "terminal_ref": "TRM-5"}
    r = att.post(f"/stays/{world.open_stay}/pay", data=form)
    assert r.status_code == 303 and "/receipt" in r.headers["Location"]
    assert "6.00 EUR" in att.get(r.headers["Location"]).text
    assert att.post(f"/stays/{world.open_stay}/pay", data=form).status_code == 303  # sent twice: nothing new
    page, csrf_token, key, due = desk(att, world.open_stay)
    assert "Take a payment" not in page and due is None  # settled: no desk any more
    r = att.post(f"/stays/{world.open_stay}/pay",
                 data={"csrf_token": csrf(att), "key": "k" * 20, "method": "cash", "amount": "6.00"})
    assert r.status_code == 409 and "has been settled" in r.text
    [paid] = payments_of(db, world.open_stay)
    assert (paid.kind, paid.amount_minor, paid.method, paid.terminal_ref) == ("payment", 600, "card", "TRM-5")
    page = _reconciliation(as_role("finance"), world)
    assert "Settled" in page and "Cars let out owing money" in page
    with db.sessions() as s:
        site = s.scalar(select(Site).where(Site.code == world.site))
        assert takings(s, site).takings_minor == world_card_minor(s, site) + 600
        ev = s.scalar(select(AuditEvent).where(AuditEvent.action == "stay.balance_settled"))
        assert ev.actor_type == "user" and str(paid.id) in ev.data
        assert revenue_rollup.differences(s) == {}
        assert audit.verify(s).ok


def test_desk_refuses_a_written_off_balance(as_role, world, db):
    att = as_role("attendant")
    balance_id = _let_out_owing(att, world, db)
    fin = as_role("finance")
    r = fin.post(f"/revenue/unpaid/{balance_id}/write-off",
                 data={"csrf_token": csrf(fin, "/revenue"), "reason": "goodwill, regular customer"})
    assert r.status_code == 303
    assert "Take a payment" not in att.get(f"/stays/{world.open_stay}").text
    r = att.post(f"/stays/{world.open_stay}/pay",
                 data={"csrf_token": csrf(att), "key": "k" * 20, "method": "cash", "amount": "6.00"})
    assert r.status_code == 409 and "written off" in r.text
    assert [p.kind for p in payments_of(db, world.open_stay)] == ["adjustment"]

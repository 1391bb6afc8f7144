"""The pay-station API: quotes, payments with idempotency keys, receipts, and bad input of each kind."""
from datetime import timedelta

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import func, select

from parkinglot.billing import tariffs
from parkinglot.records import audit, revenue_rollup, sites
from parkinglot.records.models import ParkingSession, Payment
from parkinglot.records.types import utcnow
from parkinglot.web.openapi import SPEC

from .factories import enter, make_site

TARIFF = {
    "schema": 1, "currency": "EUR", "exit_grace_min": 15,
    "rates": {"std": {"label": "Standard", "bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "2.00"}]}},
    "week": {"mon-sun": "std"},
}


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def validate(schema_name, body):
    schema = {**SPEC["components"]["schemas"][schema_name], "$defs": {}}
    Draft202012Validator(schema).validate(body)


def pay_world(s, code="PS"):
    """A site with a tariff, a stay inside for 2 h 10 min (ticket T-1), keys of each kind."""
    now = utcnow()
    site, entry, exit_ = make_site(s, code=code)
    tariffs.create_version(s, site, code="std", name="Standard", rules=TARIFF,
                           effective_from=now - timedelta(days=30), make_default=True)
    stay = enter(s, site, entry, "PAY1", now - timedelta(hours=2, minutes=10), ticket=f"{code}-T-1")
    stay.tariff_version_id = site_tariff_id(s, site)
    return {"site": site.code, "entry": entry.code, "exit": exit_.code, "stay": stay.id, "ticket": stay.ticket,
            "pay_key": sites.create_device(s, site, "pay-1", kind="pay_station").key,
            "lane_key": sites.create_device(s, site, "lane-1").key}


def site_tariff_id(s, site):
    from parkinglot.billing import fees

    return fees.current_tariff(s, site, utcnow()).id


@pytest.fixture
def w(db):
    with db.sessions() as s:
        world = pay_world(s)
        world["other"] = pay_world(s, code="OS")
        s.commit()
    return world


def quote(client, key, **body):
    return client.post("/api/v1/pay/quotes", json=body, headers=auth(key))


def pay(client, key, **body):
    return client.post("/api/v1/pay/payments", json=body, headers=auth(key))


def test_quote_by_ticket_plate_and_id_agree(client, w):
    replies = [quote(client, w["pay_key"], ticket=w["ticket"]), quote(client, w["pay_key"], plate="pay-1"),
               quote(client, w["pay_key"], stay_id=w["stay"])]
    for r in replies:
        assert r.status_code == 200, r.get_json()
        validate("PayQuote", r.get_json())
    bodies = [r.get_json() for r in replies]
    assert {b["stay_id"] for b in bodies} == {w["stay"]}
    b = bodies[0]
    assert b["amount_due"] == "6.00" and b["amount_due_minor"] == 600 and b["currency"] == "EUR"
    assert b["exit_grace_min"] == 15 and b["paid_until"] and b["exit_by"]
    assert sum(float(line["amount"]) for line in b["breakdown"]) == 6.0


def test_payment_settles_the_quote_and_gives_a_receipt(client, w, db):
    r = pay(client, w["pay_key"], stay_id=w["stay"], amount="6.00", method="card", idempotency_key="k-1",
            terminal_ref="TX-889")
    assert r.status_code == 201, r.get_json()
    assert r.headers["Idempotent-Replayed"] == "false"
    body = r.get_json()
    validate("Receipt", body)
    assert body["amount"] == "6.00" and body["method"] == "card" and body["terminal_ref"] == "TX-889"
    assert body["plate"] == "PAY1" and body["exit_by"] and not body["voided"]
    # paid: nothing is due any more, and paying again is refused with what is due (nothing)
    after = quote(client, w["pay_key"], stay_id=w["stay"]).get_json()
    assert after["amount_due"] == "0.00" and after["paid"] == "6.00"
    again = pay(client, w["pay_key"], stay_id=w["stay"], amount="6.00", method="card", idempotency_key="k-2")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "nothing_due"
    receipt = client.get(f"/api/v1/pay/payments/{body['payment_id']}/receipt", headers=auth(w["pay_key"]))
    assert receipt.status_code == 200 and receipt.get_json()["receipt_no"] == body["receipt_no"]
    html = client.get(f"/api/v1/pay/payments/{body['payment_id']}/receipt.html", headers=auth(w["pay_key"]))
    assert html.status_code == 200 and html.mimetype == "text/html"
    page = html.get_data(as_text=True)
    assert body["receipt_no"] in page and "6.00 EUR" in page and "PAY1" in page
    with db.sessions() as s:
        p = s.get(Payment, body["payment_id"])
        assert p.device_id is not None and p.reference == f"d{p.device_id}:k-1" and p.paid_until is not None
        events = [e.action for e in audit.history(s, "payment", p.id)]
        assert events == ["payment.recorded"]
        assert audit.verify(s).ok
        assert revenue_rollup.differences(s) == {}


def test_same_key_same_body_gets_the_same_reply(client, w, db):
    body = dict(stay_id=w["stay"], amount="6.00", method="cash", idempotency_key="same-1")
    first = pay(client, w["pay_key"], **body)
    second = pay(client, w["pay_key"], **body)
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    assert second.headers["Idempotent-Replayed"] == "true"
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == 1


def test_reused_key_with_another_amount_is_refused(client, w, db):
    assert pay(client, w["pay_key"], stay_id=w["stay"], amount="6.00", method="cash",
               idempotency_key="re-1").status_code == 201
    r = pay(client, w["pay_key"], stay_id=w["stay"], amount="4.00", method="cash", idempotency_key="re-1")
    assert r.status_code == 409
    err = r.get_json()["error"]
    assert err["code"] == "idempotency_key_reused" and err["details"]["amount"] == "6.00"
    r = pay(client, w["pay_key"], stay_id=w["stay"], amount="6.00", method="card", idempotency_key="re-1")
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "idempotency_key_reused"
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == 1


@pytest.mark.parametrize("amount", ["5.99", "6.01", "2.00", "600"])
def test_amount_other_than_the_quote_is_refused_with_the_amount_due(client, w, db, amount):
    r = pay(client, w["pay_key"], stay_id=w["stay"], amount=amount, method="cash", idempotency_key="a-1")
    assert r.status_code == 409, r.get_json()
    err = r.get_json()["error"]
    assert err["code"] == "amount_mismatch" and err["details"]["amount_due"] == "6.00"
    assert "6.00" in err["message"]
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == 0


def test_payment_for_a_closed_stay_is_refused_clearly(client, w, db):
    with db.sessions() as s:
        stay = s.get(ParkingSession, w["stay"])
        stay.status, stay.exited_at, stay.closed_reason = "closed", utcnow(), "exit"
        s.commit()
    r = pay(client, w["pay_key"], stay_id=w["stay"], amount="6.00", method="cash", idempotency_key="c-1")
    assert r.status_code == 409
    err = r.get_json()["error"]
    assert err["code"] == "stay_closed" and "closed" in err["message"]
    q = quote(client, w["pay_key"], ticket=w["ticket"])
    assert q.status_code == 409 and q.get_json()["error"]["code"] == "stay_closed"
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == 0


def test_pay_station_key_on_lane_endpoints_is_forbidden(client, w, db):
    r = client.post(f"/api/v1/lanes/{w['exit']}/events", json={"plate": "PAY1", "confidence": 0.95},
                    headers=auth(w["pay_key"]))
    assert r.status_code == 403
    body = r.get_json()
    assert body["decision"] == "deny" and "pay station" in body["error"]["message"]
    assert client.get(f"/api/v1/lanes/{w['exit']}", headers=auth(w["pay_key"])).status_code == 403
    assert client.post(f"/api/v1/lanes/{w['exit']}/passages", json={"decision_id": 1},
                       headers=auth(w["pay_key"])).status_code == 403
    with db.sessions() as s:  # nothing was recorded and the stay is still inside
        assert s.get(ParkingSession, w["stay"]).status == "open"


def test_lane_controller_key_on_pay_endpoints_is_forbidden(client, w):
    assert quote(client, w["lane_key"], ticket=w["ticket"]).status_code == 403
    r = pay(client, w["lane_key"], stay_id=w["stay"], amount="6.00", method="cash", idempotency_key="l-1")
    assert r.status_code == 403 and "lane controller" in r.get_json()["error"]["message"]


def test_another_sites_stay_is_not_found(client, w):
    other_stay = w["other"]["stay"]
    assert quote(client, w["pay_key"], stay_id=other_stay).status_code == 404
    assert quote(client, w["pay_key"], ticket=w["other"]["ticket"]).status_code == 404
    r = pay(client, w["pay_key"], stay_id=other_stay, amount="6.00", method="cash", idempotency_key="o-1")
    assert r.status_code == 404


@pytest.mark.parametrize("body, status", [
    ({}, 422),
    ({"ticket": "T", "plate": "AB123"}, 422),
    ({"ticket": "bad ticket!"}, 422),
    ({"plate": "ÄÖ1"}, 422),
    ({"stay_id": True}, 422),
    ({"stay_id": "1"}, 422),
    ({"ticket": "nope"}, 404),
    ({"plate": "ZZ999"}, 404),
    ({"ticket": "T", "extra": 1}, 422),
])
def test_bad_quote_requests(client, w, body, status):
    r = quote(client, w["pay_key"], **body)
    assert r.status_code == status, r.get_json()
    assert r.get_json()["error"]["message"]


@pytest.mark.parametrize("change, status, code", [
    ({"amount": 6.0}, 422, "invalid_input"),         # a float is not money
    ({"amount": "6.001"}, 422, "invalid_input"),     # EUR has two decimals
    ({"amount": "-6.00"}, 422, "invalid_input"),
    ({"amount": "NaN"}, 422, "invalid_input"),
    ({"amount": "1e3"}, 409, "amount_mismatch"),
    ({"method": "cheque"}, 422, "invalid_input"),
    ({"method": "adjustment"}, 422, "invalid_input"),
    ({"idempotency_key": ""}, 422, "invalid_input"),
    ({"idempotency_key": "x" * 49}, 422, "invalid_input"),
    ({"terminal_ref": "x" * 65}, 422, "invalid_input"),
    ({"stay_id": 0}, 422, "invalid_input"),
    ({"stay_id": 10**9}, 404, "not_found"),
])
def test_bad_payment_requests(client, w, change, status, code):
    body = {"stay_id": w["stay"], "amount": "6.00", "method": "cash", "idempotency_key": "b-1", **change}
    r = pay(client, w["pay_key"], **body)
    assert r.status_code == status, r.get_json()
    assert r.get_json()["error"]["code"] == code


def test_not_json_and_bad_keys(client, w):
    r = client.post("/api/v1/pay/quotes", data="ticket=1", headers=auth(w["pay_key"]),
                    content_type="application/x-www-form-urlencoded")
    assert r.status_code == 415
    r = client.post("/api/v1/pay/quotes", data="{", headers=auth(w["pay_key"]), content_type="application/json")
    assert r.status_code == 400
    assert quote(client, "pl_000000000000_nope", ticket="T").status_code == 401
    assert client.get("/api/v1/pay/payments/1/receipt", headers=auth(w["pay_key"])).status_code == 404


# --- pay on exit -------------------------------------------------------------------------------

def test_pay_on_exit_through_the_http_api(client, w, db):
    """exit -> payment_required with fee_due -> the lane's terminal pays -> the controller's retry of
    the same event opens, and the payment is credited to that exit lane."""
    with db.sessions() as s:
        from parkinglot.records import sites as site_records

        terminal = site_records.create_device(s, site_records.get_site(s, w["site"]), "exit terminal",
                                              kind="pay_station", lane=site_records.get_lane(s, w["exit"])).key
        s.commit()
    event = {"plate": "PAY1", "confidence": 0.95, "event_id": "exit-77"}
    first = client.post(f"/api/v1/lanes/{w['exit']}/events", json=event, headers=auth(w["lane_key"]))
    body = first.get_json()
    assert first.status_code == 200 and body["decision"] == "deny" and body["reason"] == "payment_required"
    assert body["fee_due"] == "6.00" and body["session_id"] == w["stay"]
    # the terminal on that lane finds the waiting car by itself, and its amount agrees with fee_due
    waiting = client.get("/api/v1/pay/waiting", headers=auth(terminal))
    assert waiting.status_code == 200, waiting.get_json()
    q = waiting.get_json()
    assert q["stay_id"] == w["stay"] and q["amount_due"] == body["fee_due"]
    # an unpaid retry is still refused
    again = client.post(f"/api/v1/lanes/{w['exit']}/events", json=event, headers=auth(w["lane_key"])).get_json()
    assert again["decision"] == "deny" and again["reason"] == "payment_required"
    paid = pay(client, terminal, stay_id=q["stay_id"], amount=q["amount_due"], method="card",
               idempotency_key="exit-77-pay", terminal_ref="EMV-1")
    assert paid.status_code == 201, paid.get_json()
    retry = client.post(f"/api/v1/lanes/{w['exit']}/events", json=event, headers=auth(w["lane_key"]))
    out = retry.get_json()
    assert retry.status_code == 200 and out["decision"] == "open", out
    assert out["fee_due"] is None and out["session_id"] == w["stay"]
    # and the retry of that open is the stored open (nothing new)
    replay = client.post(f"/api/v1/lanes/{w['exit']}/events", json=event, headers=auth(w["lane_key"])).get_json()
    assert replay["decision"] == "open" and replay["decision_id"] == out["decision_id"]
    with db.sessions() as s:
        stay = s.get(ParkingSession, w["stay"])
        assert stay.status == "closed" and stay.fee_minor == 600
        payment = s.get(Payment, paid.get_json()["payment_id"])
        exit_lane = site_records.get_lane(s, w["exit"])
        assert payment.lane_id == exit_lane.id and payment.terminal_ref == "EMV-1"
        assert revenue_rollup.differences(s) == {}
        assert audit.verify(s).ok
    # the car has gone: nothing is waiting, and the stay can no longer be paid
    assert client.get("/api/v1/pay/waiting", headers=auth(terminal)).status_code in (404, 409)
    late = pay(client, terminal, stay_id=w["stay"], amount="2.00", method="card", idempotency_key="late")
    assert late.status_code == 409 and late.get_json()["error"]["code"] == "stay_closed"


def test_waiting_needs_a_lane_terminal_and_a_refused_car(client, w, db):
    r = client.get("/api/v1/pay/waiting", headers=auth(w["pay_key"]))
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "not_a_lane_terminal"
    with db.sessions() as s:
        from parkinglot.records import sites as site_records

        terminal = site_records.create_device(s, site_records.get_site(s, w["site"]), "t2", kind="pay_station",
                                              lane=site_records.get_lane(s, w["exit"])).key
        s.commit()
    r = client.get("/api/v1/pay/waiting", headers=auth(terminal))
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "no_car_waiting"


def test_a_stay_that_left_owing_money_is_quoted_and_settled_at_the_pay_station(client, w, db):
    from parkinglot.billing import balances
    from parkinglot.records.models import AuditEvent, Lane

    with db.sessions() as s:
        stay = s.get(ParkingSession, w["stay"])
        lane = s.scalar(select(Lane).where(Lane.code == w["exit"]))
        owed = balances.close_owing(s, stay, lane=lane, user=None, cause="emergency_exit", reason="fire alarm",
                                    closed_reason="emergency_exit").unpaid
        s.commit()
        assert owed.amount_minor == 600
    by_ticket, by_plate = quote(client, w["pay_key"], ticket=w["ticket"]), quote(client, w["pay_key"], plate="PAY1")
    for r in (by_ticket, by_plate):
        assert r.status_code == 200, r.get_json()
        validate("PayQuote", r.get_json())
        b = r.get_json()
        assert (b["stay_id"], b["status"], b["basis"], b["amount_due"], b["unpaid_balance_id"], b["exit_by"]) == (
            w["stay"], "closed", "unpaid_balance", "6.00", owed.id, None)
    r = pay(client, w["pay_key"], stay_id=w["stay"], amount="5.00", method="card", idempotency_key="b-1")
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "amount_mismatch"
    first = pay(client, w["pay_key"], stay_id=w["stay"], amount="6.00", method="card", idempotency_key="b-1")
    assert first.status_code == 201 and first.headers["Idempotent-Replayed"] == "false"
    validate("Receipt", first.get_json())
    retry = pay(client, w["pay_key"], stay_id=w["stay"], amount="6.00", method="card", idempotency_key="b-1")
    assert retry.headers["Idempotent-Replayed"] == "true" and retry.get_json() == first.get_json()
    reused = pay(client, w["pay_key"], stay_id=w["stay"], amount="6.00", method="cash", idempotency_key="b-1")
    assert reused.status_code == 409 and reused.get_json()["error"]["code"] == "idempotency_key_reused"
    again = pay(client, w["pay_key"], stay_id=w["stay"], amount="6.00", method="card", idempotency_key="b-2")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "stay_closed"
    assert "settled" in again.get_json()["error"]["message"]
    assert quote(client, w["pay_key"], ticket=w["ticket"]).get_json()["error"]["code"] == "stay_closed"
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == 1
        ev = s.scalar(select(AuditEvent).where(AuditEvent.action == "stay.balance_settled"))
        assert ev.actor_type == "device"
        assert revenue_rollup.differences(s) == {} and audit.verify(s).ok

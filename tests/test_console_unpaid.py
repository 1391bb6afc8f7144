"""Every car accounted for, through the console and the API (issue 19, part 3), on both backends.

The lanes page asks for the plate and admits a held car; confirming a match of an unpaid stay
shows up in reconciliation with the attendant's name; finance writes it off with a reason.
"""
from __future__ import annotations

import base64
from datetime import timedelta

from sqlalchemy import select

from parkinglot.records.models import ParkingSession, UnpaidBalance
from parkinglot.records.types import utcnow

from .console_world import PASSWORD, _event, csrf
from .test_console import as_role, count, world  # noqa: F401  (the console's fixtures)


def _basic(username: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{PASSWORD}".encode()).decode()}


def test_the_lanes_page_asks_for_the_plate_at_an_entry_and_admits_the_car(as_role, world, db):
    att = as_role("attendant")
    page = att.get(f"/lanes?site={world.site}").text
    assert f'name="{world.entry}-plate"' in page and f'name="{world.entry}-no_vehicle"' in page
    r = att.post(f"/lanes/{world.entry}/open", data={"csrf_token": csrf(att), f"{world.entry}-reason": "machine jam"})
    assert r.status_code == 422 and "plate of the car is required" in r.text
    r = att.post(f"/lanes/{world.entry}/open", data={"csrf_token": csrf(att), f"{world.entry}-reason": "machine jam",
                                                    f"{world.entry}-plate": "GH 1234"})
    assert r.status_code == 303
    assert "GH1234 admitted: stay #" in att.get(r.headers["Location"]).text
    assert count(db, ParkingSession, ParkingSession.plate == "GH1234", ParkingSession.status == "open") == 1
    r = att.post(f"/lanes/{world.entry}/open", data={"csrf_token": csrf(att), f"{world.entry}-reason": "machine jam",
                                                    f"{world.entry}-plate": "GH1234"})
    assert r.status_code == 409 and "already has an open stay" in r.text


def test_a_held_entry_gets_an_admit_action_on_the_lane_card(app, as_role, world, db):
    store = app.extensions["parkinglot"].evidence
    with db.sessions() as s:
        from parkinglot.records.models import Lane
        entry = s.scalar(select(Lane).where(Lane.code == world.entry))
        held = _event(s, store, entry, "JK5566", utcnow() - timedelta(minutes=1), 9, "held-1", confidence=0.2).reply
        s.commit()
    assert held.decision == "attendant"
    att = as_role("attendant")
    assert "Admit JK5566" in att.get("/dashboard").text
    page = att.get(f"/lanes?site={world.site}").text
    assert "Admit and open" in page and f'value="{held.read_id}"' in page and 'value="JK5566"' in page
    r = att.post(f"/lanes/{world.entry}/open", data={
        "csrf_token": csrf(att), f"{world.entry}-reason": "read checked by eye", f"{world.entry}-plate": "JK5566",
        f"{world.entry}-read_id": str(held.read_id)})
    assert r.status_code == 303
    with db.sessions() as s:
        stay = s.scalar(select(ParkingSession).where(ParkingSession.plate == "JK5566"))
        assert stay.status == "open" and stay.entry_read_id == held.read_id
    assert "Admit and open" not in att.get(f"/lanes?site={world.site}").text
    r = att.post(f"/lanes/{world.entry}/open", data={
        "csrf_token": csrf(att), f"{world.entry}-reason": "x y z", f"{world.entry}-plate": "JK5566",
        f"{world.entry}-read_id": "12abc"})
    assert r.status_code == 422 and "reload the page" in r.text


def test_a_confirmed_unpaid_exit_reaches_reconciliation_and_finance_writes_it_off(as_role, world, db):
    att = as_role("attendant")
    r = att.post(f"/stays/{world.open_stay}/confirm", data={"csrf_token": csrf(att), "lane": world.exit,
                                                           "reason": "plate dirty, checked"})
    assert r.status_code == 303
    fin = as_role("finance")
    page = fin.get(f"/revenue/reconciliation?site={world.site}&start={utcnow().date() - timedelta(days=1)}"
                   f"&end={utcnow().date() + timedelta(days=1)}").text
    assert "Open balances" in page and "Cars let out owing money" in page
    assert "Attendant Person" in page and "Confirmed match: plate dirty, checked" in page
    assert "6.00" in page  # 2 h 0x min at 2.00 per started hour: 3 hours
    with db.sessions() as s:
        balance = s.scalar(select(UnpaidBalance))
    r = fin.post(f"/revenue/unpaid/{balance.id}/write-off", data={"csrf_token": csrf(fin, "/revenue"), "reason": ""})
    assert r.status_code == 303 and "Not written off" in fin.get(r.headers["Location"]).text
    r = fin.post(f"/revenue/unpaid/{balance.id}/write-off",
                 data={"csrf_token": csrf(fin, "/revenue"), "reason": "goodwill, regular customer"})
    assert r.status_code == 303
    with db.sessions() as s:
        balance = s.get(UnpaidBalance, balance.id)
        assert balance.written_off_at is not None and balance.write_off_reason == "goodwill, regular customer"
    assert att.post(f"/revenue/unpaid/{balance.id}/write-off",
                    data={"csrf_token": csrf(att), "reason": "not mine to decide"}).status_code == 403


def test_the_api_manual_open_names_the_car(client, world, db):
    r = client.post(f"/api/v1/lanes/{world.entry}/open", json={"reason": "jam"}, headers=_basic("attendant"))
    assert r.status_code == 422 and "plate" in r.get_json()["error"]["message"]
    r = client.post(f"/api/v1/lanes/{world.entry}/open", json={"reason": "jam", "plate": 42},
                    headers=_basic("attendant"))
    assert r.status_code == 422
    r = client.post(f"/api/v1/lanes/{world.entry}/open", json={"reason": "jam", "plate": "LM9900"},
                    headers=_basic("attendant"))
    assert r.status_code == 200 and r.get_json()["session_id"] and r.get_json()["unpaid"] is None
    r = client.post(f"/api/v1/lanes/{world.exit}/open", json={"reason": "reader broken", "plate": "AB123"},
                    headers=_basic("attendant"))
    body = r.get_json()
    assert r.status_code == 200 and body["session_id"] == world.open_stay and body["unpaid"] == "6.00"
    r = client.post(f"/api/v1/lanes/{world.exit}/open", json={"reason": "reader broken", "plate": "AB123"},
                    headers=_basic("attendant"))
    assert r.status_code == 422 and "no open stay" in r.get_json()["error"]["message"]


def test_the_stay_page_of_an_open_stay_never_says_closed(as_role, world):
    html = as_role("attendant").get(f"/stays/{world.open_stay}").text
    assert "closed" not in html.lower() and "No exit yet." in html and "still inside" in html
    closed = as_role("attendant").get(f"/stays/{world.closed_stay}").text
    assert "Stay closed (exit)" in closed


def test_a_car_refused_at_the_exit_is_offered_to_the_attendant_by_its_stay(app, as_role, world, db):
    store = app.extensions["parkinglot"].evidence
    with db.sessions() as s:
        from parkinglot.records.models import Lane
        exit_ = s.scalar(select(Lane).where(Lane.code == world.exit))
        refused = _event(s, store, exit_, "AB123", utcnow(), 11, "out-held").reply
        s.commit()
    assert refused.decision == "deny" and refused.reason == "payment_required"
    att = as_role("attendant")
    page = att.get(f"/lanes?site={world.site}").text
    assert f'name="{world.exit}-plate" type="text" value="AB123"' in page and f'value="{refused.read_id}"' in page
    r = att.post(f"/lanes/{world.exit}/open", data={
        "csrf_token": csrf(att), f"{world.exit}-reason": "card reader down", f"{world.exit}-plate": "AB123",
        f"{world.exit}-read_id": str(refused.read_id)})
    assert r.status_code == 303
    assert "AB123 let out: stay #" in att.get(r.headers["Location"]).text
    with db.sessions() as s:
        stay = s.get(ParkingSession, world.open_stay)
        owed = s.scalar(select(UnpaidBalance).where(UnpaidBalance.session_id == stay.id))
        assert stay.status == "closed" and stay.exit_read_id == refused.read_id
        assert owed.cause == "manual_exit" and owed.reason == "card reader down" and owed.amount_minor == 600

"""A small world for console tests: two sites, a user per role, stays with photos, alerts, a tariff.

Everything goes through the real services (lane events, payments, alerts), as in production.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import cv2
import numpy as np
from sqlalchemy import select

from parkinglot.barrier import events
from parkinglot.billing import fees, payments, tariffs
from parkinglot.records import alerts, users
from parkinglot.records.models import Alert, ParkingSession, PlateRead
from parkinglot.records.types import utcnow

from .factories import make_site

TARIFF = {
    "schema": 1, "currency": "EUR",
    "rates": {"std": {"label": "Standard", "bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "2.00"}]},
              "permit": {"label": "Permit", "bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "0.50"}]}},
    "week": {"mon-sun": "std"},
}
PASSWORD = "console-pass-1"
ROLES = ("attendant", "supervisor", "finance", "admin")
BOX = [[40.0, 60.0], [140.0, 60.0], [140.0, 90.0], [40.0, 90.0]]
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def jpeg(seed: int = 0, w: int = 192, h: int = 108) -> bytes:
    img = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


@dataclass
class World:
    site: str
    other_site: str
    entry: str
    exit: str
    other_entry: str
    open_stay: int
    closed_stay: int
    other_stay: int
    alert: int
    other_alert: int
    photo: str
    other_photo: str


def _event(session, store, lane, plate, at, seed, event_id, confidence=0.93):
    reading = events.Reading(plate=plate, raw_text=plate, confidence=confidence, alternatives=(("A8123", 0.05),),
                             box=BOX, source="pipeline")
    ev = events.LaneEvent(lane_id=lane.id, captured_at=at, received_at=at, reading=reading, event_id=event_id,
                          frames=(events.Frame(jpeg(seed), "image/jpeg", 192, 108),))
    return events.process(session, store, ev)


def build(db, app) -> World:
    store = app.extensions["parkinglot"].evidence
    now = utcnow().replace(microsecond=0)
    with db.sessions() as s:
        site, entry, exit_ = make_site(s, code="HQ", kpi_targets={"read_rate": 0.99, "attendant_share": 0.01,
                                                                  "ack_minutes": 5, "dispute_days": 7})
        other, o_entry, _ = make_site(s, code="XX")
        tariffs.create_version(s, site, code="std", name="Standard", rules=TARIFF,
                               effective_from=now - timedelta(days=30), make_default=True)
        for role in ROLES:
            users.create_user(s, username=role, password=PASSWORD, role=role,
                              sites=[site] if role in ("attendant", "supervisor") else [],
                              display_name=f"{role.title()} Person")
        users.create_user(s, username="other", password=PASSWORD, role="attendant", sites=[other])
        # a stay still inside, one that left after paying, a theft alert, and a stay at the other site
        inside = _event(s, store, entry, "AB123", now - timedelta(hours=2), 1, "in-1").reply
        paid = _event(s, store, entry, "CD456", now - timedelta(hours=5), 2, "in-2").reply
        stay = s.get(ParkingSession, paid.session_id)
        status = fees.fee_status(s, site, stay, now - timedelta(hours=1, minutes=5))
        payments.record_payment(s, site, amount_minor=status.due_minor, method="card", reference="pay-1", stay=stay,
                                paid_until=status.paid_until)
        _event(s, store, exit_, "CD456", now - timedelta(hours=1), 3, "out-2")
        theft = _event(s, store, exit_, "ZZ999", now - timedelta(minutes=10), 4, "out-3").reply
        other_in = _event(s, store, o_entry, "EF789", now - timedelta(hours=1), 5, "x-in-1").reply
        other_alert = alerts.raise_alert(s, site_id=other.id, kind="hotlist", plate="EF789", message="hotlist at XX")
        world = World(
            site=site.code, other_site=other.code, entry=entry.code, exit=exit_.code, other_entry=o_entry.code,
            open_stay=inside.session_id, closed_stay=paid.session_id, other_stay=other_in.session_id,
            alert=s.scalar(select(Alert.id).where(Alert.read_id == theft.read_id)), other_alert=other_alert.id,
            photo=s.get(PlateRead, inside.read_id).evidence_sha256,
            other_photo=s.get(PlateRead, other_in.read_id).evidence_sha256)
        s.commit()
    return world


def token(html: str) -> str:
    match = TOKEN.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client, username: str, password: str = PASSWORD):
    page = client.get("/login")
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token(page.text)})


def csrf(client, path: str = "/shift") -> str:
    """A CSRF token for the logged-in session (every console page carries one in the logout form)."""
    return token(client.get(path).text)


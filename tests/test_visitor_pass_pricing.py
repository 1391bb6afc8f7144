"""Visitor passes say what they change (issue 19, part 3), on SQLite and PostgreSQL.

The site sets whether a stay on a visitor pass parks free during the pass's window, at the
tariff's visitor rate, or at the normal tariff; the exit reply says which. Revoking a pass
needs a reason.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from parkinglot.billing import fees, tariffs
from parkinglot.records import permits, sites
from parkinglot.records.errors import Conflict, InvalidInput
from parkinglot.records.models import ParkingSession
from parkinglot.records.types import utcnow

from .factories import make_site
from .test_gate_rules import HOURLY, send, world  # noqa: F401  (world: the gate rules' fixture)

WITH_VISITOR_RATE = {**HOURLY, "rates": {
    **HOURLY["rates"], "visitor": {"bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "0.50"}]}}}


def _visit(session, w, pricing, plate, *, window_h=8.0, stayed_h=2.5, rules=None):
    """A visitor on a pass (from an hour before entry, ``window_h`` long) who stayed ``stayed_h``."""
    site = w["site"]
    site.visitor_pass_pricing = pricing
    if rules is not None:
        tariffs.create_version(session, site, code="std", name="Hourly + visitor", rules=rules,
                               effective_from=utcnow() - timedelta(days=2), make_default=True)
    entered = utcnow() - timedelta(hours=stayed_h)
    permits.create_visitor_pass(session, site, plate=plate, valid_from=entered - timedelta(hours=1),
                                valid_to=entered - timedelta(hours=1) + timedelta(hours=window_h))
    session.commit()
    stay_id = send(session, w, w["entry"], plate, entered).reply.session_id
    assert session.get(ParkingSession, stay_id).visitor_pass_id is not None
    return stay_id


def test_at_the_normal_tariff_the_pass_only_lets_the_car_in(session, world):
    w = world
    _visit(session, w, "tariff", "VT1001")
    out = send(session, w, w["exit"], "VT1001", utcnow())
    assert out.reply.decision == "deny" and out.reply.fee_due == "6.00"
    assert out.reply.visitor_pass == "Visitor pass: parks at the normal tariff (the pass only lets the car in)"


def test_a_free_pass_parks_free_during_its_window(session, world):
    w = world
    _visit(session, w, "free", "VF1001")
    out = send(session, w, w["exit"], "VF1001", utcnow())
    assert out.reply.decision == "open" and out.reply.visitor_pass == "Visitor pass: parks free during its window"
    assert out.reply.to_json()["visitor_pass"].startswith("Visitor pass")


def test_a_free_pass_charges_the_time_outside_its_window(session, world):
    w = world
    stay_id = _visit(session, w, "free", "VF2002", window_h=2.0, stayed_h=3.5)  # covers the first hour inside
    stay = session.get(ParkingSession, stay_id)
    status = fees.fee_status(session, w["site"], stay, utcnow())
    assert status.due_minor == 600  # 2.5 h after the window: 3 started hours at 2.00


def test_a_pass_at_the_visitor_rate(session, world):
    w = world
    _visit(session, w, "visitor_rate", "VR1001", rules=WITH_VISITOR_RATE)
    out = send(session, w, w["exit"], "VR1001", utcnow())
    assert out.reply.decision == "deny" and out.reply.fee_due == "1.50"
    assert out.reply.visitor_pass == "Visitor pass: parks at the visitor rate during its window"


def test_a_tariff_without_a_visitor_rate_charges_its_normal_rates(session, world):
    w = world
    _visit(session, w, "visitor_rate", "VR2002")
    assert send(session, w, w["exit"], "VR2002", utcnow()).reply.fee_due == "6.00"


def test_a_site_refuses_an_unknown_pass_pricing(session):
    with pytest.raises(InvalidInput, match="visitor_pass_pricing must be one of tariff, free, visitor_rate"):
        make_site(session, code="PP", visitor_pass_pricing="half")
    session.rollback()
    site, _, _ = make_site(session, code="PQ", visitor_pass_pricing="free")
    assert site.visitor_pass_pricing == "free" and permits.pass_terms(site) == "parks free during its window"
    assert sites.check_pass_pricing("tariff") == "tariff"


def test_revoking_a_pass_needs_a_reason(session, world):
    w = world
    vp = permits.create_visitor_pass(session, w["site"], plate="RV1001", valid_from=utcnow(),
                                     valid_to=utcnow() + timedelta(hours=3))
    with pytest.raises(InvalidInput, match="reason is required"):
        permits.revoke_visitor_pass(session, vp, user_id=w["att"].id, reason="  ")
    assert vp.revoked_at is None
    permits.revoke_visitor_pass(session, vp, user_id=w["att"].id, reason="host cancelled the visit")
    session.commit()
    assert vp.revoke_reason == "host cancelled the visit" and vp.revoked_by == w["att"].id
    with pytest.raises(Conflict):
        permits.revoke_visitor_pass(session, vp, user_id=w["att"].id, reason="again")


SITE_FILE = """\
site: {code: VP, name: Visitors, timezone: Europe/Berlin, currency: EUR, visitor_pass_pricing: free}
zones: [{code: P1}]
lanes: [{code: VP-IN, direction: entry, zone: P1}]
"""


def test_the_site_file_carries_the_pass_pricing(session):
    from parkinglot.sitefile import service, spec

    service.apply(session, spec.parse(SITE_FILE, "vp.yaml"))
    session.commit()
    assert sites.get_site(session, "VP").visitor_pass_pricing == "free"
    assert service.export(session, "VP").site["visitor_pass_pricing"] == "free"
    with pytest.raises(spec.SiteFileError) as bad:
        spec.parse(SITE_FILE.replace("pricing: free", "pricing: half"), "vp.yaml")
    assert "vp.yaml:1" in str(bad.value) and "visitor_pass_pricing" in str(bad.value)

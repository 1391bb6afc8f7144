"""Site setup pages (administrators): sites, lanes, device keys shown once, tariff versions with a
quote preview, and site files applied or downloaded. SQLite and PostgreSQL (the ``db`` fixture)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from parkinglot.records import audit, sites
from parkinglot.records.models import AuditEvent, Device, Lane, Site, TariffVersion
from parkinglot.sitefile import spec

from .console_world import csrf
from .test_console import as_role, world  # noqa: F401  (fixtures)

KEY = re.compile(r"pl_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}")
SETUP_PAGES = ("/setup", "/setup/sites/HQ", "/setup/sites/HQ/tariff", "/setup/sites/HQ/site.yaml")


@pytest.mark.parametrize("role", ["attendant", "supervisor", "finance"])
def test_only_administrators_set_up_sites(as_role, role):
    client = as_role(role)
    for path in SETUP_PAGES:
        assert client.get(path).status_code == 403, path
    r = client.post("/setup/sites", data={"csrf_token": csrf(client), "code": "NEW", "name": "x",
                                          "timezone": "UTC", "currency": "EUR", "regions": "us", "kind": "public"})
    assert r.status_code == 403


def test_admin_creates_a_site_and_bad_input_is_named(as_role, db):
    admin = as_role("admin")
    for path in SETUP_PAGES:
        assert admin.get(path).status_code == 200, path
    form = {"code": "NB", "name": "North Block", "timezone": "Europe/Berlin", "currency": "eur", "regions": "eu, us",
            "kind": "private", "visitors": ""}
    bad = admin.post("/setup/sites", data={**form, "timezone": "Europe/Nowhere", "csrf_token": csrf(admin)})
    assert bad.status_code == 422 and "unknown time zone &#39;Europe/Nowhere&#39;" in bad.text
    bad = admin.post("/setup/sites", data={**form, "regions": "eu, zz", "csrf_token": csrf(admin)})
    assert bad.status_code == 422 and "unknown plate region &#39;zz&#39;" in bad.text
    r = admin.post("/setup/sites", data={**form, "csrf_token": csrf(admin)})
    assert r.status_code == 303 and r.headers["Location"].endswith("/setup/sites/NB")
    again = admin.post("/setup/sites", data={**form, "csrf_token": csrf(admin)})
    assert again.status_code == 422 and "site NB already exists" in again.text
    with db.sessions() as s:
        site = sites.get_site(s, "NB")
        assert (site.currency, site.plate_regions, site.visitors) == ("EUR", ["eu", "us"], "refuse")


def test_lanes_are_added_disabled_with_a_reason_and_enabled(as_role, world, db):
    admin = as_role("admin")
    r = admin.post("/setup/sites/HQ/lanes", data={"csrf_token": csrf(admin), "lane-code": "HQ-IN-2",
                                                  "lane-name": "Side gate", "lane-direction": "entry",
                                                  "lane-zone": "Z1", "lane-relay_url": ""})
    assert r.status_code == 303
    taken = admin.post("/setup/sites/HQ/lanes", data={"csrf_token": csrf(admin), "lane-code": world.other_entry,
                                                      "lane-direction": "entry", "lane-zone": ""})
    assert taken.status_code == 422 and "is already used" in taken.text
    relay = admin.post("/setup/sites/HQ/lanes", data={"csrf_token": csrf(admin), "lane-code": "HQ-R",
                                                      "lane-direction": "exit", "lane-zone": "",
                                                      "lane-relay_url": "ftp://relay"})
    assert relay.status_code == 422 and "http(s) url" in relay.text
    no_reason = admin.post("/setup/lanes/HQ-IN-2/disable", data={"csrf_token": csrf(admin), "HQ-IN-2-reason": ""})
    assert no_reason.status_code == 422 and "Give a reason" in no_reason.text
    r = admin.post("/setup/lanes/HQ-IN-2/disable", data={"csrf_token": csrf(admin), "HQ-IN-2-reason": "camera swap"})
    assert r.status_code == 303
    with db.sessions() as s:
        lane = sites.get_lane(s, "HQ-IN-2")
        assert not lane.enabled and lane.zone.code == "Z1"
        last = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
        assert last.action == "lane.disabled" and "camera swap" in last.data and last.actor_type == "user"
    assert admin.post("/setup/lanes/HQ-IN-2/enable", data={"csrf_token": csrf(admin),
                                                           "HQ-IN-2-reason": "back"}).status_code == 303
    with db.sessions() as s:
        assert sites.get_lane(s, "HQ-IN-2").enabled


def test_a_device_key_is_shown_once_and_can_be_revoked(as_role, world, db):
    admin = as_role("admin")
    r = admin.post("/setup/sites/HQ/devices", data={"csrf_token": csrf(admin), "device-name": "Exit box",
                                                    "device-kind": "pay_station", "device-lane": world.exit})
    assert r.status_code == 200 and "Shown this once" in r.text
    [key] = KEY.findall(r.text)
    assert f"bound to lane {world.exit}" in r.text
    assert not KEY.search(admin.get("/setup/sites/HQ").text)  # never again
    with db.sessions() as s:
        device = sites.authenticate_device(s, key)
        assert device is not None and device.lane.code == world.exit and device.kind == "pay_station"
        device_id = device.id
    unnamed = admin.post("/setup/sites/HQ/devices", data={"csrf_token": csrf(admin), "device-name": "",
                                                          "device-lane": "", "device-kind": "lane_controller"})
    assert unnamed.status_code == 422 and "Give the device a name" in unnamed.text
    assert admin.post(f"/setup/devices/{device_id}/revoke", data={"csrf_token": csrf(admin)}).status_code == 303
    with db.sessions() as s:
        assert sites.authenticate_device(s, key) is None
    assert admin.post("/setup/devices/999999/revoke", data={"csrf_token": csrf(admin)}).status_code == 404


def test_tariff_versions_and_the_quote_preview(as_role, world, db):
    admin = as_role("admin")
    page = admin.get("/setup/sites/HQ/tariff")
    sentence = re.search(r'<p class="lead" id="quote-sentence">(.*?)</p>', page.text, re.S).group(1)
    assert re.match(r"A car that stays 2 h 40 min entering Saturday 21:30 \(\d{4}-\d\d-\d\d CES?T\) pays "
                    r"<strong>6.00 EUR</strong> under std v1 \(Standard\)\.", sentence), sentence
    custom = admin.get("/setup/sites/HQ/tariff?entry=2026-03-02T08:00&hours=0&minutes=30")
    assert "entering Monday 08:00 (2026-03-02 CET) pays <strong>2.00 EUR</strong>" in custom.text
    bad = admin.get("/setup/sites/HQ/tariff?entry=yesterday&hours=-1&minutes=0")
    assert bad.status_code == 200 and "Check the preview" in bad.text
    gap = ("rates:\n  std:\n    bands:\n      - {from_min: 0, to_min: 60, price: '2.00'}\n"
           "      - {from_min: 90, step_min: 60, price: '3.00'}\nweek: {mon-sun: std}\n")
    r = admin.post("/setup/sites/HQ/tariff", data={"csrf_token": csrf(admin), "code": "std", "name": "Dearer",
                                                   "effective_from": "", "rules": gap})
    assert r.status_code == 422 and "gap between bands[0]" in r.text
    good = gap.replace("to_min: 60", "to_min: 90")
    r = admin.post("/setup/sites/HQ/tariff", data={"csrf_token": csrf(admin), "code": "std", "name": "Dearer",
                                                   "effective_from": "", "rules": good})
    assert r.status_code == 303, r.text[:2000]
    with db.sessions() as s:
        versions = s.scalars(select(TariffVersion).order_by(TariffVersion.version)).all()
        assert [(v.version, v.name) for v in versions if v.code == "std"] == [(1, "Standard"), (2, "Dearer")]
        assert versions[-1].created_by is not None
    past = admin.post("/setup/sites/HQ/tariff", data={"csrf_token": csrf(admin), "code": "std", "name": "Back",
                                                      "effective_from": "2020-01-01T00:00", "rules": good})
    assert past.status_code == 422 and "from now or later" in past.text


SITE_FILE = """\
site: {code: SF, name: From a file, timezone: Europe/Paris, currency: EUR}
lanes:
  - {code: SF-IN, direction: entry}
  - {code: SF-OUT, direction: exit}
devices: [{name: Gate, lane: SF-IN}]
"""


def test_a_site_file_is_applied_checked_and_downloaded(as_role, db):
    admin = as_role("admin")
    dry = admin.post("/setup/apply", data={"csrf_token": csrf(admin), "text": SITE_FILE, "dry_run": "y"})
    assert dry.status_code == 200 and "Would change" in dry.text and not KEY.search(dry.text)
    with db.sessions() as s:
        assert s.scalar(select(Site.id).where(Site.code == "SF")) is None
    bad = admin.post("/setup/apply", data={"csrf_token": csrf(admin),
                                           "text": SITE_FILE.replace("SF-OUT", "SF-IN")})
    assert bad.status_code == 422 and "nothing was changed" in bad.text
    assert "line 4: lanes[1].code</code>: lane code &#39;SF-IN&#39; is used twice" in bad.text
    r = admin.post("/setup/apply", data={"csrf_token": csrf(admin), "text": SITE_FILE})
    assert r.status_code == 200 and "site SF: created" in r.text and len(KEY.findall(r.text)) == 1
    again = admin.post("/setup/apply", data={"csrf_token": csrf(admin), "text": SITE_FILE})
    assert "No changes" in again.text
    download = admin.get("/setup/sites/SF/site.yaml")
    assert download.mimetype == "application/yaml" and "site-SF.yaml" in download.headers["Content-Disposition"]
    assert spec.parse(download.text) == spec.parse(SITE_FILE)
    with db.sessions() as s:
        assert audit.verify(s).ok


def test_site_settings_and_zones_are_edited_with_checks(as_role, world, db):
    admin = as_role("admin")
    page = admin.get("/setup/sites/HQ")
    assert 'value="Europe/Berlin"' in page.text
    form = {f"settings-{k}": v for k, v in {
        "name": "Head office", "timezone": "Europe/Berlin", "regions": "us, eu", "capacity": "250",
        "kind": "residential", "visitors": "attendant", "visitor_pass_pricing": "free", "lapsed_credential_days": "30",
        "min_confidence": "0.7", "free_format_min_confidence": "0.9", "max_stay_hours": "48",
        "issues_tickets": "y"}.items()}
    bad = admin.post("/setup/sites/HQ/settings", data={**form, "settings-timezone": "Moon/Base",
                                                       "csrf_token": csrf(admin)})
    assert bad.status_code == 422 and "unknown time zone" in bad.text
    bad = admin.post("/setup/sites/HQ/settings", data={**form, "settings-min_confidence": "7",
                                                       "csrf_token": csrf(admin)})
    assert bad.status_code == 422
    r = admin.post("/setup/sites/HQ/settings", data={**form, "csrf_token": csrf(admin)})
    assert r.status_code == 303
    with db.sessions() as s:
        site = sites.get_site(s, "HQ")
        assert (site.name, site.capacity, site.kind, site.visitors, site.visitor_pass_pricing) == \
            ("Head office", 250, "residential", "attendant", "free")
        assert site.plate_regions == ["us", "eu"] and site.min_confidence == 0.7 and site.max_stay_hours == 48
        last = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
        assert last.action == "site.updated" and last.actor_type == "user"
    r = admin.post("/setup/sites/HQ/zones", data={"csrf_token": csrf(admin), "zone-code": "Z2", "zone-name": "Roof",
                                                  "zone-capacity": "40"})
    assert r.status_code == 303
    dup = admin.post("/setup/sites/HQ/zones", data={"csrf_token": csrf(admin), "zone-code": "Z2", "zone-name": "x"})
    assert dup.status_code == 422 and "already has a zone" in dup.text
    with db.sessions() as s:
        assert sites.get_zone(s, sites.get_site(s, "HQ"), "Z2").capacity == 40


def test_a_lane_is_edited_and_its_relay_checked(as_role, world, db):
    admin = as_role("admin")
    page = admin.get(f"/setup/lanes/{world.entry}")
    assert page.status_code == 200 and 'value="Entry"' in page.text
    form = {"name": "North gate", "direction": "entry", "zone": "", "relay_url": "http://10.0.0.7/relay?on"}
    bad = admin.post(f"/setup/lanes/{world.entry}", data={**form, "relay_url": "gopher://x", "csrf_token": csrf(admin)})
    assert bad.status_code == 422 and "http(s) url" in bad.text
    r = admin.post(f"/setup/lanes/{world.entry}", data={**form, "csrf_token": csrf(admin)})
    assert r.status_code == 303
    with db.sessions() as s:
        lane = sites.get_lane(s, world.entry)
        assert (lane.name, lane.zone_id, lane.driver, lane.driver_config) == \
            ("North gate", None, "http_relay", {"url": "http://10.0.0.7/relay?on"})
        last = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
        assert last.action == "lane.updated" and '"zone":["Z1",null]' in last.data
    assert admin.get("/setup/lanes/NOPE").status_code == 404
    assert as_role("supervisor").get(f"/setup/lanes/{world.entry}").status_code == 403

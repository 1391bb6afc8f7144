"""The `parkinglot` command as an operator runs it, against a temporary instance folder."""
import json
import sqlite3

import pytest
from click.testing import CliRunner

from parkinglot.cli import main
from parkinglot.config import load_settings


@pytest.fixture
def instance(tmp_path, monkeypatch):
    monkeypatch.setenv("PARKINGLOT_INSTANCE_PATH", str(tmp_path))
    monkeypatch.delenv("PARKINGLOT_DATABASE_URL", raising=False)
    return tmp_path


def run(*args, input=None, env=None):
    result = CliRunner().invoke(main, list(args), input=input, env=env, catch_exceptions=False)
    return result


def test_upgrade_demo_verify_and_tamper(instance):
    up = run("db", "upgrade")
    assert up.exit_code == 0 and "database at revision" in up.output
    out = run("demo", "--stays", "20")
    assert out.exit_code == 0, out.output
    assert "console login: attendant" in out.output and (instance / "DEMO.txt").exists()
    assert "already present" in run("demo", "--if-empty").output
    ok = run("audit", "verify")
    assert ok.exit_code == 0 and "intact" in ok.output
    db = sqlite3.connect(instance / "parkinglot.db")
    db.execute("DROP TRIGGER audit_event_no_update")
    db.execute("UPDATE audit_event SET data = '{}' WHERE id = 5")
    db.commit()
    db.close()
    bad = run("audit", "verify")
    assert bad.exit_code == 1 and "BROKEN at event 5" in bad.output


def test_users_and_devices(instance):
    run("db", "upgrade")
    run("demo", "--stays", "0")
    r = run("users", "add", "night-shift", "--role", "attendant", "--site", "DT",
            env={"PARKINGLOT_NEW_USER_PASSWORD": "long-enough-1"})
    assert r.exit_code == 0 and "created" in r.output
    dup = run("users", "add", "night-shift", "--role", "attendant", "--site", "DT",
              env={"PARKINGLOT_NEW_USER_PASSWORD": "another-lantern-9"})
    assert dup.exit_code != 0 and "already exists" in dup.output
    short = run("users", "add", "shorty", "--role", "admin", env={"PARKINGLOT_NEW_USER_PASSWORD": "short"})
    assert short.exit_code != 0
    d = run("devices", "add", "--site", "DT", "--name", "Lane 9")
    key = json.loads(d.output)["api_key"]
    assert key.startswith("pl_")
    till = run("devices", "add", "--site", "DT", "--name", "Till 1", "--kind", "pay_station")
    assert till.exit_code == 0 and json.loads(till.output)["kind"] == "pay_station"
    unknown = CliRunner().invoke(main, ["devices", "add", "--site", "NOPE", "--name", "x"])
    assert unknown.exit_code != 0
    bound = run("devices", "add", "--site", "DT", "--name", "Entry 1", "--lane", "DT-IN-1")
    assert bound.exit_code == 0 and json.loads(bound.output)["lane"] == "DT-IN-1"
    no_lane = run("devices", "add", "--site", "DT", "--name", "x", "--lane", "NOPE")
    assert no_lane.exit_code != 0 and "unknown lane 'NOPE'" in no_lane.output


def test_settings_layering(tmp_path):
    (tmp_path / "config.py").write_text("LPR_REGION = 'eu'\nREPORT_MAX_DAYS = 10\n")
    s = load_settings(tmp_path, {"REPORT_MAX_DAYS": 5}, environ={"PARKINGLOT_LPR_MAX_FRAMES": "3"})
    assert s["LPR_REGION"] == "eu" and s["REPORT_MAX_DAYS"] == 5 and s["LPR_MAX_FRAMES"] == 3
    assert s["DATABASE_URL"] == f"sqlite:///{tmp_path / 'parkinglot.db'}"


SITE_FILE = """\
site: {code: NB, name: North Block, timezone: Europe/Berlin, currency: EUR, plate_regions: [eu]}
zones: [{code: P1, name: Deck 1}]
lanes:
  - {code: NB-IN, direction: entry, zone: P1}
  - {code: NB-OUT, direction: exit, zone: P1}
devices: [{name: Entry box, lane: NB-IN}]
tariff:
  code: std
  rules:
    rates: {hourly: {bands: [{from_min: 0, step_min: 60, price: "1.50"}]}}
    week: {mon-sun: hourly}
"""


def test_site_apply_export_and_the_everyday_verbs(instance, tmp_path):
    run("db", "upgrade")
    path = tmp_path / "north.yaml"
    path.write_text(SITE_FILE)
    dry = run("site", "apply", str(path), "--dry-run")
    assert dry.exit_code == 0 and "would change:" in dry.output and "pl_" not in dry.output
    dry_json = json.loads(run("site", "apply", str(path), "--dry-run", "--json").output)
    assert dry_json["device_keys"] == [] and "device 'Entry box': created (lane_controller, bound to lane NB-IN)" \
        in dry_json["changes"]
    assert "no sites yet" in run("sites", "list").output
    first = run("site", "apply", str(path))
    assert first.exit_code == 0, first.output
    assert "  site NB: created" in first.output and "  lane NB-OUT: created (exit)" in first.output
    assert "Entry box (device 1, lane_controller, lane NB-IN): pl_" in first.output  # the key, shown once
    assert run("site", "apply", str(path)).output == "no changes\n"
    assert json.loads(run("site", "apply", str(path), "--json").output) == {
        "site": "NB", "dry_run": False, "changes": [], "notes": [], "device_keys": []}
    exported = tmp_path / "exported.yaml"
    assert run("site", "export", "NB", "-o", str(exported)).exit_code == 0
    assert "pl_" not in exported.read_text() and run("site", "apply", str(exported)).output == "no changes\n"
    assert run("site", "export", "NB").output == exported.read_text()

    path.write_text(SITE_FILE.replace("zone: P1}\n  - {code: NB-OUT", "zone: P1}\n  - {code: NB-IN"))
    bad = run("site", "apply", str(path))
    assert bad.exit_code == 1 and f"{path}:5: lanes[1].code: lane code 'NB-IN' is used twice" in bad.output
    assert "Traceback" not in bad.output
    assert "unknown site 'NOPE'" in run("site", "export", "NOPE").output
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes(SITE_FILE.replace("North Block", "Nord Stra\u00dfe").encode("latin-1"))
    not_utf8 = run("site", "apply", str(latin))
    assert not_utf8.exit_code == 1 and "not UTF-8 text" in not_utf8.output

    added = run("sites", "add", "SB", "--name", "South Block", "--timezone", "Europe/Berlin", "--currency", "EUR",
                "--region", "eu", "--kind", "private")
    assert added.exit_code == 0 and "visitors refuse" in added.output
    again = run("sites", "add", "SB", "--name", "x", "--timezone", "UTC", "--currency", "EUR")
    assert again.exit_code == 1 and "site SB already exists" in again.output
    bad_tz = run("sites", "add", "TZ", "--name", "x", "--timezone", "Mars/Base", "--currency", "EUR")
    assert bad_tz.exit_code == 1 and "unknown time zone 'Mars/Base'" in bad_tz.output
    assert run("zones", "add", "G", "--site", "SB", "--capacity", "20").output == "zone G added to site SB\n"
    assert "already has a zone 'G'" in run("zones", "add", "G", "--site", "SB").output
    lane = run("lanes", "add", "SB-IN", "--site", "SB", "--direction", "entry", "--zone", "G")
    assert lane.exit_code == 0 and "lane SB-IN (entry) added to site SB" in lane.output
    assert "site SB has no zone 'H'" in run("lanes", "add", "SB-X", "--site", "SB", "--direction", "exit",
                                             "--zone", "H").output
    taken = run("lanes", "add", "NB-IN", "--site", "SB", "--direction", "entry")
    assert taken.exit_code == 1 and "lane code 'NB-IN' is already used" in taken.output
    relay = run("lanes", "add", "SB-OUT", "--site", "SB", "--direction", "exit", "--driver", "http_relay")
    assert relay.exit_code == 1 and "--relay-url" in relay.output
    assert run("lanes", "disable", "SB-IN", "--reason", "camera replaced").output == "lane SB-IN disabled\n"
    assert run("lanes", "disable", "SB-IN", "--reason", "again").output == "lane SB-IN was already disabled\n"
    assert run("lanes", "enable", "SB-IN").output == "lane SB-IN enabled\n"
    listed = run("sites", "list").output.splitlines()
    assert listed[0].startswith("NB\tNorth Block\tEurope/Berlin\tEUR\tlanes 2/2\ttariff std")
    assert listed[1].startswith("SB\tSouth Block") and "lanes 1/1\ttariff -" in listed[1]
    assert "intact" in run("audit", "verify").output

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
    dup = run("users", "add", "night-shift", "--role", "attendant", env={"PARKINGLOT_NEW_USER_PASSWORD": "x" * 9})
    assert dup.exit_code != 0 and "already exists" in dup.output
    short = run("users", "add", "shorty", "--role", "admin", env={"PARKINGLOT_NEW_USER_PASSWORD": "short"})
    assert short.exit_code != 0
    d = run("devices", "add", "--site", "DT", "--name", "Lane 9")
    key = json.loads(d.output)["api_key"]
    assert key.startswith("pl_")
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

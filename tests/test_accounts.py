"""Accounts and sessions under attack (issue 21, part 3): replayed cookies, weak passwords,
lockouts used as a denial of service, over-long inputs and world-readable files.

Every database test runs on SQLite and on PostgreSQL (the ``db`` fixture).
"""
from __future__ import annotations

import base64
import os
import sqlite3
import stat
import io
import re

import pytest
from sqlalchemy import func, select

from parkinglot.records import audit, user_admin, users
from parkinglot.records.errors import InvalidInput
from parkinglot.records.models import Alert, AuditEvent, Permit, Site, User

from .console_world import PASSWORD, build, csrf, login, token

NEW_PASSWORD = "quiet-meadow-gate-71"


@pytest.fixture
def world(db, app, monkeypatch):
    from werkzeug.security import generate_password_hash

    # cheap hashes keep the suite fast; the production default (scrypt) is what users.py uses
    monkeypatch.setattr(users, "generate_password_hash", lambda p: generate_password_hash(p, "pbkdf2:sha256:1000"))
    return build(db, app)


def logged_in(app, username: str = "attendant", password: str = PASSWORD):
    client = app.test_client()
    r = login(client, username, password)
    assert r.status_code == 302, r.text[:300]
    return client


def replay(app, client):
    """A second browser carrying a copy of ``client``'s session cookie (as an attacker would)."""
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    return thief


def api_open(client, lane: str):
    return client.post(f"/api/v1/lanes/{lane}/open", json={"reason": "barrier test", "no_vehicle": True})


def events(db, action: str) -> list[AuditEvent]:
    with db.sessions() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


# --- sessions end everywhere ------------------------------------------------------------

def test_cookie_copied_before_logout_no_longer_works(app, world):
    client = logged_in(app)
    thief = replay(app, client)
    assert thief.get("/dashboard").status_code == 200  # the copy works while the session lives
    assert api_open(thief, world.entry).status_code == 200
    assert client.post("/logout", data={"csrf_token": csrf(client)}).status_code == 302
    assert thief.get("/dashboard").status_code == 302  # back to the login page
    r = api_open(thief, world.entry)
    assert r.status_code == 401 and r.json["error"]["code"] == "unauthorized"
    again = logged_in(app)  # logging in afresh works
    assert again.get("/dashboard").status_code == 200


def test_cookie_copied_before_a_password_change_no_longer_works(app, world, db):
    client = logged_in(app)
    thief = replay(app, client)
    admin = logged_in(app, "admin")
    with db.sessions() as s:
        uid = s.scalar(select(User.id).where(User.username == "attendant"))
    page = admin.get(f"/users/{uid}")
    r = admin.post(f"/users/{uid}", data={"csrf_token": token(page.text), "display_name": "Attendant Person",
                                          "role": "attendant", "sites": [str(s) for s in _site_ids(db, uid)],
                                          "active": "y", "password": NEW_PASSWORD})
    assert r.status_code == 303, r.text[:500]
    for c in (client, thief):
        assert c.get("/dashboard").status_code == 302
        assert api_open(c, world.entry).status_code == 401
    assert admin.get("/users").status_code == 200  # the administrator's own session is untouched
    assert login(app.test_client(), "attendant", PASSWORD).status_code == 401
    assert logged_in(app, "attendant", NEW_PASSWORD).get("/dashboard").status_code == 200
    assert [e.actor_id for e in events(db, "user.password_changed")] == [str(_uid(db, "admin"))]


def test_own_password_change_keeps_this_session_but_ends_the_others(app, world, db):
    admin = logged_in(app, "admin")
    copy = replay(app, admin)
    uid = _uid(db, "admin")
    page = admin.get(f"/users/{uid}")
    r = admin.post(f"/users/{uid}", data={"csrf_token": token(page.text), "display_name": "Admin Person",
                                          "role": "admin", "active": "y", "password": "keystone-" + NEW_PASSWORD})
    assert r.status_code == 303, r.text[:500]
    assert admin.get("/users").status_code == 200
    assert copy.get("/users").status_code == 302


@pytest.mark.parametrize("change", ["role", "deactivate"])
def test_role_change_and_deactivation_end_every_session(app, world, db, change):
    client = logged_in(app, "supervisor")
    with db.sessions() as s:
        user = s.scalar(select(User).where(User.username == "supervisor"))
        boss = s.scalar(select(User).where(User.username == "admin"))
        user_admin.update_user(s, user, display_name=user.display_name, sites=list(user.sites), by=boss,
                               role="attendant" if change == "role" else user.role, active=change != "deactivate")
        s.commit()
    assert client.get("/dashboard").status_code == 302
    assert api_open(client, world.entry).status_code == 401
    reasons = [e.data for e in events(db, "user.sessions_ended")]
    assert len(reasons) == 1 and ("role_changed" if change == "role" else "deactivated") in reasons[0]


def _uid(db, username: str) -> int:
    with db.sessions() as s:
        return s.scalar(select(User.id).where(User.username == username))


def _site_ids(db, uid: int) -> list[int]:
    with db.sessions() as s:
        return [site.id for site in s.get(User, uid).sites]


# --- password policy --------------------------------------------------------------------

WEAK = [
    ("password123", "attendant", "too easy to guess"),  # on the common-password lists
    ("qwertyuiop12", "attendant", "too easy to guess"),  # a keyboard walk
    ("P@ssw0rd2026", "attendant", "too easy to guess"),  # a common one with substitutions
    ("night-shift-99", "attendant", "must not be or contain the username"),
    ("NIGHT-SHIFT", "finance", "must not be or contain the username"),  # equal, whatever the case
    ("            ", "attendant", "empty or only spaces"),
    ("\t \n", "attendant", "empty or only spaces"),
    ("short-1", "attendant", "at least 10 characters"),
    ("harbour-lamp1", "admin", "at least 14 characters"),  # 13: fine for an attendant, short for an admin
    ("harbour-lamp1", "supervisor", "at least 14 characters"),
    ("x" * 129, "attendant", "at most 128 characters"),
]


@pytest.mark.parametrize("password,role,message", WEAK)
def test_weak_passwords_are_refused_with_a_reason(session, password, role, message):
    with pytest.raises(InvalidInput, match=message):
        users.create_user(session, username="night-shift", password=password, role=role)
    assert session.scalar(select(User.id).where(User.username == "night-shift")) is None


def test_strong_passwords_are_accepted_and_a_change_is_checked_too(session):
    user = users.create_user(session, username="night-shift", password="lantern-harbour", role="attendant")
    admin = users.create_user(session, username="boss", password="lantern-harbour-keystone", role="admin")
    with pytest.raises(InvalidInput, match="too easy to guess"):
        users.set_password(session, user, "iloveyou12345", actor=audit.Actor.user(admin.id))
    with pytest.raises(InvalidInput, match="contain the username"):
        users.set_password(session, admin, "boss-lantern-harbour", actor=audit.Actor.user(admin.id))
    users.set_password(session, user, NEW_PASSWORD, actor=audit.Actor.user(admin.id))
    assert users.authenticate(session, "night-shift", NEW_PASSWORD) is not None


def test_console_refuses_a_weak_password_with_the_reason(app, world, db):
    admin = logged_in(app, "admin")
    page = admin.get("/users/new")
    r = admin.post("/users/new", data={"csrf_token": token(page.text), "username": "night-shift",
                                       "role": "finance", "password": "password123"})
    assert r.status_code == 422 and "too easy to guess" in r.text
    r = admin.post("/users/new", data={"csrf_token": token(page.text), "username": "night-shift",
                                       "role": "finance", "password": "night-shift-lantern"})
    assert r.status_code == 422 and "must not be or contain the username" in r.text
    assert _uid(db, "night-shift") is None


# --- users add (CLI) --------------------------------------------------------------------

@pytest.fixture
def cli(db, tmp_path, monkeypatch):
    """``parkinglot`` against the test database, with one site (DT)."""
    from click.testing import CliRunner

    from parkinglot.cli import main

    from .factories import make_site

    monkeypatch.setenv("PARKINGLOT_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.delenv("PARKINGLOT_NEW_USER_PASSWORD", raising=False)
    with db.sessions() as s:
        make_site(s, code="DT")
        s.commit()

    def run(*args, input=None, env=None):
        return CliRunner().invoke(main, ["--database-url", db.url, *args], input=input, env=env,
                                  catch_exceptions=False)
    return run


def test_users_add_takes_the_password_from_a_hidden_prompt(cli, db):
    r = cli("users", "add", "night-shift", "--role", "attendant", "--site", "DT",
            input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    assert r.exit_code == 0 and "created" in r.output, r.output
    assert NEW_PASSWORD not in r.output  # the prompt does not echo
    with db.sessions() as s:
        assert users.authenticate(s, "night-shift", NEW_PASSWORD) is not None


def test_users_add_has_no_password_option(cli):
    r = cli("users", "add", "night-shift", "--role", "attendant", "--site", "DT", "--password", NEW_PASSWORD)
    assert r.exit_code == 2 and "No such option" in r.output


def test_users_add_reads_the_environment_or_stdin(cli, db):
    r = cli("users", "add", "night-shift", "--role", "attendant", "--site", "DT",
            env={"PARKINGLOT_NEW_USER_PASSWORD": NEW_PASSWORD})
    assert r.exit_code == 0, r.output
    r = cli("users", "add", "day-shift", "--role", "attendant", "--site", "DT", "--password-stdin",
            input=NEW_PASSWORD + "\n")
    assert r.exit_code == 0, r.output
    with db.sessions() as s:
        assert users.authenticate(s, "day-shift", NEW_PASSWORD) is not None


@pytest.mark.parametrize("password,message", [(p, m) for p, r, m in WEAK if r == "attendant"])
def test_users_add_refuses_weak_passwords_with_the_reason(cli, password, message):
    r = cli("users", "add", "night-shift", "--role", "attendant", "--site", "DT",
            env={"PARKINGLOT_NEW_USER_PASSWORD": password})
    assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("role", ["attendant", "supervisor"])
def test_users_add_needs_a_site_for_site_scoped_roles(cli, db, role):
    r = cli("users", "add", "night-shift", "--role", role, env={"PARKINGLOT_NEW_USER_PASSWORD": "keystone-" + NEW_PASSWORD})
    assert r.exit_code == 2 and "--site" in r.output
    assert _uid(db, "night-shift") is None


@pytest.mark.parametrize("role", ["finance", "admin"])
def test_users_add_warns_when_a_user_gets_every_site(cli, role):
    env = {"PARKINGLOT_NEW_USER_PASSWORD": "keystone-" + NEW_PASSWORD}
    r = cli("users", "add", "all-sites", "--role", role, env=env)
    assert r.exit_code == 0 and "warning" in r.output and "every site" in r.output
    r = cli("users", "add", "one-site", "--role", role, "--site", "DT", env=env)
    assert r.exit_code == 0 and "warning" not in r.output


# --- lockouts without denial of service ------------------------------------------------

FOREIGN = "203.0.113.9"


def stranger(app, addr: str = FOREIGN):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = addr
    return client


def lock_out(app, username: str, client=None) -> None:
    client = client or stranger(app)
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert login(client, username, "not-the-password").status_code == 401
    assert login(client, username, PASSWORD).status_code == 429


def test_lockout_from_a_foreign_address_does_not_lock_out_a_known_browser(app, world, db):
    known = logged_in(app, "supervisor")  # this browser has logged in before: it has a device cookie
    assert known.post("/logout", data={"csrf_token": csrf(known)}).status_code == 302
    lock_out(app, "supervisor")
    assert login(app.test_client(), "supervisor", PASSWORD).status_code == 429  # any other browser is locked out
    assert login(known, "supervisor", "not-the-password").status_code == 401  # its own allowance, not yet used
    r = login(known, "supervisor", PASSWORD)
    assert r.status_code == 302
    assert known.get("/dashboard").status_code == 200
    with db.sessions() as s:
        found = list(s.scalars(select(Alert).where(Alert.kind == "account_lockout")))
        assert [a.site_id for a in found] == [s.scalar(select(Site.id).where(Site.code == world.site))]
        assert "supervisor" in found[0].message and "not logged in from before" in found[0].message
    assert "Logins as supervisor" in known.get("/alerts?kind=account_lockout").text  # shown to the site's people


def test_a_known_browser_has_its_own_allowance_and_its_own_lockout(app, world, db):
    known = logged_in(app, "attendant")
    known.post("/logout", data={"csrf_token": csrf(known)})
    lock_out(app, "attendant", known)
    assert login(stranger(app), "attendant", PASSWORD).status_code == 302  # others are not locked out by it
    scopes = [e.data.replace(" ", "") for e in events(db, "user.locked_out")]
    assert len(scopes) == 1 and '"scopes":["browser"]' in scopes[0]


def test_a_device_cookie_is_bound_to_its_users_and_its_signature(app, world):
    known = logged_in(app, "attendant")
    known.post("/logout", data={"csrf_token": csrf(known)})
    lock_out(app, "supervisor")
    assert login(known, "supervisor", PASSWORD).status_code == 429  # it never logged in as the supervisor
    forged = app.test_client()
    forged.set_cookie("parkinglot_device", known.get_cookie("parkinglot_device").value[:-2] + "xx")
    lock_out(app, "attendant", stranger(app, "198.51.100.7"))
    assert login(forged, "attendant", PASSWORD).status_code == 429
    cookie = known.get_cookie("parkinglot_device")
    assert cookie.http_only and cookie.same_site == "Lax"


def test_logins_failures_and_lockouts_are_audited_without_passwords(app, world, db):
    logged_in(app, "attendant")
    login(app.test_client(), "attendant", "wrong-password-1")
    login(app.test_client(), "my-secret-password", "typed-in-the-wrong-box")  # no such user
    lock_out(app, "finance")
    ok, failed, locked = (events(db, a) for a in ("user.login", "user.login_failed", "user.locked_out"))
    assert len(ok) == 1 and '"attendant"' in ok[0].data and ok[0].actor_type == "user"
    assert len(failed) == 2 + app.config["LOGIN_MAX_FAILURES"]
    assert '"attendant"' in failed[0].data and '"known_user":false' in failed[1].data.replace(" ", "")
    assert len(locked) == 1 and '"scopes":["account","address"]' in locked[0].data.replace(" ", "")
    for e in ok + failed + locked:
        for secret in (PASSWORD, "wrong-password-1", "my-secret-password", "typed-in-the-wrong-box",
                       "not-the-password"):
            assert secret not in e.data


# --- over-long inputs ------------------------------------------------------------------

def basic(username: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def test_overlong_username_is_refused_and_still_counts_against_the_address(app, world):
    client = stranger(app)
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        r = client.get("/api/v1/reports/revenue", headers=basic("u" * 200, "whatever-password"))
        assert r.status_code == 401 and r.json["error"]["code"] == "unauthorized"
    r = client.get("/api/v1/reports/revenue", headers=basic("finance", PASSWORD))
    assert r.status_code == 429  # the address is throttled, even for a real account
    r = app.test_client().get("/api/v1/reports/revenue?site=" + world.site, headers=basic("finance", PASSWORD))
    assert r.status_code not in (401, 429, 503)


def test_permit_import_with_a_long_holder_reports_that_row_not_a_503(app, world, db):
    sup = logged_in(app, "supervisor")
    page = sup.get(f"/permits/import?site={world.site}")
    data = ("number,holder,plates,valid_from,valid_to\n"
            "P-1,Good Tenant,AB12,2026-01-01,2026-12-31\n"
            f"P-2,{'H' * 200},CD34,2026-01-01,2026-12-31\n"
            f"{'N' * 40},Long Number,EF56,2026-01-01,2026-12-31\n").encode()
    r = sup.post(f"/permits/import?site={world.site}", content_type="multipart/form-data",
                 data={"csrf_token": token(page.text), "file": (io.BytesIO(data), "permits.csv")})
    assert r.status_code == 422, r.text[:300]
    assert re.search(r"<td>3</td><td>[^<]*holder has 200 characters \(at most 120\)", r.text)
    assert re.search(r"<td>4</td><td>[^<]*number has 40 characters \(at most 32\)", r.text)
    assert "Nothing was imported" in r.text
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Permit)) == 0


def test_hotlist_import_with_long_cells_reports_each_row(session):
    from parkinglot.records import imports

    from .factories import make_site

    site, _, _ = make_site(session)
    data = ("plate,reason,source\nAB123,stolen,police\n"
            f"CD456,{'r' * 201},police\nEF789,stolen,{'s' * 65}\n").encode()
    report = imports.import_hotlist(session, data, site_id=site.id, user_id=None)
    assert report.imported == 1 and [(e.line, e.message) for e in report.errors] == [
        (3, "reason has 201 characters (at most 200)"), (4, "source has 65 characters (at most 64)")]


# --- file permissions ------------------------------------------------------------------

def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_instance_folder_database_wal_and_demo_file_are_the_owners_only(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from parkinglot.cli import main

    monkeypatch.setenv("PARKINGLOT_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.delenv("PARKINGLOT_DATABASE_URL", raising=False)
    old = os.umask(0o022)  # the usual umask: files 0644, folders 0755 unless created otherwise
    try:
        assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0
        r = CliRunner().invoke(main, ["demo", "--stays", "0"])
        assert r.exit_code == 0, r.output
    finally:
        os.umask(old)
    instance = tmp_path / "instance"
    assert mode(instance) == 0o700
    assert mode(instance / "DEMO.txt") == 0o600
    assert mode(instance / "parkinglot.db") == 0o600
    con = sqlite3.connect(instance / "parkinglot.db")  # keep a connection open: the WAL and SHM stay
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE t (x)")
    con.commit()
    for suffix in ("-wal", "-shm"):
        assert mode(f"{instance / 'parkinglot.db'}{suffix}") == 0o600, suffix
    con.close()
    assert "console login" in (instance / "DEMO.txt").read_text()


def test_database_file_created_by_the_engine_is_the_owners_only(tmp_path):
    from parkinglot.db import make_engine

    old = os.umask(0o022)
    try:
        engine = make_engine(f"sqlite:///{tmp_path / 'new' / 'x.db'}")
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x)")
            assert mode(tmp_path / "new" / "x.db-wal") == 0o600
        engine.dispose()
    finally:
        os.umask(old)
    assert mode(tmp_path / "new") == 0o700 and mode(tmp_path / "new" / "x.db") == 0o600

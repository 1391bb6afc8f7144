"""The web console through the Flask test client: roles, scoping, CSRF, sessions, bad input, and each workflow.

Every test runs on SQLite and on PostgreSQL (the ``db`` fixture).
"""
from __future__ import annotations

import io
import json
import re
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from sqlalchemy import func, select

from parkinglot.records import audit, shifts
from parkinglot.records.models import (
    Alert, Decision, Dispute, HotlistEntry, ParkingSession, Payment, Permit, Shift, Site, User, VehicleLock, VisitorPass,
)
from parkinglot.records.types import utcnow

from .console_world import PASSWORD, build, csrf, login, token

START_PAGES = {"attendant": "/dashboard", "supervisor": "/dashboard", "finance": "/revenue", "admin": "/dashboard"}
# page -> roles allowed (admin may use every page)
PAGES = {
    "/dashboard": {"attendant", "supervisor", "admin"},
    "/live.json": {"attendant", "supervisor", "admin"},
    "/stays": {"attendant", "supervisor", "finance", "admin"},
    "/lanes": {"attendant", "supervisor", "admin"},
    "/alerts": {"attendant", "supervisor", "admin"},
    "/hotlist": {"attendant", "supervisor", "admin"},
    "/permits": {"attendant", "supervisor", "admin"},
    "/permits/new": {"supervisor", "admin"},
    "/passes": {"attendant", "supervisor", "admin"},
    "/disputes": {"attendant", "supervisor", "admin"},
    "/shift": {"attendant", "supervisor", "admin"},
    "/shifts": {"supervisor", "admin"},
    "/kpis": {"supervisor", "admin"},
    "/revenue": {"finance", "admin"},
    "/revenue/reconciliation": {"finance", "admin"},
    "/users": {"admin"},
    "/users/new": {"admin"},
    "/subject-exports": {"supervisor", "admin"},
}
NO_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_STYLE = re.compile(r"\sstyle\s*=", re.I)
NOT_TEXT = "<script>alert('x')</script><img src=x onerror=alert(1)>"


@pytest.fixture
def world(db, app, monkeypatch):
    from werkzeug.security import generate_password_hash

    from parkinglot.records import users

    # cheap hashes keep the suite fast; the production default (scrypt) is tested by the records tests
    monkeypatch.setattr(users, "generate_password_hash", lambda p: generate_password_hash(p, "pbkdf2:sha256:1000"))
    return build(db, app)


@pytest.fixture
def as_role(app, world):
    """A logged-in test client for a role."""
    def make(username: str):
        client = app.test_client()
        r = login(client, username)
        assert r.status_code == 302, r.text[:500]
        return client
    return make


def count(db, model, *where) -> int:
    with db.sessions() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def site_id(db, code: str) -> int:
    with db.sessions() as s:
        return s.scalar(select(Site.id).where(Site.code == code))


# --- logging in, roles and scope ---------------------------------------------------------------

@pytest.mark.parametrize("role", list(START_PAGES))
def test_each_role_logs_in_and_lands_on_its_start_page(app, world, role):
    client = app.test_client()
    r = login(client, role)
    assert r.status_code == 302 and r.headers["Location"] == "/"
    r = client.get("/")
    assert r.status_code == 302 and r.headers["Location"] == START_PAGES[role]
    page = client.get(START_PAGES[role])
    assert page.status_code == 200
    assert f"{role.title()} Person" in page.text


def test_every_page_for_every_role(as_role):
    """The access matrix: allowed pages render (200), the others are a console 403 page, never a redirect."""
    for role in ("attendant", "supervisor", "finance", "admin"):
        client = as_role(role)
        for path, allowed in PAGES.items():
            r = client.get(path)
            if role in allowed:
                assert r.status_code == 200, (role, path, r.status_code, r.text[:300])
            else:
                assert r.status_code == 403, (role, path, r.status_code)
                assert "Location" not in r.headers
                if path != "/live.json":
                    assert "Not allowed" in r.text and "Parkinglot console" in r.text


def test_refused_page_is_a_403_page_not_a_login_loop(as_role):
    client = as_role("attendant")
    r = client.get("/revenue", follow_redirects=True)
    assert r.status_code == 403
    assert len(r.history) == 0
    assert "Your role or your sites do not include this page" in r.text


def test_anonymous_is_sent_to_login_and_back(app, world):
    client = app.test_client()
    r = client.get("/stays?q=AB123")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login?next=")
    page = client.get(r.headers["Location"])
    r = client.post(r.headers["Location"], data={"username": "attendant", "password": PASSWORD,
                                                 "csrf_token": token(page.text)})
    assert r.headers["Location"] == "/stays?q=AB123"


def test_login_never_redirects_off_site(app, world):
    client = app.test_client()
    page = client.get("/login")
    r = client.post("/login?next=//evil.example/x", data={"username": "attendant", "password": PASSWORD,
                                                          "csrf_token": token(page.text)})
    assert r.headers["Location"] == "/"


def test_wrong_password_then_throttled(app, world):
    client = app.test_client()
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        r = login(client, "attendant", "wrong-password")
        assert r.status_code == 401 and "Wrong username or password" in r.text
    r = login(client, "attendant", PASSWORD)  # even the right password is refused while locked out
    assert r.status_code == 429 and "Too many failed attempts" in r.text


def test_logout_needs_post_with_csrf_and_ends_the_session(as_role):
    client = as_role("attendant")
    assert client.post("/logout").status_code == 400  # no CSRF token
    assert client.get("/dashboard").status_code == 200
    r = client.post("/logout", data={"csrf_token": csrf(client)})
    assert r.status_code == 302
    assert client.get("/dashboard").status_code == 302


def test_attendant_cannot_see_or_act_on_another_site(as_role, world, db):
    client = as_role("attendant")
    assert client.get(f"/stays/{world.other_stay}").status_code == 403
    assert client.get(f"/alerts/{world.other_alert}").status_code == 403
    assert client.get(f"/stays?site={world.other_site}").status_code == 403
    assert client.get(f"/evidence/{world.other_photo}").status_code == 403
    tok = csrf(client)
    before = count(db, Decision)
    r = client.post(f"/lanes/{world.other_entry}/open", data={"csrf_token": tok, f"{world.other_entry}-reason": "nope nope"})
    assert r.status_code == 403
    r = client.post(f"/alerts/{world.other_alert}/acknowledge", data={"csrf_token": tok})
    assert r.status_code == 403
    assert count(db, Decision) == before
    with db.sessions() as s:
        assert s.get(Alert, world.other_alert).status == "open"
    # the other site's attendant sees theirs and not ours
    other = as_role("other")
    assert other.get(f"/stays/{world.other_stay}").status_code == 200
    assert other.get(f"/stays/{world.open_stay}").status_code == 403


def test_unknown_ids_and_paths_are_console_404_pages(as_role):
    client = as_role("supervisor")
    for path in ("/stays/999999", "/alerts/999999", "/disputes/999999", "/no-such-page", "/evidence/" + "0" * 64,
                 "/evidence/..%2F..%2Fetc%2Fpasswd", "/permits/HQ/NOPE"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert "Parkinglot console" in r.text


# --- CSRF, cookies, headers, sessions -------------------------------------------------------------

def test_csrf_is_enforced_on_every_form(as_role, world, db):
    client = as_role("attendant")
    for path, data in ((f"/lanes/{world.entry}/open", {f"{world.entry}-reason": "ticket jam"}),
                       (f"/alerts/{world.alert}/acknowledge", {}),
                       ("/shift/start", {"site": world.site}),
                       (f"/stays/{world.closed_stay}/disputes", {"reason": "overcharged"})):
        r = client.post(path, data=data)
        assert r.status_code == 400, path
        assert "Reload the page and try again" in r.text
        r = client.post(path, data={**data, "csrf_token": "forged"})
        assert r.status_code == 400, path
    assert count(db, Decision, Decision.actor == "user") == 0
    assert count(db, Shift) == 0 and count(db, Dispute) == 0


def test_session_cookie_flags(app, world):
    client = app.test_client()
    page = client.get("/login")
    r = client.post("/login", data={"username": "attendant", "password": PASSWORD, "csrf_token": token(page.text)})
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # off for the loopback demo; SESSION_COOKIE_SECURE turns it on


def test_secure_cookie_when_configured(db, tmp_path, world):
    from parkinglot.web import create_app

    app = create_app({"INSTANCE_PATH": str(tmp_path / "i2"), "DATABASE_URL": db.url, "SECRET_KEY": "k",
                      "EVIDENCE_DIR": str(tmp_path / "ev"), "SESSION_COOKIE_SECURE": True})
    try:
        client = app.test_client()
        page = client.get("/login")
        r = client.post("/login", data={"username": "attendant", "password": PASSWORD,
                                        "csrf_token": token(page.text)})
        assert "Secure" in r.headers["Set-Cookie"]
    finally:
        app.extensions["parkinglot"].close()


def test_security_headers_and_no_inline_script_or_style(as_role, world):
    client = as_role("admin")
    for path in [p for p in PAGES if p != "/live.json"] + [f"/stays/{world.open_stay}", f"/alerts/{world.alert}",
                                                           "/login", "/missing"]:
        r = client.get(path)
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "same-origin"
        assert not NO_INLINE_SCRIPT.search(r.text), path
        assert not INLINE_STYLE.search(r.text), path
        assert "http://" not in r.text.replace("http://localhost", "") and "https://" not in r.text, path
    static = client.get("/console-static/console/console.css")
    assert static.status_code == 200 and static.headers["X-Content-Type-Options"] == "nosniff"


def test_expired_session_goes_back_to_login(as_role, app):
    client = as_role("attendant")
    with client.session_transaction() as sess:
        sess["login_at"] = time.time() - app.permanent_session_lifetime.total_seconds() - 5
    r = client.get("/dashboard")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")
    assert "expired" in client.get(r.headers["Location"]).text
    assert client.get("/dashboard").status_code == 302  # logged out for good


def test_expired_session_on_the_live_endpoint_is_401(as_role, app):
    client = as_role("attendant")
    with client.session_transaction() as sess:
        sess["login_at"] = time.time() - app.permanent_session_lifetime.total_seconds() - 5
    r = client.get("/live.json")
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "session_expired"


def test_idle_cookie_past_its_lifetime_is_refused(db, tmp_path, world, monkeypatch):
    """The signed cookie itself carries its age: past PERMANENT_SESSION_LIFETIME it is not accepted."""
    from itsdangerous.timed import TimestampSigner

    from parkinglot.web import create_app

    app = create_app({"INSTANCE_PATH": str(tmp_path / "i3"), "DATABASE_URL": db.url, "SECRET_KEY": "k",
                      "EVIDENCE_DIR": str(tmp_path / "ev"), "PERMANENT_SESSION_LIFETIME": 1})
    try:
        client = app.test_client()
        assert login(client, "attendant").status_code == 302
        assert client.get("/dashboard").status_code == 200
        signed_at = int(time.time())
        # the cookie signer's clock three seconds on (past the 1 s lifetime), instead of sleeping
        monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: signed_at + 3)
        r = client.get("/dashboard")
        assert r.status_code == 302 and r.headers["Location"].startswith("/login")
    finally:
        app.extensions["parkinglot"].close()


# --- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("query, message", [
    ("start=2026-13-45T10:00", "Not a valid datetime value"),
    ("start=2026-03-05T10:00&end=2026-03-01T10:00", "end of the time range must be after its start"),
    ("start=2026-03-29T02:30", "does not exist in Europe/Berlin"),
    ("q=AB%3C1", "illegal characters"),
    ("mode=sideways", "Not a valid choice"),
])
def test_stay_search_rejects_bad_input(as_role, query, message):
    r = as_role("attendant").get(f"/stays?{query}")
    assert r.status_code == 422
    assert message in r.text


def test_invalid_dates_in_forms(as_role, world, db):
    sup = as_role("supervisor")
    tok = csrf(sup)
    r = sup.post(f"/passes?site={world.site}", data={"csrf_token": tok, "plate": "VIS1", "valid_from": "2026-02-30T10:00",
                                                     "valid_to": "2026-03-01T10:00"})
    assert r.status_code == 422 and "Not a valid datetime value" in r.text
    r = sup.post(f"/passes?site={world.site}", data={"csrf_token": tok, "plate": "VIS1", "valid_from": "2026-03-02T10:00",
                                                     "valid_to": "2026-03-01T10:00"})
    assert r.status_code == 422 and "must end after it starts" in r.text
    r = sup.post(f"/permits/new?site={world.site}", data={
        "csrf_token": tok, "number": "P-9", "holder": "H", "vehicles": "AB1", "valid_from": "2026-01-01",
        "valid_to": "not-a-date"})
    assert r.status_code == 422 and "Not a valid date value" in r.text
    assert sup.get("/kpis?start=2026-03-10&end=2026-03-01").status_code == 422
    assert sup.get("/kpis?start=2026-02-31").status_code == 422
    assert sup.get("/shifts?start=2020-01-01&end=2026-01-01").status_code == 422  # period too long
    fin = as_role("finance")
    r = fin.get("/revenue?start=2020-01-01&end=2026-01-01")
    assert r.status_code == 422 and "at most" in r.text
    assert count(db, VisitorPass) == 0 and count(db, Permit) == 0


def upload(client, path, data: bytes, name="import.csv"):
    return client.post(path, data={"csrf_token": csrf(client), "file": (io.BytesIO(data), name, "text/csv")},
                       content_type="multipart/form-data")


def test_csv_import_with_wrong_encoding_is_refused(as_role, world, db):
    sup = as_role("supervisor")
    latin1 = "number,holder,plates,valid_from,valid_to\nP-1,Müller,AB12,2026-01-01,2026-12-31\n".encode("latin-1")
    r = upload(sup, f"/permits/import?site={world.site}", latin1)
    assert r.status_code == 422 and "not UTF-8" in r.text
    r = upload(sup, f"/hotlist/import?site={world.site}", b"\x89PNG\r\n\x1a\n\x00\x00binary")
    assert r.status_code == 422 and "not a text CSV" in r.text
    assert count(db, Permit) == 0 and count(db, HotlistEntry) == 0


def test_csv_import_with_wrong_columns_is_refused(as_role, world, db):
    sup = as_role("supervisor")
    r = upload(sup, f"/permits/import?site={world.site}", b"number,owner,plates\nP-1,x,AB1\n")
    assert r.status_code == 422
    assert "missing column(s): holder, valid_from, valid_to" in r.text and "unknown column(s): &#39;owner&#39;" in r.text
    r = upload(sup, f"/hotlist/import?site={world.site}", b"")
    assert r.status_code == 422 and "the file is empty" in r.text
    assert count(db, Permit) == 0


def test_csv_import_reports_every_bad_row_and_imports_nothing(as_role, world, db):
    sup = as_role("supervisor")
    data = ("number,holder,plates,valid_from,valid_to,hours,rate\n"
            "P-1,Good Tenant,AB12 CD34,2026-01-01,2026-12-31,mon-fri 07:00-19:00,permit\n"
            "P-2,Bad Dates,EF56,2026-13-01,2026-12-31,,\n"
            "P-3,Bad Plate,E$F,2026-01-01,2026-12-31,,\n"
            "P-4,Bad Hours,GH78,2026-01-01,2026-12-31,someday 25:00-26:00,\n"
            "P-5,Bad Rate,JK90,2026-01-01,2026-12-31,,gold\n"
            "P-6,Too,Many,Values,2026-01-01,2026-12-31,,\n").encode()
    r = upload(sup, f"/permits/import?site={world.site}", data)
    assert r.status_code == 422
    for line, text in ((3, "is not a date"), (4, "illegal characters"), (5, "invalid permit hours"),
                       (6, "unknown rate"), (7, "expected 7 values")):
        assert re.search(rf"<td>{line}</td><td>[^<]*{re.escape(text)}", r.text), (line, text)
    assert "Nothing was imported" in r.text
    assert count(db, Permit) == 0


def test_csv_import_of_good_files(as_role, world, db):
    sup = as_role("supervisor")
    data = ("\ufeffNumber,Holder,Plates,Valid From,Valid To,Hours\n"
            "P-1,Tenant One,AB12 CD34,2026-01-01,2026-12-31,mon-fri 07:00-19:00; sat 08:00-12:00\n"
            "\n"
            "P-2,Tenant Two,EF56,2026-01-01,2026-06-30,\n").encode()
    r = upload(sup, f"/permits/import?site={world.site}", data)
    assert r.status_code == 303, r.text[:2000]
    r = upload(sup, f"/hotlist/import?site={world.site}", b"plate,reason,source\nST0LEN1,stolen,police\nBAN2,banned,\n")
    assert r.status_code == 303
    with db.sessions() as s:
        p1 = s.scalar(select(Permit).where(Permit.number == "P-1"))
        assert sorted(v.plate for v in p1.vehicles) == ["AB12", "CD34"]
        assert p1.hours == [{"days": "mon-fri", "from": "07:00", "to": "19:00"},
                            {"days": "sat", "from": "08:00", "to": "12:00"}]
        # dates are the site's local days (Europe/Berlin): the last day is included
        assert p1.valid_from.isoformat() == "2025-12-31T23:00:00+00:00"
        assert p1.valid_to.isoformat() == "2026-12-31T23:00:00+00:00"
        assert {h.plate for h in s.scalars(select(HotlistEntry))} >= {"ST0LEN1", "BAN2"}


def test_oversized_upload_is_413(as_role, world, db):
    sup = as_role("supervisor")
    big = b"plate,reason\n" + b"AB123,too big\n" * 200_000  # ~2.8 MB > the console's 2 MiB limit
    r = upload(sup, f"/hotlist/import?site={world.site}", big)
    assert r.status_code == 413
    assert "File too large" in r.text and "Parkinglot console" in r.text
    assert count(db, HotlistEntry, HotlistEntry.source == "csv import") == 0


def test_script_in_notes_is_stored_as_text_and_escaped(as_role, world, db):
    client = as_role("attendant")
    r = client.post(f"/alerts/{world.alert}/resolve", data={"csrf_token": csrf(client), "note": NOT_TEXT})
    assert r.status_code == 303
    with db.sessions() as s:
        assert s.get(Alert, world.alert).resolve_note == NOT_TEXT
    page = client.get(f"/alerts/{world.alert}")
    assert NOT_TEXT not in page.text and "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text
    # the same through a shift's handover note and a dispute reason
    client.post("/shift/start", data={"csrf_token": csrf(client), "site": world.site})
    client.post("/shift/end", data={"csrf_token": csrf(client), "handover_note": NOT_TEXT})
    r = client.post(f"/stays/{world.closed_stay}/disputes", data={"csrf_token": csrf(client), "reason": NOT_TEXT})
    assert r.status_code == 303
    for path in ("/shift", r.headers["Location"]):
        html = client.get(path).text
        assert "<script>alert" not in html and "&lt;script&gt;" in html


# --- the workflows --------------------------------------------------------------------------------

def test_dashboard_shows_lanes_alerts_occupancy_and_feed(as_role, world):
    html = as_role("attendant").get("/dashboard").text
    for text in ("Open alerts", "Exit without an entry", "ZZ999", "Occupancy", "Live events", world.entry,
                 "Times in Europe/Berlin", "live.js"):
        assert text in html, text
    assert f"/evidence/{world.photo}" in html
    assert 'class="plate-box"' in html  # the plate box drawn over the photo


def test_live_endpoint_reports_only_changes(as_role, world, db):
    client = as_role("attendant")
    first = client.get("/live.json").get_json()
    assert first["changed"] and first["open_alerts"] == 1 and world.alert in first["alert_ids"]
    again = client.get(f"/live.json?token={first['token']}").get_json()
    assert again == {"token": first["token"], "changed": False}
    with db.sessions() as s:
        from parkinglot.records import alerts

        new = alerts.raise_alert(s, site_id=site_id(db, world.site), kind="locked_vehicle", plate="LK1",
                                 message="Locked vehicle LK1 tried to leave")
        s.commit()
        new_id = new.id
    update = client.get(f"/live.json?token={first['token']}").get_json()
    assert update["changed"] and new_id in update["alert_ids"] and update["open_alerts"] == 2
    assert "Locked vehicle LK1" in update["panels"]["alerts"]
    assert set(update["panels"]) == {"alerts", "lanes", "feed", "occupancy", "banner"}


def test_stay_search_exact_prefix_fuzzy_time_and_lane(as_role, world):
    client = as_role("attendant")
    assert f"/stays/{world.open_stay}" in client.get("/stays?q=ab-123").text
    assert f"/stays/{world.open_stay}" in client.get("/stays?q=AB&mode=prefix").text
    fuzzy = client.get("/stays?q=A8I23&mode=fuzzy").text  # 8/B and I/1 look-alikes
    assert f"/stays/{world.open_stay}" in fuzzy and "distance" in fuzzy
    empty = client.get("/stays?q=A8I23").text
    assert "No stays for A8I23" in empty and "Look-alike (fuzzy)" in empty
    assert f"/stays/{world.closed_stay}" in client.get(f"/stays?lane={world.exit}").text
    assert f"/stays/{world.open_stay}" not in client.get(f"/stays?lane={world.exit}").text
    assert f"/stays/{world.open_stay}" in client.get("/stays?status=open").text
    assert client.get("/stays?start=2000-01-01T00:00&end=2000-01-02T00:00").text.count("/stays/") == 0


def test_stay_page_shows_photos_reads_fee_payments_and_history(as_role, world):
    html = as_role("attendant").get(f"/stays/{world.closed_stay}").text
    for text in ("Entry photo and read", "Exit photo and read", "Raw read", "Alternatives", "A8123",
                 "Tariff <strong>Standard</strong>", "std version 1", "Payments and refunds", "pay-1",
                 "Audit history", "Stay opened: entered", "Stay closed (exit): left", "Payment of ", "by card",
                 "EUR", "CET"):
        assert text in html, text
    assert html.count('class="plate-box"') == 2
    # the history is sentences in local time, naming lanes; never digests or dict reprs
    assert "at Exit (HQ-OUT)" in html and "hmac:" not in html and "{&#39;" not in html and "_minor" not in html


def test_confirm_fuzzy_match_closes_opens_and_names_the_user(as_role, world, db):
    client = as_role("attendant")
    r = client.post(f"/stays/{world.open_stay}/confirm",
                    data={"csrf_token": csrf(client), "lane": world.exit, "reason": "checked by eye: 8 read as B"})
    assert r.status_code == 303
    with db.sessions() as s:
        stay = s.get(ParkingSession, world.open_stay)
        assert stay.status == "closed" and stay.closed_reason == "attendant_confirmed"
        user = s.scalar(select(User).where(User.username == "attendant"))
        events = audit.history(s, "stay", stay.id)
        confirmed = [e for e in events if e.action == "stay.match_confirmed"]
        assert confirmed and confirmed[0].actor_id == str(user.id) and '"user":"attendant"' in confirmed[0].data
        assert s.scalar(select(Decision).where(Decision.session_id == stay.id, Decision.actor == "user")).user_id == user.id
    assert "Match confirmed at Exit (HQ-OUT): “checked by eye: 8 read as B”" in client.get(f"/stays/{world.open_stay}").text


def test_manual_open_needs_a_reason_and_is_tied_to_the_shift(as_role, world, db):
    client = as_role("attendant")
    r = client.post(f"/lanes/{world.entry}/open", data={"csrf_token": csrf(client), f"{world.entry}-reason": " "})
    assert r.status_code == 422 and "A reason is required" in r.text
    assert count(db, Decision, Decision.actor == "user") == 0
    r = client.post("/shift/start", data={"csrf_token": csrf(client), "site": world.site, "note": "morning"})
    assert r.status_code == 303
    r = client.post(f"/lanes/{world.entry}/open",
                    data={"csrf_token": csrf(client), f"{world.entry}-reason": "ticket machine jammed",
                          f"{world.entry}-no_vehicle": "y"})
    assert r.status_code == 303
    with db.sessions() as s:
        d = s.scalar(select(Decision).where(Decision.actor == "user"))
        shift = s.scalar(select(Shift))
        assert d.message == "ticket machine jammed" and d.shift_id == shift.id and d.reason == "manual_open"
    lanes_page = client.get(f"/lanes?site={world.site}").text
    assert "ticket machine jammed" in lanes_page and f"#{shift.id}" in lanes_page


def test_emergency_mode_has_a_confirmation_step_and_a_banner(as_role, world, db):
    att = as_role("attendant")
    assert att.post(f"/sites/{world.site}/emergency", data={"csrf_token": csrf(att), "active": "on",
                                                             "reason": "fire drill"}).status_code == 403
    sup = as_role("supervisor")
    data = {"csrf_token": csrf(sup), "active": "on", "reason": "fire alarm level 2"}
    r = sup.post(f"/sites/{world.site}/emergency", data=data)
    assert r.status_code == 200 and "Yes, switch it ON" in r.text and "fire alarm level 2" in r.text
    with db.sessions() as s:
        assert not s.scalar(select(Site).where(Site.code == world.site)).emergency_mode
    r = sup.post(f"/sites/{world.site}/emergency", data={**data, "confirmed": "yes"})
    assert r.status_code == 303
    with db.sessions() as s:
        assert s.scalar(select(Site).where(Site.code == world.site)).emergency_mode
        assert any(e.action == "site.emergency_on" for e in audit.history(s, "site", world.site))
    for client in (att, sup):
        assert "EMERGENCY MODE" in client.get("/stays").text
    live = att.get("/live.json").get_json()
    assert "EMERGENCY MODE" in live["panels"]["banner"]
    r = sup.post(f"/sites/{world.site}/emergency", data={"csrf_token": csrf(sup), "active": "off",
                                                          "reason": "all clear", "confirmed": "yes"})
    assert r.status_code == 303 and "EMERGENCY MODE" not in sup.get("/stays").text


def test_alert_acknowledge_then_resolve_records_note_and_user(as_role, world, db):
    client = as_role("attendant")
    r = client.post(f"/alerts/{world.alert}/acknowledge", data={"csrf_token": csrf(client), "note": "on my way",
                                                                "back": "/dashboard"})
    assert r.status_code == 303 and r.headers["Location"] == "/dashboard"
    r = client.post(f"/alerts/{world.alert}/resolve", data={"csrf_token": csrf(client), "note": ""})
    assert r.status_code == 422 and "Write a note" in r.text
    r = client.post(f"/alerts/{world.alert}/resolve", data={"csrf_token": csrf(client), "note": "driver had no ticket"})
    assert r.status_code == 303
    with db.sessions() as s:
        a = s.get(Alert, world.alert)
        uid = s.scalar(select(User.id).where(User.username == "attendant"))
        assert (a.status, a.acknowledged_by, a.acknowledge_note, a.resolved_by, a.resolve_note) == \
            ("resolved", uid, "on my way", uid, "driver had no ticket")
    r = client.post(f"/alerts/{world.alert}/acknowledge", data={"csrf_token": csrf(client), "back": "//evil.example"})
    assert r.headers["Location"] == f"/alerts/{world.alert}"  # conflict flashed; no open redirect
    assert "is resolved, not open" in client.get(r.headers["Location"]).text


def test_hotlist_add_and_remove(as_role, world, db):
    att = as_role("attendant")
    assert att.get("/hotlist").status_code == 200
    assert att.post(f"/hotlist?site={world.site}", data={"csrf_token": csrf(att), "plate": "HOT1",
                                                          "reason": "stolen"}).status_code == 403
    sup = as_role("supervisor")
    r = sup.post(f"/hotlist?site={world.site}", data={"csrf_token": csrf(sup), "plate": "hot-1", "reason": "stolen"})
    assert r.status_code == 303
    r = sup.post(f"/hotlist?site={world.site}", data={"csrf_token": csrf(sup), "plate": "HOT2", "reason": "x",
                                                      "all_sites": "y"})
    assert r.status_code == 403  # only admins add every-site entries
    with db.sessions() as s:
        entry = s.scalar(select(HotlistEntry).where(HotlistEntry.plate == "HOT1"))
    assert "HOT1" in sup.get("/hotlist").text
    r = sup.post(f"/hotlist/{entry.id}/remove?site={world.site}", data={"csrf_token": csrf(sup), "note": "found"})
    assert r.status_code == 303
    with db.sessions() as s:
        assert s.get(HotlistEntry, entry.id).removed_at is not None


def test_permit_create_edit_suspend_renew_and_lock(as_role, world, db):
    sup = as_role("supervisor")
    r = sup.post(f"/permits/new?site={world.site}", data={
        "csrf_token": csrf(sup), "number": "P-100", "holder": "Acme Ltd", "vehicles": "AB12\nCD34",
        "valid_from": "2026-01-01", "valid_to": "2026-12-31", "hours": "mon-fri 07:00-19:00", "rate": "permit"})
    assert r.status_code == 303, r.text[:3000]
    base = f"/permits/{world.site}/P-100"
    form = sup.get(base + "/edit").text
    assert "AB12" in form and "mon-fri 07:00-19:00" in form and 'value="2026-12-31"' in form
    r = sup.post(base + "/edit", data={"csrf_token": csrf(sup), "holder": "Acme GmbH", "vehicles": "AB12, EF56",
                                       "valid_from": "2026-01-01", "valid_to": "2026-12-31", "hours": "", "rate": ""})
    assert r.status_code == 303
    assert sup.post(base + "/status", data={"csrf_token": csrf(sup), "status": "suspended"}).status_code == 303
    assert sup.post(base + "/renew", data={"csrf_token": csrf(sup), "valid_to": "2027-12-31"}).status_code == 303
    with db.sessions() as s:
        versions = s.scalars(select(Permit).where(Permit.number == "P-100").order_by(Permit.version)).all()
        assert [v.version for v in versions] == [1, 2, 3, 4]
        current = versions[-1]
        assert current.holder == "Acme GmbH" and current.status == "suspended" and current.hours is None
        assert sorted(v.plate for v in current.vehicles) == ["AB12", "EF56"]
        assert current.valid_to.isoformat() == "2027-12-31T23:00:00+00:00"
        assert sum(v.superseded_at is None for v in versions) == 1
    page = sup.get(base).text
    assert "Versions" in page and "Acme Ltd" in page and "suspended" in page
    # the owner's lock, from the permit page; attendants may set and release it
    att = as_role("attendant")
    r = att.post(f"/locks?site={world.site}", data={"csrf_token": csrf(att), "plate": "AB12", "note": "owner on holiday",
                                                    "permit": "P-100"})
    assert r.status_code == 303 and r.headers["Location"].endswith(base)
    assert count(db, VehicleLock, VehicleLock.released_at.is_(None)) == 1
    r = att.post(f"/locks/release?site={world.site}", data={"csrf_token": csrf(att), "plate": "AB12", "note": "back"})
    assert r.status_code == 303 and count(db, VehicleLock, VehicleLock.released_at.is_(None)) == 0
    # attendants may not manage permits
    assert att.post(base + "/status", data={"csrf_token": csrf(att), "status": "active"}).status_code == 403


def test_visitor_passes_listed_revoked_and_visibly_expired(as_role, world, db):
    att = as_role("attendant")
    now = utcnow()
    with db.sessions() as s:
        from parkinglot.records import permits

        site = s.scalar(select(Site).where(Site.code == world.site))
        permits.create_visitor_pass(s, site, plate="OLD1", valid_from=now - timedelta(days=2),
                                    valid_to=now - timedelta(days=1))
        s.commit()
    r = att.post(f"/passes?site={world.site}", data={"csrf_token": csrf(att), "plate": "vis-42",
                                                     "valid_from": "2026-03-02T09:00", "valid_to": "2099-03-02T18:00",
                                                     "note": "plumber"})
    assert r.status_code == 303
    current = att.get("/passes").text
    assert "VIS42" in current and "OLD1" not in current
    expired = att.get("/passes?show=expired").text
    assert "OLD1" in expired and "status-expired" in expired and "ago" in expired
    with db.sessions() as s:
        vp = s.scalar(select(VisitorPass).where(VisitorPass.plate == "VIS42"))
        assert vp.valid_from.isoformat() == "2026-03-02T08:00:00+00:00"  # 09:00 Berlin
    r = att.post(f"/passes/{vp.id}/revoke", data={"csrf_token": csrf(att)})
    assert r.status_code == 303 and "Say why the pass is revoked" in att.get(r.headers["Location"]).text
    assert "VIS42" not in att.get("/passes?show=revoked").text
    r = att.post(f"/passes/{vp.id}/revoke", data={"csrf_token": csrf(att), "reason": "visit cancelled"})
    assert r.status_code == 303
    revoked = att.get("/passes?show=revoked").text
    assert "VIS42" in revoked and "Revoked: visit cancelled" in revoked


def test_dispute_opened_by_attendant_resolved_by_supervisor(as_role, world, db):
    att = as_role("attendant")
    r = att.post(f"/stays/{world.closed_stay}/disputes", data={"csrf_token": csrf(att), "reason": "I left earlier"})
    assert r.status_code == 303
    dispute_url = r.headers["Location"]
    page = att.get(dispute_url).text
    assert "Evidence attached" in page and "CD456" in page and "A supervisor resolves this dispute" in page
    with db.sessions() as s:
        d = s.scalar(select(Dispute))
        assert d.evidence["entry"]["plate"] == "CD456" and d.evidence["fee"]["quote"]["lines"]
        paid = -s.scalar(select(func.sum(Payment.amount_minor)).where(Payment.session_id == world.closed_stay))
    assert att.post(f"{dispute_url}/resolve", data={"csrf_token": csrf(att), "outcome": "uphold",
                                                    "note": "no"}).status_code == 403
    sup = as_role("supervisor")
    r = sup.post(f"{dispute_url}/resolve", data={"csrf_token": csrf(sup), "outcome": "refund", "note": "goodwill",
                                                 "refund": "1.005"})
    assert r.status_code == 422 and "at most 2 decimals" in r.text
    r = sup.post(f"{dispute_url}/resolve", data={"csrf_token": csrf(sup), "outcome": "adjust", "note": "x"})
    assert r.status_code == 422 and "corrected entry or exit time" in r.text
    r = sup.post(f"{dispute_url}/resolve", data={"csrf_token": csrf(sup), "outcome": "refund", "note": "goodwill",
                                                 "refund": "1.00"})
    assert r.status_code == 303, r.text[:3000]
    with db.sessions() as s:
        d = s.scalar(select(Dispute))
        assert d.status == "resolved" and d.outcome == "refund"
        assert s.scalar(select(Payment).where(Payment.dispute_id == d.id, Payment.kind == "refund")).amount_minor == -100
    html = sup.get(dispute_url).text
    assert "Dispute resolved: refund" in html and "“goodwill”" in html and paid < 0


def test_overdue_dispute_is_flagged(as_role, world, db):
    from parkinglot.billing import disputes

    with db.sessions() as s:
        stay = s.get(ParkingSession, world.closed_stay)
        disputes.open_dispute(s, stay, user_id=None, reason="late", now=utcnow() - timedelta(days=30))
        s.commit()
    html = as_role("supervisor").get("/disputes").text
    assert "1 overdue" in html and "row-overdue" in html


def test_shift_log_and_kpis(as_role, world, db):
    att = as_role("attendant")
    att.post("/shift/start", data={"csrf_token": csrf(att), "site": world.site})
    att.post(f"/lanes/{world.entry}/open", data={"csrf_token": csrf(att), f"{world.entry}-reason": "barrier stuck",
                                                   f"{world.entry}-no_vehicle": "y"})
    r = att.post("/shift/end", data={"csrf_token": csrf(att), "handover_note": ""})
    assert r.status_code == 422
    att.post("/shift/end", data={"csrf_token": csrf(att), "handover_note": "exit 2 camera dirty"})
    with db.sessions() as s:
        assert shifts.open_shift(s, s.scalar(select(User.id).where(User.username == "attendant"))) is None
    assert "exit 2 camera dirty" in att.get("/shift").text
    sup = as_role("supervisor")
    log = sup.get("/shifts").text
    assert "Attendant Person" in log and "exit 2 camera dirty" in log
    assert re.search(r'<td class="num">1</td>', log)  # one manual open in that shift
    kpi = sup.get("/kpis").text
    for text in ("Read rate", "Attendant decisions", "Manual opens per shift", "Time to acknowledge",
                 "Dispute resolution", "HQ-IN", "missed"):
        assert text in kpi, text


def test_revenue_page_chart_and_csv_for_finance(as_role, world):
    fin = as_role("finance")
    html = fin.get("/revenue?group_by=week").text
    assert "<svg class=\"chart\"" in html and "bar-pos" in html and "/revenue/reconciliation" in html
    assert "By payment method" in html and "By lane" in html and "EUR" in html
    csv_url = re.search(r'href="(/api/v1/reports/revenue\?[^"]+)"', html).group(1).replace("&amp;", "&")
    r = fin.get(csv_url)
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.text.splitlines()[0].startswith("site,currency,section")
    assert "attachment" in r.headers["Content-Disposition"]
    today = utcnow().date()
    recon = fin.get(f"/revenue/reconciliation?start={(today - timedelta(days=2)).isoformat()}&end={today.isoformat()}")
    assert recon.status_code == 200 and "Billed against paid" in recon.text and "Open balances" in recon.text
    assert fin.get("/revenue/reconciliation?start=2026-02-30").status_code == 422


def test_users_admin_scopes_people_to_sites(as_role, world, db):
    admin = as_role("admin")
    with db.sessions() as s:
        hq = s.scalar(select(Site.id).where(Site.code == world.site))
    r = admin.post("/users/new", data={"csrf_token": csrf(admin), "username": "newbie", "display_name": "New Bie",
                                       "role": "attendant", "password": "long-enough-1"})
    assert r.status_code == 422 and "need at least one site" in r.text
    r = admin.post("/users/new", data={"csrf_token": csrf(admin), "username": "newbie", "display_name": "New Bie",
                                       "role": "attendant", "password": "long-enough-1", "sites": str(hq)})
    assert r.status_code == 303
    with db.sessions() as s:
        uid = s.scalar(select(User.id).where(User.username == "newbie"))
    client = admin.application.test_client()
    assert login(client, "newbie", "long-enough-1").status_code == 302
    assert client.get(f"/stays/{world.open_stay}").status_code == 200
    assert client.get(f"/stays/{world.other_stay}").status_code == 403
    r = admin.post(f"/users/{uid}", data={"csrf_token": csrf(admin), "display_name": "New Bie", "role": "attendant",
                                          "sites": str(hq)})  # active unchecked: deactivated
    assert r.status_code == 303
    assert client.get("/dashboard").status_code == 302  # a deactivated user is logged out
    with db.sessions() as s:
        admin_id = s.scalar(select(User.id).where(User.username == "admin"))
    r = admin.post(f"/users/{admin_id}", data={"csrf_token": csrf(admin), "role": "admin"})
    assert r.status_code == 422 and "cannot deactivate your own account" in r.text


def test_evidence_is_served_only_through_the_evidence_table(as_role, world):
    client = as_role("attendant")
    r = client.get(f"/evidence/{world.photo}")
    assert r.status_code == 200 and r.mimetype == "image/jpeg" and r.data[:2] == b"\xff\xd8"
    assert "immutable" in r.headers["Cache-Control"]
    assert client.get("/evidence/not-a-digest").status_code == 404
    assert as_role("finance").get(f"/evidence/{world.photo}").status_code == 200


# --- webhook ---------------------------------------------------------------------------------------

class _Hook(BaseHTTPRequestHandler):
    """A webhook receiver that answers once ``gate`` is set (at most 10 s later), and only then
    counts the call as received: a slow receiver without sleeping."""

    received: list = []
    gate = threading.Event()

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).gate.wait(timeout=10)
        type(self).received.append((json.loads(body), self.headers.get("X-Parkinglot-Signature")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    _Hook.received = []
    _Hook.gate = threading.Event()
    _Hook.gate.set()
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, _Hook
    _Hook.gate.set()
    server.shutdown()


def test_webhook_announces_alerts_off_the_request_path(db, tmp_path, webhook):
    from parkinglot.records import sites as site_service
    from parkinglot.web import create_app

    from .conftest import FakePipeline

    server, hook = webhook
    # a slow receiver must not slow the lane down: it holds the call until the test lets it
    # answer, after the lane's reply; a lane that waited for it would only get its reply once
    # the receiver gave up holding (10 s) and had the call counted as received
    hook.gate.clear()
    app = create_app({"INSTANCE_PATH": str(tmp_path / "hook"), "DATABASE_URL": db.url, "SECRET_KEY": "k",
                      "EVIDENCE_DIR": str(tmp_path / "ev"), "LPR_PIPELINE": FakePipeline(),
                      "WEBHOOK_URL": f"http://127.0.0.1:{server.server_port}/hook", "WEBHOOK_SECRET": "s3cret",
                      "WEBHOOK_TIMEOUT_S": 30.0})
    try:
        from .factories import make_site

        with db.sessions() as s:
            site, _, exit_ = make_site(s, code="WH")
            key = site_service.create_device(s, site, "c1").key
            s.commit()
        client = app.test_client()
        r = client.post(f"/api/v1/lanes/{exit_.code}/events", json={"plate": "NOENTRY1", "confidence": 0.97},
                        headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.get_json()["decision"] == "deny"
        assert hook.received == [], "the lane waited for the webhook"
        with db.sessions() as s:
            assert s.scalar(select(Alert).where(Alert.plate == "NOENTRY1")).notified_at is None
        hook.gate.set()
        app.extensions["parkinglot_notifier"].drain(10)
        assert len(hook.received) == 1
        body, signature = hook.received[0]
        assert body["alert"]["kind"] == "no_entry" and body["alert"]["plate"] == "NOENTRY1" and body["alert"]["site"] == "WH"
        assert signature and signature.startswith("sha256=")
        with db.sessions() as s:
            assert s.scalar(select(Alert).where(Alert.plate == "NOENTRY1")).notified_at is not None
    finally:
        app.extensions["parkinglot_dispatcher"].drain()
        app.extensions["parkinglot"].close()


def test_webhook_never_announces_a_rolled_back_alert(db, tmp_path, webhook):
    from parkinglot.records import alerts
    from parkinglot.records.notify import WebhookNotifier, watch_alerts

    from .factories import make_site

    server, hook = webhook
    factory = db.sessions
    notifier = WebhookNotifier(factory, f"http://127.0.0.1:{server.server_port}/", timeout_s=2, retry_delays_s=())
    watch_alerts(factory, notifier)
    with factory() as s:
        site, _, _ = make_site(s, code="RB")
        s.commit()
        alerts.raise_alert(s, site_id=site.id, kind="hotlist", message="never committed")
        s.rollback()
        alerts.raise_alert(s, site_id=site.id, kind="hotlist", message="committed")
        s.commit()
    notifier.drain(5)
    assert [b["alert"]["message"] for b, _ in hook.received] == ["committed"]


def test_webhook_sweep_announces_alerts_a_dead_process_never_sent(db, webhook):
    """An alert committed just before the process died is found by the sweep and announced."""
    from datetime import timedelta

    from parkinglot.records import alerts
    from parkinglot.records.notify import WebhookNotifier
    from parkinglot.records.types import utcnow

    from .factories import make_site

    server, hook = webhook
    factory = db.sessions
    with factory() as s:
        site, _, _ = make_site(s, code="SW")
        lost = alerts.raise_alert(s, site_id=site.id, kind="hotlist", message="lost in a crash")
        s.commit()
        lost.created_at = utcnow() - timedelta(minutes=5)
        s.commit()
    notifier = WebhookNotifier(factory, f"http://127.0.0.1:{server.server_port}/", timeout_s=2, retry_delays_s=())
    assert notifier.sweep() == 1
    notifier.drain(5)
    assert [b["alert"]["message"] for b, _ in hook.received] == ["lost in a crash"]
    assert notifier.sweep() == 0  # stamped: not sent twice


def test_database_outage_gives_a_console_503_page(as_role, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from parkinglot.records import activity

    client = as_role("attendant")

    def down(*_a, **_k):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(activity, "lane_snapshots", down)
    r = client.get("/dashboard")
    assert r.status_code == 503
    assert "The database is unavailable" in r.text and "Parkinglot console" in r.text
    assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")

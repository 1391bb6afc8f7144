"""The console in a real browser: Debian's headless chromium driven by Playwright against a live server.

The app runs on 127.0.0.1 (werkzeug in a thread) over a temporary SQLite instance
loaded with the demo site (``load_demo(history=60)``). Screenshots of the main pages
at 1366x768 go to ``test-output/screenshots/``.

Chromium comes from Debian (``apt-get install chromium``; ``python3 dev.py test``
installs it when it can). Without it these tests are skipped with the reason, except
when CI=true, where they fail.
"""
from __future__ import annotations

import json
import os
import re
import threading
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select

from parkinglot.demo import demo_password

from ..conftest import missing_prerequisite

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = os.environ.get("PARKINGLOT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
VIEWPORT = {"width": 1366, "height": 768}


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        reason = f"chromium not found at {CHROMIUM}: install it with `apt-get install chromium` (or run python3 dev.py test)"
        missing_prerequisite(reason, needed_for="the browser tests")


def _plate_box(jpeg: bytes) -> list[list[float]]:
    """Where the demo renderer put the plate: the only near-white rectangle in the frame."""
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    ys, xs = np.nonzero(img > 215)
    x0, x1, y0, y1 = float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max())
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def _event_with_box(ctx, lane_code: str, plate: str, at, event_id: str):
    """A lane event whose photo carries the true plate box (the demo's own reads have none)."""
    import random

    from parkinglot.barrier import events
    from parkinglot.db import transaction
    from parkinglot.demo import render_frame
    from parkinglot.records import sites

    frame = render_frame(plate, random.Random(event_id))
    with transaction(ctx.sessions) as s:
        lane = sites.get_lane(s, lane_code)
        reading = events.Reading(plate=plate, raw_text=plate, confidence=0.94, alternatives=((plate[:-1] + "8", 0.04),),
                                 box=_plate_box(frame), source="pipeline")
        ev = events.LaneEvent(lane_id=lane.id, captured_at=at, received_at=at, reading=reading, event_id=event_id,
                              frames=(events.Frame(frame, "image/jpeg", 1280, 720),))
        return events.process(s, ctx.evidence, ev).reply


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The demo site served on 127.0.0.1 by a real HTTP server in a background thread."""
    _require_chromium()
    from datetime import timedelta

    from werkzeug.serving import make_server

    from parkinglot.billing import fees, payments
    from parkinglot.context import build_context
    from parkinglot.db import transaction
    from parkinglot.demo import load_demo
    from parkinglot.records import migrate, sites
    from parkinglot.records.models import ParkingSession
    from parkinglot.records.types import utcnow
    from parkinglot.web import create_app

    instance = tmp_path_factory.mktemp("browser-instance")
    settings = {"SECRET_KEY": "browser-test-secret", "WARM_RECOGNIZER": False}
    ctx = build_context(settings, instance)
    migrate.upgrade(ctx.engine)
    load_demo(ctx, history=60)
    now = utcnow().replace(microsecond=0)
    boxed = _event_with_box(ctx, "DT-IN-1", "BOX4242", now - timedelta(hours=3), "browser-box-in")
    with transaction(ctx.sessions) as s:  # pays at the pay station, then leaves
        site, stay = sites.get_site(s, "DT"), s.get(ParkingSession, boxed.session_id)
        due = fees.fee_status(s, site, stay, now - timedelta(hours=1, minutes=5))
        payments.record_payment(s, site, amount_minor=due.due_minor, method="card", reference="browser-box-pay",
                                stay=stay, paid_until=due.paid_until)
    assert _event_with_box(ctx, "DT-OUT-2", "BOX4242", now - timedelta(hours=1), "browser-box-out").decision == "open"
    with transaction(ctx.sessions) as s:
        device_key = sites.create_device(s, sites.get_site(s, "DT"), "browser-test controller").key
    app = create_app({**settings, "INSTANCE_PATH": str(instance)})
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, name="console-test-server", daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{http.server_port}", "ctx": ctx, "app": app, "key": device_key,
               "boxed_stay": boxed.session_id}
    finally:
        http.shutdown()
        app.extensions["parkinglot_dispatcher"].drain()
        app.extensions["parkinglot"].close()
        ctx.close()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Console:
    """One person's browser tab, with the problems the page reported (CSP violations, script errors)."""

    def __init__(self, browser, server) -> None:
        self.base = server["url"]
        self.context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(m.text))
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))

    def go(self, path: str):
        return self.page.goto(self.base + path)

    def login(self, username: str) -> None:
        self.go("/login")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(demo_password(username))
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_load_state()

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"))
        width = self.page.evaluate("document.documentElement.scrollWidth")
        assert width <= VIEWPORT["width"], f"{name}: the page overflows sideways ({width} px)"

    def close(self) -> None:
        assert not self.problems, f"the browser reported: {self.problems}"
        self.context.close()


@pytest.fixture
def tab(browser, server):
    tabs: list[Console] = []

    def open_tab(username: str | None = None) -> Console:
        t = Console(browser, server)
        if username:
            t.login(username)
        tabs.append(t)
        return t

    yield open_tab
    for t in tabs:
        t.close()


def _db(server):
    return server["ctx"].sessions()


# --- the tests --------------------------------------------------------------------------------

ROLE_PAGES = {
    "attendant": ("Dashboard", ["/dashboard", "/stays", "/lanes", "/alerts", "/permits", "/passes", "/disputes",
                                "/hotlist", "/shift"]),
    "supervisor": ("Dashboard", ["/kpis", "/shifts"]),
    "finance": ("Revenue: Downtown Garage", ["/revenue", "/revenue/reconciliation"]),
    "admin": ("Dashboard", ["/users"]),
}


@pytest.mark.parametrize("role", list(ROLE_PAGES))
def test_each_role_logs_in_and_sees_its_pages(tab, role):
    heading, pages = ROLE_PAGES[role]
    t = tab()
    t.go("/login")
    if role == "attendant":
        t.shot("login")
    t.login(role)
    assert t.page.get_by_role("heading", level=1).inner_text().startswith(heading)
    for path in pages:
        response = t.go(path)
        assert response.status == 200, path
        t.page.wait_for_load_state("networkidle")
        t.shot(f"{role}-{path.strip('/').replace('/', '-')}")


def test_a_role_is_refused_another_roles_page(tab):
    t = tab("attendant")
    response = t.go("/revenue")
    assert response.status == 403
    assert t.page.get_by_role("heading", level=1).inner_text() == "Not allowed"
    assert "/revenue" in t.page.url  # a refusal page, not a redirect to the login
    t.shot("error-403")
    t.problems.clear()  # chromium logs the 403 itself as a console error


def test_search_a_plate_and_open_the_stay(tab, server):
    t = tab("attendant")
    t.go("/stays")
    t.page.get_by_label("Plate").fill("B0X4Z4Z")  # look-alikes of BOX4242 (0/O, Z/2)
    t.page.get_by_label("Match").select_option("fuzzy")
    t.page.get_by_role("button", name="Search").click()
    t.page.wait_for_load_state()
    link = t.page.get_by_role("link", name=f"Open stay #{server['boxed_stay']}")
    assert link.is_visible()
    t.shot("stays-fuzzy-search")
    link.click()
    t.page.wait_for_load_state("networkidle")
    assert "BOX4242" in t.page.get_by_role("heading", level=1).inner_text()
    assert t.page.locator("svg.photo image").count() == 2
    assert t.page.locator("svg.photo polygon.plate-box").count() == 2  # the plate box drawn on both photos
    loaded = t.page.evaluate("""Promise.all([...document.querySelectorAll('svg.photo image')].map(i =>
        fetch(i.getAttribute('href')).then(r => r.status + ' ' + r.headers.get('content-type'))))""")
    assert loaded == ["200 image/jpeg", "200 image/jpeg"]
    assert t.page.get_by_role("heading", name="Audit history").is_visible()
    t.shot("stay")


def test_manual_open_with_a_reason(tab, server):
    from parkinglot.records.models import Decision, ParkingSession

    t = tab("attendant")
    t.go("/lanes")
    reason = t.page.get_by_label("Reason for opening DT-IN-1")
    t.page.get_by_role("button", name="Open DT-IN-1").click()  # empty reason: the browser refuses to send it
    assert "/lanes" in t.page.url and t.page.evaluate("document.activeElement.id") == reason.get_attribute("id")
    reason.fill("ticket machine jammed, driver waiting")
    reason.press("Enter")  # keyboard only; without the car's plate the entry is not opened
    t.page.wait_for_load_state()
    card = t.page.locator("#lane-DT-IN-1")
    assert card.get_by_text("the plate of the car is required").is_visible()
    assert card.get_by_label("Reason for opening DT-IN-1").input_value() == "ticket machine jammed, driver waiting"
    t.problems.clear()  # chromium logs the 422 itself as a console error
    plate = card.get_by_label("Plate of the car")
    plate.fill("man 4711")
    plate.press("Enter")
    t.page.wait_for_load_state()
    assert t.page.get_by_text("barrier opened").is_visible() and t.page.get_by_text("MAN4711 admitted").is_visible()
    assert t.page.get_by_role("cell", name=re.compile("ticket machine jammed, driver waiting")).is_visible()
    t.shot("lanes-after-manual-open")
    with _db(server) as s:
        d = s.scalar(select(Decision).where(Decision.reason == "manual_open").order_by(Decision.id.desc()).limit(1))
        assert d.message.endswith("ticket machine jammed, driver waiting") and d.user_id is not None
        assert s.get(ParkingSession, d.session_id).plate == "MAN4711"  # the car has a stay


def test_new_alert_appears_live_and_is_acknowledged(tab, server):
    from parkinglot.records.models import Alert

    t = tab("attendant")
    t.go("/dashboard")
    t.page.wait_for_load_state("networkidle")
    before = t.page.locator(".alert-card").count()
    body = json.dumps({"plate": "GHOST99", "confidence": 0.97, "event_id": "browser-ghost"}).encode()
    req = urllib.request.Request(f"{server['url']}/api/v1/lanes/DT-OUT-1/events", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {server['key']}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert json.loads(resp.read())["decision"] == "deny"
    card = t.page.locator(".alert-card", has_text="GHOST99")
    card.wait_for(timeout=2000)  # new alerts appear within 2 s, without reloading
    assert t.page.locator(".alert-card").count() == before + 1
    assert "is-new" in card.get_attribute("class")
    assert t.page.title().startswith("(")
    t.shot("dashboard-new-alert")
    card.get_by_role("button", name="Acknowledge").click()
    t.page.wait_for_load_state()
    assert t.page.get_by_text("acknowledged by you").is_visible()
    with _db(server) as s:
        alert = s.scalar(select(Alert).where(Alert.plate == "GHOST99"))
        assert alert.status == "acknowledged" and alert.acknowledged_by is not None


def test_open_and_resolve_a_dispute(tab, server):
    from parkinglot.records.models import Dispute, ParkingSession, Payment

    with _db(server) as s:
        stay_id = s.scalar(select(ParkingSession.id).join(Payment, Payment.session_id == ParkingSession.id)
                           .where(ParkingSession.status == "closed", Payment.kind == "payment",
                                  Payment.amount_minor >= 200)
                           .order_by(ParkingSession.id.desc()).limit(1))
    att = tab("attendant")
    att.go(f"/stays/{stay_id}")
    att.page.get_by_label("What the driver disputes").fill("The barrier was stuck for 20 minutes at the exit")
    att.page.get_by_role("button", name="Open a dispute").click()
    att.page.wait_for_load_state()
    assert att.page.get_by_text("photos, reads and fee breakdown are attached").is_visible()
    dispute_url = att.page.url
    sup = tab("supervisor")
    sup.go(dispute_url.replace(server["url"], ""))
    sup.page.get_by_label("Outcome").select_option("refund")
    sup.page.get_by_label("Reason for the decision").fill("Barrier fault confirmed in the lane log")
    sup.page.get_by_label("Refund amount").fill("1.00")
    sup.shot("dispute-resolve")
    sup.page.get_by_role("button", name="Resolve dispute").click()
    sup.page.wait_for_load_state()
    assert sup.page.locator(".flash", has_text="resolved: refund").is_visible()
    assert sup.page.get_by_role("cell", name=re.compile(r"^Dispute resolved: refund, fee")).is_visible()  # history
    sup.shot("dispute-resolved")
    with _db(server) as s:
        d = s.scalar(select(Dispute).where(Dispute.session_id == stay_id))
        assert d.outcome == "refund"
        assert s.scalar(select(func.sum(Payment.amount_minor)).where(Payment.dispute_id == d.id,
                                                                     Payment.kind == "refund")) == -100


def test_download_the_revenue_csv(tab):
    t = tab("finance")
    t.go("/revenue?group_by=day")
    assert t.page.locator("svg.chart rect.bar-pos").count() > 0
    with t.page.expect_download() as info:
        t.page.get_by_role("link", name="Download CSV").click()
    download = info.value
    assert download.suggested_filename.startswith("revenue-DT-") and download.suggested_filename.endswith(".csv")
    text = Path(download.path()).read_text()
    assert text.splitlines()[0].startswith("site,currency,section")
    assert any(",total," in line for line in text.splitlines())


def test_emergency_banner_after_confirmation(tab):
    t = tab("supervisor")
    t.go("/lanes")
    t.page.get_by_label("Reason (recorded in the audit trail)").fill("fire alarm test, level 2")
    t.page.get_by_role("button", name="Switch emergency mode ON…").click()
    t.page.wait_for_load_state()
    t.shot("emergency-confirm")
    t.page.get_by_role("button", name="Yes, switch it ON").click()
    t.page.wait_for_load_state()
    assert t.page.locator(".emergency-banner").first.is_visible()
    t.shot("emergency-on")
    t.page.get_by_label("Reason (recorded in the audit trail)").fill("all clear")
    t.page.get_by_role("button", name="Switch emergency mode OFF…").click()
    t.page.get_by_role("button", name="Yes, switch it OFF").click()
    t.page.wait_for_load_state()
    assert t.page.locator(".emergency-banner").count() == 0

"""Issue 19, done when: the whole operating cycle on a site created from a site file, in a real browser.

``parkinglot site apply`` creates the site (lanes, controller keys, a pay station, the tariff)
and ``parkinglot users add`` its people, as an operator would. Then, against a live server:

1. a car enters through the lane API with a photo (a real one from ``../shared/data`` when it
   is there, read by the real recogniser; otherwise a rendered one), pays at the pay station
   through the API, and leaves within the exit grace;
2. a second car pays cash at the attendant's desk on its stay page, and leaves;
3. a third car's exit read is a look-alike; the attendant confirms the match, unpaid.

Finance then sees two payments in the revenue report and, in reconciliation, the open
balance of the third car with the attendant's name; ``parkinglot audit verify`` and
``parkinglot reports verify-rollup`` pass. Pages are checked at 1366x768 for sideways overflow.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from .test_console_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS, VIEWPORT, _require_chromium

pytestmark = [pytest.mark.slow, pytest.mark.browser]
ROOT = Path(__file__).resolve().parents[2]
SHARED_PHOTOS = ROOT.parent / "shared" / "data" / "plates" / "us"
PASSWORD = "cycle-test-pass-1"
TZ = "Europe/Berlin"

SITE_FILE = """\
site: {code: CY, name: Cycle Street Garage, timezone: Europe/Berlin, currency: EUR, capacity: 50,
       plate_regions: [us], visitors: open}
zones: [{code: Z1, name: Ground floor}]
lanes:
  - {code: CY-IN, name: Cycle St entry, direction: entry, zone: Z1}
  - {code: CY-OUT, name: Cycle St exit, direction: exit, zone: Z1}
devices:
  - {name: Entry camera, lane: CY-IN}
  - {name: Exit camera, lane: CY-OUT}
  - {name: Lobby pay station, kind: pay_station}
tariff:
  code: std
  name: Hourly
  rules:
    rates: {hourly: {label: Hourly, bands: [{from_min: 0, step_min: 60, price: "2.00"}]}}
    week: {mon-sun: hourly}
    exit_grace_min: 15
"""
KEY_LINE = re.compile(r"^\s+(?P<name>.+?) \(device \d+, (?P<kind>\w+), [^)]*\): (?P<key>\S+)$", re.M)


def _cli(instance: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The ``parkinglot`` command, in a process of its own, on the test's instance."""
    return subprocess.run([sys.executable, "-m", "parkinglot.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT),
                                            "PARKINGLOT_INSTANCE_PATH": str(instance), **(env or {})})


def _photos() -> list[tuple[bytes, str]]:
    """Real car photos when ../shared is there (read by path, never copied), else one rendered frame."""
    found = sorted(SHARED_PHOTOS.glob("*.jpg"))[:6] if SHARED_PHOTOS.is_dir() else []
    if found:
        return [(p.read_bytes(), f"real photo {p.name}") for p in found]
    import random

    from parkinglot.demo import render_frame

    return [(render_frame("KLM4821", random.Random(19)), "rendered photo")]


@pytest.fixture(scope="module")
def cycle(tmp_path_factory):
    """A site made with ``parkinglot site apply``, its people with ``parkinglot users add``, served live."""
    _require_chromium()
    from werkzeug.serving import make_server

    from parkinglot.web import create_app

    instance = tmp_path_factory.mktemp("cycle-instance")
    assert _cli(instance, "db", "upgrade").returncode == 0
    site_file = instance / "cycle-street.yaml"
    site_file.write_text(SITE_FILE)
    applied = _cli(instance, "site", "apply", str(site_file))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "site CY: created" in applied.stdout and "lane CY-OUT: created (exit)" in applied.stdout
    keys = {m["name"]: m["key"] for m in KEY_LINE.finditer(applied.stdout)}
    assert set(keys) == {"Entry camera", "Exit camera", "Lobby pay station"}, applied.stdout
    assert _cli(instance, "site", "apply", str(site_file)).stdout == "no changes\n"
    for username, role, name in (("alex", "attendant", "Alex Attendant"), ("fran", "finance", "Fran Finance")):
        added = _cli(instance, "users", "add", username, "--role", role, "--site", "CY", "--name", name,
                     env={"PARKINGLOT_NEW_USER_PASSWORD": PASSWORD})
        assert added.returncode == 0, added.stdout + added.stderr

    app = create_app({"INSTANCE_PATH": str(instance), "WARM_RECOGNIZER": False})
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, name="cycle-test-server", daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{http.server_port}", "keys": keys, "instance": instance}
    finally:
        http.shutdown()
        app.extensions["parkinglot_dispatcher"].drain()
        app.extensions["parkinglot"].close()


@pytest.fixture(scope="module")
def browser(cycle):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Api:
    """What the lane controllers and the pay station send."""

    def __init__(self, cycle) -> None:
        import requests

        self.http = requests.Session()
        self.base = cycle["url"] + "/api/v1"
        self.keys = cycle["keys"]

    def _auth(self, device: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[device]}"}

    def now(self) -> str:
        return datetime.now(ZoneInfo(TZ)).isoformat()

    def photo(self, lane: str, device: str, jpeg: bytes, event_id: str) -> dict:
        r = self.http.post(f"{self.base}/lanes/{lane}/events", headers=self._auth(device),
                           data={"event_id": event_id, "captured_at": self.now()},
                           files={"frame": ("frame.jpg", jpeg, "image/jpeg")}, timeout=300)
        assert r.status_code == 200, r.text
        return r.json()

    def plate(self, lane: str, device: str, plate: str, event_id: str) -> dict:
        r = self.http.post(f"{self.base}/lanes/{lane}/events", headers=self._auth(device), timeout=60,
                           json={"plate": plate, "confidence": 0.96, "event_id": event_id, "captured_at": self.now()})
        assert r.status_code == 200, r.text
        return r.json()

    def pay(self, path: str, body: dict) -> "requests.Response":  # noqa: F821
        return self.http.post(f"{self.base}/pay/{path}", headers=self._auth("Lobby pay station"), json=body,
                              timeout=60)


def _login(browser, cycle, username: str):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))
    page.goto(cycle["url"] + "/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    return context, page, problems


def _fits(page, name: str) -> None:
    """A screenshot, and nothing wider than the 1366 px window: not the page, not one table."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"cycle-{name}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"], f"{name} overflows"
    wide = page.evaluate("[...document.querySelectorAll('table')].filter(t => t.getBoundingClientRect().right > "
                         "window.innerWidth).length")
    assert wide == 0, f"{name}: {wide} table(s) wider than the window"


def test_the_whole_cycle_on_a_site_made_from_a_site_file(cycle, browser):
    api = Api(cycle)

    # 1. a car enters with a photo, pays at the pay station, leaves within the grace
    entered = None
    for i, (jpeg, what) in enumerate(_photos()):
        reply = api.photo("CY-IN", "Entry camera", jpeg, f"in-photo-{i}")
        if reply["decision"] == "open":
            entered = (reply, jpeg, what)
            break
    assert entered is not None, "no photo was read well enough to open the entry"
    first, jpeg, what = entered
    assert first["session_id"] and first["ticket"], what
    quote = api.pay("quotes", {"ticket": first["ticket"]})
    assert quote.status_code == 200, quote.text
    q = quote.json()
    assert q["stay_id"] == first["session_id"] and q["amount_due"] == "2.00" and q["exit_grace_min"] == 15
    paid = api.pay("payments", {"stay_id": q["stay_id"], "amount": q["amount_due"], "method": "card",
                                "idempotency_key": "cycle-car-1", "terminal_ref": "T-0001"})
    assert paid.status_code == 201, paid.text
    out = api.photo("CY-OUT", "Exit camera", jpeg, "out-photo-1")
    assert out["decision"] == "open" and out["session_id"] == first["session_id"], (what, out)

    # 2. a second car pays cash at the attendant's desk
    second = api.plate("CY-IN", "Entry camera", "KT7301", "in-2")
    assert second["decision"] == "open"
    refused = api.plate("CY-OUT", "Exit camera", "KT7301", "out-2")
    assert refused["decision"] == "deny" and refused["reason"] == "payment_required" and refused["fee_due"] == "2.00"
    context, page, problems = _login(browser, cycle, "alex")
    page.goto(f"{cycle['url']}/stays/{second['session_id']}")
    assert "closed" not in page.content().lower()  # an open stay's page
    desk = page.locator("#cash-desk")
    assert "2.00 EUR" in desk.inner_text()
    desk.get_by_label("Method").select_option("cash")
    desk.get_by_label("Amount received").fill("2.00")
    desk.get_by_role("button", name="Record payment and print receipt").click()
    page.wait_for_load_state()
    assert "2.00" in page.content() and "cash" in page.content().lower()  # the receipt
    retried = api.plate("CY-OUT", "Exit camera", "KT7301", "out-2")  # the controller's retry of the refused exit
    assert retried["decision"] == "open" and retried["session_id"] == second["session_id"]

    # 3. a third car leaves by "Confirm match", unpaid
    third = api.plate("CY-IN", "Entry camera", "BX5518", "in-3")
    assert third["decision"] == "open"
    held = api.plate("CY-OUT", "Exit camera", "8X5518", "out-3")  # a look-alike read: an attendant looks
    assert held["decision"] == "attendant" and "BX5518" in held["candidates"]
    page.goto(f"{cycle['url']}/stays/{third['session_id']}")
    confirm = page.locator("#confirm")
    confirm.get_by_label("Exit lane to open").select_option("CY-OUT")
    confirm.get_by_label("Why you are sure it is this vehicle").fill("8 read as B, checked the car")
    confirm.get_by_role("button", name="Confirm match and open").click()
    page.wait_for_load_state()
    assert "Match confirmed for BX5518" in page.content()
    history = page.locator("#hist-h").locator("xpath=..").inner_text()
    assert "Left owing 2.00 EUR after a confirmed match, approved by Alex Attendant" in history
    assert "hmac:" not in page.content()
    assert not problems, problems
    context.close()

    # finance: two paid, one open balance
    today = datetime.now(ZoneInfo(TZ)).date().isoformat()
    context, page, problems = _login(browser, cycle, "fran")
    page.goto(f"{cycle['url']}/revenue?site=CY&start={today}&end={today}&group_by=day")
    kpis = page.locator(".kpi-cards").inner_text()
    assert "4.00 EUR" in kpis and "2\n" in kpis.replace("Payments\n2", "2\n")  # net takings, two payments
    methods = page.get_by_role("heading", name="By payment method").locator("xpath=..").inner_text()
    assert "cash" in methods.lower() and "card" in methods.lower()
    _fits(page, "revenue")
    page.goto(f"{cycle['url']}/revenue/reconciliation?site=CY&start={today}&end={today}")
    recon = page.locator("#reconciliation").inner_text()
    assert "Stays that left\t3" in recon or "Stays that left 3" in recon.replace("\t", " ")
    assert "6.00 EUR" in recon and "4.00 EUR" in recon and "2.00 EUR (1 stays)" in recon
    unpaid = page.locator("#unpaid").inner_text()
    assert "BX5518" in unpaid and "Alex Attendant" in unpaid and "8 read as B, checked the car" in unpaid
    assert "KT7301" not in unpaid
    _fits(page, "reconciliation")
    assert not problems, problems
    context.close()

    # the records hold together
    verified = _cli(cycle["instance"], "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    rollup = _cli(cycle["instance"], "reports", "verify-rollup")
    assert rollup.returncode == 0, rollup.stdout + rollup.stderr

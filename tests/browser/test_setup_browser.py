"""Site setup in a real browser: an administrator creates a device key, disables a lane and prices a
stay, on a site created from the demo site file (no history: cheap to build). Screenshots at 1366x768."""
from __future__ import annotations

import re
import threading

import pytest

from .test_console_browser import CHROMIUM, CHROMIUM_ARGS, Console, _require_chromium

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _require_chromium()
    from werkzeug.serving import make_server

    from parkinglot.context import build_context
    from parkinglot.db import transaction
    from parkinglot.demo import demo_password, demo_site_file
    from parkinglot.records import migrate, users
    from parkinglot.sitefile import service
    from parkinglot.web import create_app

    instance = tmp_path_factory.mktemp("setup-browser")
    settings = {"SECRET_KEY": "setup-browser-secret", "WARM_RECOGNIZER": False}
    ctx = build_context(settings, instance)
    migrate.upgrade(ctx.engine)
    with transaction(ctx.sessions) as s:
        service.apply(s, demo_site_file())
        users.create_user(s, username="admin", password=demo_password("admin"), role="admin")
    app = create_app({**settings, "INSTANCE_PATH": str(instance)})
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, name="setup-test-server", daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{http.server_port}"}
    finally:
        http.shutdown()
        app.extensions["parkinglot_dispatcher"].drain()
        app.extensions["parkinglot"].close()
        ctx.close()


def test_an_administrator_sets_up_lanes_keys_and_previews_a_price(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        t = Console(browser, server)
        try:
            t.login("admin")
            t.page.get_by_role("link", name="Site setup").click()
            assert t.page.get_by_role("heading", level=1).inner_text() == "Site setup"
            t.shot("setup-sites")
            t.page.get_by_role("link", name="Lanes & devices").click()
            t.page.locator("#device-name").fill("Exit 1 terminal")
            t.page.locator("#device-kind").select_option("pay_station")
            t.page.get_by_label(re.compile("^Bound to lane")).select_option("DT-OUT-1")
            t.page.get_by_role("button", name="Create key").click()
            key = t.page.locator("code.device-key").inner_text()
            assert re.fullmatch(r"pl_[0-9a-f]{12}_\S+", key)
            t.shot("setup-site-new-key")
            t.page.get_by_label("Reason for disabling DT-IN-2").fill("barrier arm replaced")
            t.page.get_by_role("button", name="Disable DT-IN-2").click()
            assert "Lane DT-IN-2 disabled." in t.page.locator(".flashes").inner_text()
            assert t.page.locator("code.device-key").count() == 0  # the key is never shown again
            t.page.get_by_role("link", name="Tariff").first.click()
            sentence = t.page.locator("#quote-sentence").inner_text()
            assert re.match(r"A car that stays 2 h 40 min entering Saturday 21:30 \(.*\) pays \d+\.\d\d USD", sentence)
            t.shot("setup-tariff")
        finally:
            t.close()
            browser.close()

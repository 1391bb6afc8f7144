"""Issue 21: a supervisor exports an evidence bundle from a stay's page in a real browser, and the
bundle is then verified by the ``parkinglot evidence verify`` command with the database gone.

Own server (a temporary SQLite instance with the demo site and one stay with photos, paid
and left), so the database file can be deleted afterwards: the check runs on a machine
state where only the ZIP is left.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from .test_console_browser import CHROMIUM, CHROMIUM_ARGS, Console, _event_with_box, _require_chromium

pytestmark = [pytest.mark.slow, pytest.mark.browser]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
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

    instance = tmp_path_factory.mktemp("evidence-instance")
    settings = {"SECRET_KEY": "browser-test-secret", "WARM_RECOGNIZER": False}
    ctx = build_context(settings, instance)
    migrate.upgrade(ctx.engine)
    load_demo(ctx, history=10)
    now = utcnow().replace(microsecond=0)
    entered = _event_with_box(ctx, "DT-IN-1", "EVI4242", now - timedelta(hours=3), "evidence-in")
    with transaction(ctx.sessions) as s:
        site, stay = sites.get_site(s, "DT"), s.get(ParkingSession, entered.session_id)
        due = fees.fee_status(s, site, stay, now - timedelta(hours=1, minutes=5))
        payments.record_payment(s, site, amount_minor=due.due_minor, method="card", reference="evidence-pay",
                                stay=stay, paid_until=due.paid_until)
    assert _event_with_box(ctx, "DT-OUT-2", "EVI4242", now - timedelta(hours=1), "evidence-out").decision == "open"
    app = create_app({**settings, "INSTANCE_PATH": str(instance)})
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, name="evidence-test-server", daemon=True)
    thread.start()
    state = {"url": f"http://127.0.0.1:{http.server_port}", "stay": entered.session_id, "instance": instance,
             "stop": None}

    def stop():
        http.shutdown()
        app.extensions["parkinglot_dispatcher"].drain()
        app.extensions["parkinglot"].close()
        ctx.close()

    state["stop"] = stop
    try:
        yield state
    finally:
        if state["stop"] is not None:
            state["stop"]()


def _verify(bundle: Path, home: Path) -> subprocess.CompletedProcess:
    """``parkinglot evidence verify`` as a separate process, on an instance with no database at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARKINGLOT_")}
    env.update(PYTHONPATH=str(ROOT), PARKINGLOT_INSTANCE_PATH=str(home))
    return subprocess.run([sys.executable, "-m", "parkinglot.cli", "evidence", "verify", str(bundle)],
                          capture_output=True, text=True, env=env, cwd=home, timeout=120)


def test_export_from_the_stay_page_then_verify_with_the_database_removed(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            t = Console(browser, server)
            t.login("supervisor")
            t.go(f"/stays/{server['stay']}")
            button = t.page.get_by_role("button", name="Export evidence bundle")
            with t.page.expect_download() as info:
                button.click()
            download = info.value
            assert download.suggested_filename.startswith(f"evidence-stay-{server['stay']}-")
            bundle = tmp_path / download.suggested_filename
            download.save_as(bundle)
            t.close()
        finally:
            browser.close()

    # the machine state afterwards: the server is gone, and so are its database and photo store
    server["stop"]()
    server["stop"] = None
    instance = server["instance"]
    for name in ("parkinglot.db", "parkinglot.db-wal", "parkinglot.db-shm"):
        (instance / name).unlink(missing_ok=True)
    import shutil

    shutil.rmtree(instance / "evidence", ignore_errors=True)
    assert not (instance / "parkinglot.db").exists()
    home = tmp_path / "clerk"
    home.mkdir()

    ok = _verify(bundle, home)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "VERIFIED" in ok.stdout and "these 2 photo(s)" in ok.stdout and "not altered since checkpoint" in ok.stdout
    assert not (home / "parkinglot.db").exists()  # verifying made no database

    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(tampered, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name.startswith("photos/"):
                data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
            dst.writestr(name, data)
    bad = _verify(tampered, home)
    assert bad.returncode == 1 and "FAILED" in bad.stderr and "ALTERED" in bad.stderr

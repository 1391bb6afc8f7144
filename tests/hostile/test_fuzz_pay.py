"""Schemathesis over the pay-station endpoints, with a pay station's key and real stays to find:
no 5xx, and every answer as the OpenAPI document says.

The general API fuzz (test_fuzz_api.py) calls them with a lane controller's key, which they
refuse; here they are called as a pay station would, on a site with a tariff and stays inside
(tickets T-1..T-20, plates PF1..PF20), so quotes and payments get past the lookups too.
"""
import shutil
import threading
from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from parkinglot.billing import tariffs
from parkinglot.records import sites, stays
from parkinglot.records.types import utcnow
from parkinglot.web.openapi import SPEC

from ..factories import make_site

pytestmark = pytest.mark.slow

EXAMPLES = 20
TARIFF = {"schema": 1, "currency": "EUR", "exit_grace_min": 15,
          "rates": {"std": {"bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "2.00"}]}},
          "week": {"mon-sun": "std"}}


@pytest.fixture
def pay_app(tmp_path, sqlite_template, fake_pipeline):
    from werkzeug.serving import make_server

    from parkinglot.web import create_app

    db = tmp_path / "fuzz.db"
    shutil.copy(sqlite_template, db)
    app = create_app({"INSTANCE_PATH": str(tmp_path / "inst"), "DATABASE_URL": f"sqlite:///{db}",
                      "EVIDENCE_DIR": str(tmp_path / "ev"), "SECRET_KEY": "fuzz", "TESTING": True,
                      "LPR_PIPELINE": fake_pipeline, "API_KEY_MAX_FAILURES": 10**6})
    ctx = app.extensions["parkinglot"]
    now = utcnow()
    with ctx.sessions() as s:
        site, _entry, exit_ = make_site(s, code="PF")
        version = tariffs.create_version(s, site, code="std", name="Standard", rules=TARIFF,
                                         effective_from=now - timedelta(days=1), make_default=True)
        for i in range(1, 21):
            stays.open_stay(s, site_id=site.id, plate=f"PF{i}", entered_at=now - timedelta(minutes=40 * i),
                            entry_lane_id=_entry.id, ticket=f"T-{i}", tariff_version_id=version.id)
        app.config["PAY_KEY"] = sites.create_device(s, site, "till", kind="pay_station", lane=exit_).key
        s.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    app.config["BASE_URL"] = f"http://127.0.0.1:{server.server_port}/api/v1"
    yield app
    server.shutdown()
    app.extensions["parkinglot_dispatcher"].drain()
    ctx.close()


schema = schemathesis.openapi.from_dict(SPEC).include(path_regex="^/pay/")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
def test_pay_endpoints_never_500_and_match_their_document(case, pay_app):
    # schema-valid data meets business rules (an amount other than the one due, an unknown
    # ticket): those are documented 4xx answers, so the positive-acceptance check is off
    response = case.call_and_validate(base_url=pay_app.config["BASE_URL"],
                                      headers={"Authorization": f"Bearer {pay_app.config['PAY_KEY']}"},
                                      excluded_checks=[positive_data_acceptance])
    assert response.status_code < 500, response.text


def test_pay_endpoints_are_in_the_fuzzed_schema():
    paths = [p for p in SPEC["paths"] if p.startswith("/pay/")]
    assert set(paths) == {"/pay/quotes", "/pay/waiting", "/pay/payments", "/pay/payments/{payment}/receipt",
                          "/pay/payments/{payment}/receipt.html"}

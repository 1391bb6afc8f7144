"""GET /api/v1/reports/revenue: finance only, JSON that matches the OpenAPI document, CSV download."""
import base64
import csv
import io
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from jsonschema import Draft202012Validator

from parkinglot.billing import payments, reports, tariffs
from parkinglot.records import stays, users
from parkinglot.web.openapi import SPEC

from .factories import make_site

NY = ZoneInfo("America/New_York")
UTC = timezone.utc
URL = "/api/v1/reports/revenue"
HOURLY = {
    "schema": 1, "currency": "USD",
    "rates": {"std": {"bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "2.00"}]}},
    "week": {"mon-sun": "std"},
}

# The shape the report promises beyond the document's required keys (checked on every response).
ROW = {
    "type": "object",
    "required": ["group", "label", "period_start", "period_end", "payments", "takings", "refunds", "refunded",
                 "adjustments", "adjusted", "net_takings"],
    "properties": {
        "group": {"type": ["string", "null"]}, "label": {"type": "string"},
        "period_start": {"type": ["string", "null"], "format": "date"},
        "period_end": {"type": ["string", "null"], "format": "date"},
        "payments": {"type": "integer", "minimum": 0}, "refunds": {"type": "integer", "minimum": 0},
        "adjustments": {"type": "integer", "minimum": 0},
        **{k: {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
           for k in ("takings", "refunded", "adjusted", "net_takings")},
    },
}
STRICT = {
    "type": "object",
    "properties": {
        "rows": {"type": "array", "items": ROW},
        "totals": {"type": "object", "required": ["payments", "takings", "refunded", "adjusted", "net_takings"]},
        "splits": {"type": "object", "additionalProperties": {"type": "array", "items": ROW}},
        "reconciliation": {"type": "object", "required": ["billed", "paid", "credits", "open_balance",
                                                          "open_balance_stays", "top_open_balances", "collected"]},
        "occupancy": {"type": "object", "required": ["stays_entered", "stays_exited", "average_stay_minutes",
                                                     "peak", "peak_at"]},
    },
}


def validate(schema_name, body):
    schema = {**SPEC["components"]["schemas"][schema_name], "$defs": {}}
    Draft202012Validator(schema).validate(body)
    if schema_name == "Revenue":
        Draft202012Validator(STRICT).validate(body)


def basic(username, password="harbour-lantern-test-9"):
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def data(db):
    with db.sessions() as s:
        site, entry, exit_ = make_site(s, code="NYC", timezone="America/New_York", currency="USD",
                                       plate_region="us", capacity=20)
        other, _, _ = make_site(s, code="LA", timezone="America/Los_Angeles", currency="USD")
        version = tariffs.create_version(s, site, code="STD", name="Standard", rules=HOURLY,
                                         effective_from=datetime(2025, 1, 1, tzinfo=UTC), make_default=True)
        users.create_user(s, username="fin", password="harbour-lantern-test-9", role="finance")  # no sites: all of them
        users.create_user(s, username="fin-la", password="harbour-lantern-test-9", role="finance", sites=[other])
        users.create_user(s, username="att", password="harbour-lantern-test-9", role="attendant", sites=[site])
        users.create_user(s, username="boss", password="harbour-lantern-test-9", role="admin")
        stay = stays.open_stay(s, site_id=site.id, plate="AB123", entered_at=datetime(2025, 11, 1, 20, tzinfo=NY),
                               entry_lane_id=entry.id, tariff_version_id=version.id)
        stays.close_stay(s, stay, exited_at=datetime(2025, 11, 2, 1, tzinfo=NY), exit_lane_id=exit_.id,
                         fee_minor=1200)
        for ref, amount, at, method in [
            ("a", 1000, datetime(2025, 11, 2, 0, 30, tzinfo=NY), "card"),  # 00:30 on the 25 h day
            ("b", 250, datetime(2025, 11, 2, 23, 30, tzinfo=NY), "cash"),  # 04:30 UTC on the 3rd
            ("c", 500, datetime(2025, 11, 3, 12, tzinfo=NY), "app"),
        ]:
            payments.record_payment(s, site, amount_minor=amount, method=method, reference=ref,
                                    stay=stay if ref == "a" else None, at=at)
        s.commit()
    return {"site": "NYC"}


def get(client, headers=None, **params):
    query = {"site": "NYC", "from": "2025-11-01", "to": "2025-11-03", **params}
    return client.get(URL, query_string={k: v for k, v in query.items() if v is not None}, headers=headers or {})


def test_revenue_by_day_in_local_time_across_fall_back(client, data):
    r = get(client, basic("fin"), group_by="day")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    validate("Revenue", body)
    assert (body["site"], body["currency"], body["timezone"], body["group_by"]) == (
        "NYC", "USD", "America/New_York", "day")
    assert [(row["group"], row["takings"]) for row in body["rows"]] == [
        ("2025-11-01", "0.00"), ("2025-11-02", "12.50"), ("2025-11-03", "5.00")]
    assert body["totals"]["takings"] == "17.50" and body["totals"]["payments"] == 3
    assert {row["group"]: row["takings"] for row in body["splits"]["method"]} == {
        "app": "5.00", "card": "10.00", "cash": "2.50"}
    assert body["reconciliation"]["billed"] == "12.00" and body["reconciliation"]["open_balance"] == "2.00"
    assert body["occupancy"]["stays_entered"] == 1 and body["occupancy"]["peak"] == 1
    assert r.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("group_by", ["week", "month", "lane", "method", "tariff"])
def test_other_groupings_validate(client, data, group_by):
    r = get(client, basic("fin"), group_by=group_by)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    validate("Revenue", body)
    assert body["group_by"] == group_by
    assert sum(row["payments"] for row in body["rows"]) == 3


def test_default_grouping_is_day_and_admin_may_read(client, data):
    r = get(client, basic("boss"))
    assert r.status_code == 200
    assert r.get_json()["group_by"] == "day"


def test_csv_download(client, data):
    r = get(client, basic("fin"), group_by="day", format="csv")
    assert r.status_code == 200
    assert r.mimetype == "text/csv"
    assert r.headers["Content-Disposition"] == 'attachment; filename="revenue-NYC-2025-11-01-2025-11-03-day.csv"'
    rows = list(csv.DictReader(io.StringIO(r.data.decode("utf-8"))))
    assert [(x["section"], x["group"], x["takings"], x["currency"]) for x in rows[:4]] == [
        ("day", "2025-11-01", "0.00", "USD"), ("day", "2025-11-02", "12.50", "USD"),
        ("day", "2025-11-03", "5.00", "USD"), ("total", "", "17.50", "USD")]


# --- refusals -------------------------------------------------------------------------------------

def test_no_credentials_is_401(client, data):
    r = get(client)
    assert r.status_code == 401
    validate("Error", r.get_json())


def test_wrong_password_is_401(client, data):
    r = get(client, basic("fin", "not-the-password"))
    assert r.status_code == 401
    validate("Error", r.get_json())


def test_non_finance_user_is_403(client, data):
    r = get(client, basic("att"))
    assert r.status_code == 403
    body = r.get_json()
    validate("Error", body)
    assert body["error"]["code"] == "forbidden"


def test_finance_user_of_another_site_is_403(client, data):
    assert get(client, basic("fin-la")).status_code == 403
    assert get(client, basic("fin-la"), site="LA").status_code == 200


def test_unknown_site_is_404(client, data):
    r = get(client, basic("fin"), site="NOPE")
    assert r.status_code == 404
    validate("Error", r.get_json())


@pytest.mark.parametrize("params, match", [
    ({"from": "2025-11-04"}, "after"),                       # from after to
    ({"from": "2024-01-01", "to": "2025-12-31"}, "at most"),  # longer than REPORT_MAX_DAYS
    ({"from": "01/11/2025"}, "YYYY-MM-DD"),
    ({"to": "2025-11-31"}, "YYYY-MM-DD"),
    ({"from": None}, "required"),
    ({"site": None}, "required"),
    ({"group_by": "hour"}, "group_by"),
    ({"format": "xlsx"}, "format"),
])
def test_bad_parameters_are_422(client, data, params, match):
    r = get(client, basic("fin"), **params)
    assert r.status_code == 422, r.get_json()
    body = r.get_json()
    validate("Error", body)
    assert match in body["error"]["message"]


def test_range_limit_is_configurable(client, app, data):
    app.config["REPORT_MAX_DAYS"] = 2
    r = get(client, basic("fin"))
    assert r.status_code == 422 and "at most 2" in r.get_json()["error"]["message"]
    assert get(client, basic("fin"), to="2025-11-02").status_code == 200


def test_openapi_document_describes_the_route(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    params = {p["name"] for p in spec["paths"]["/reports/revenue"]["get"]["parameters"]}
    assert params == {"site", "from", "to", "group_by", "format"}
    group_by = next(p for p in spec["paths"]["/reports/revenue"]["get"]["parameters"] if p["name"] == "group_by")
    assert set(group_by["schema"]["enum"]) == set(reports.GROUPINGS)

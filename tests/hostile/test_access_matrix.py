"""Who may call what. Every route of the app is listed here with the callers it admits; a new
route that is not in the table fails this test, so access is decided on purpose, never by default.

Callers: anonymous, each console role (session cookie), and a device key in each state
(valid, wrong, revoked, another site's).
"""
import base64

import pytest

from parkinglot.records import sites, users

from ..factories import make_site

pytestmark = pytest.mark.slow

ROLES = ("attendant", "supervisor", "finance", "admin")
DEVICE_STATES = ("device", "device_wrong", "device_revoked", "device_other_site", "pay_station",
                 "pay_station_other_site")
CALLERS = ("anonymous",) + ROLES + DEVICE_STATES

# endpoint -> (method, path, callers that get through auth, and a body for POSTs)
API_ROUTES = {
    "api.lane_event": ("POST", "/api/v1/lanes/{lane}/events", {"device"}, {"plate": "AB123", "confidence": 0.9}),
    # the lane's own controller reports a passage; decision 1 need not exist (a 404 is past auth)
    "api.lane_passage": ("POST", "/api/v1/lanes/{lane}/passages", {"device"}, {"decision_id": 1}),
    # recognition only, nothing stored: any valid controller key, of any site
    "api.recognize_only": ("POST", "/api/v1/recognize", {"device", "device_other_site"}, None),
    "api.lane_get": ("GET", "/api/v1/lanes/{lane}", {"device", "attendant", "supervisor", "admin"}, None),
    "api.lane_manual_open": ("POST", "/api/v1/lanes/{lane}/open", {"attendant", "supervisor", "admin"},
                             {"reason": "matrix test", "no_vehicle": True}),
    "api.site_emergency": ("POST", "/api/v1/sites/{site}/emergency", {"supervisor", "admin"},
                           {"active": False, "reason": "matrix test"}),
    "api.revenue_report": ("GET", "/api/v1/reports/revenue?site={site}&from=2026-01-01&to=2026-01-31",
                           {"finance", "admin"}, None),
    "api.openapi_document": ("GET", "/api/v1/openapi.json", set(CALLERS), None),
    # pay stations only (a lane controller's key is refused); another site's stays are 404, past auth
    "api.pay_quote": ("POST", "/api/v1/pay/quotes", {"pay_station", "pay_station_other_site"}, {"stay_id": 1}),
    "api.pay_waiting": ("GET", "/api/v1/pay/waiting", {"pay_station", "pay_station_other_site"}, None),
    "api.pay_record": ("POST", "/api/v1/pay/payments", {"pay_station", "pay_station_other_site"},
                       {"stay_id": 1, "amount": "1.00", "method": "cash", "idempotency_key": "matrix"}),
    "api.pay_receipt": ("GET", "/api/v1/pay/payments/1/receipt", {"pay_station", "pay_station_other_site"}, None),
    "api.pay_receipt_html": ("GET", "/api/v1/pay/payments/1/receipt.html", {"pay_station", "pay_station_other_site"},
                             None),
    "health.healthz": ("GET", "/healthz", set(CALLERS), None),
    "health.readyz": ("GET", "/readyz", set(CALLERS), None),
}


@pytest.fixture
def world(app, db):
    with db.sessions() as s:
        site, entry, _ = make_site(s, code="AC")
        other, _, _ = make_site(s, code="OT")
        keys = {"device": sites.create_device(s, site, "ok").key,
                "device_other_site": sites.create_device(s, other, "other").key,
                "device_wrong": "pl_" + "0" * 12 + "_not-a-real-key",
                "pay_station": sites.create_device(s, site, "till", kind="pay_station").key,
                "pay_station_other_site": sites.create_device(s, other, "other till", kind="pay_station").key}
        revoked = sites.create_device(s, site, "old")
        sites.revoke_device(s, revoked.device)
        keys["device_revoked"] = revoked.key
        for role in ROLES:
            users.create_user(s, username=role, password="access-matrix-lantern-9", role=role,
                              sites=[site] if role in ("attendant", "supervisor") else [])
        s.commit()
    app.config["API_KEY_MAX_FAILURES"] = 10**6
    app.config["LOGIN_MAX_FAILURES"] = 10**6
    return {"lane": entry.code, "site": site.code, "keys": keys}


def _headers(caller: str, world) -> dict:
    if caller in ROLES:
        return {"Authorization": "Basic " + base64.b64encode(f"{caller}:access-matrix-lantern-9".encode()).decode()}
    if caller in DEVICE_STATES:
        return {"Authorization": f"Bearer {world['keys'][caller]}"}
    return {}


def test_every_api_route_is_in_the_table(app):
    api_endpoints = {r.endpoint for r in app.url_map.iter_rules()
                     if r.endpoint.startswith(("api.", "health."))}
    assert api_endpoints == set(API_ROUTES), api_endpoints ^ set(API_ROUTES)


@pytest.mark.parametrize("endpoint", sorted(API_ROUTES))
@pytest.mark.parametrize("caller", CALLERS)
def test_api_access(client, world, endpoint, caller):
    method, path, allowed, body = API_ROUTES[endpoint]
    url = path.format(lane=world["lane"], site=world["site"])
    kwargs = {"headers": _headers(caller, world)}
    if method == "POST":
        if body is None:
            kwargs.update(data={}, content_type="multipart/form-data")
        else:
            kwargs["json"] = body
    r = client.open(url, method=method, **kwargs)
    if caller in allowed:
        assert r.status_code not in (401, 403), (caller, endpoint, r.status_code, r.get_data(as_text=True)[:200])
        assert r.status_code < 500 or (endpoint == "health.readyz" and r.status_code == 503)
    else:
        assert r.status_code in (401, 403), (caller, endpoint, r.status_code, r.get_data(as_text=True)[:200])

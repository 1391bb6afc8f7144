"""Pay stations and payment terminals: quote a stay, record its payment, give a receipt.

Only a device key of kind ``pay_station`` gets in (a lane controller's key gets 403, as
a pay station's key does on the lane endpoints). Amounts are decimal strings in major
units of the site's currency; the service (``billing/checkout.py``) checks them against
a fresh quote at the server's clock.
"""
from __future__ import annotations

import re
from typing import Any, Optional

from flask import current_app, jsonify, render_template, request

from .. import plates
from ..billing import checkout
from ..records.errors import InvalidInput, NotFound
from ..records.models import Lane, Payment, Site
from .api import bp
from .api_lanes import MalformedJSON, UnsupportedMediaType
from .auth import require_pay_station
from .transaction import db, read_db, rollback_only

TOKEN = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
KEY = re.compile(r"[A-Za-z0-9._:\-]{1,%d}" % checkout.MAX_KEY)
FIELDS_QUOTE = {"ticket", "plate", "stay_id"}
FIELDS_PAY = {"stay_id", "amount", "method", "idempotency_key", "terminal_ref"}


def _body(allowed: set[str]) -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("send application/json")
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        raise MalformedJSON("the JSON body is nested too deeply") from None
    if not isinstance(body, dict):
        raise MalformedJSON("the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidInput(f"unknown field(s) {', '.join(repr(k[:32]) for k in unknown[:5])}; "
                           f"allowed: {', '.join(sorted(allowed))}")
    return body


def _token(value: Any, name: str, pattern: re.Pattern[str] = TOKEN) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        limit = checkout.MAX_KEY if pattern is KEY else 64
        raise InvalidInput(f"{name} must be 1-{limit} characters from A-Z a-z 0-9 . _ : -")
    return value


def _stay_id(value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise InvalidInput("stay_id must be a positive integer")
    return value


def _plate(value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("plate must be a string")
    try:
        return plates.validate(value)
    except plates.PlateError as exc:
        raise InvalidInput(str(exc)) from None


def _site() -> tuple[Any, Site]:
    """The calling pay station and its site (loaded with the key: one query)."""
    device = require_pay_station()
    return device, device.site


@bp.post("/pay/quotes")
def pay_quote():
    """What a stay owes now: by ticket, plate (the vehicle inside) or stay id."""
    _device, site = _site()
    body = _body(FIELDS_QUOTE)
    stay = checkout.find_stay(read_db(), site, ticket=_token(body.get("ticket"), "ticket"),
                              plate=_plate(body.get("plate")), stay_id=_stay_id(body.get("stay_id")))
    q = checkout.quote_stay(read_db(), site, stay)
    rollback_only()
    return jsonify(q.to_dict())


@bp.get("/pay/waiting")
def pay_waiting():
    """A lane's payment terminal: the quote of the car its exit just refused for payment."""
    device, site = _site()
    window = int(current_app.config["EVENT_REPLAY_WINDOW_S"])
    stay = checkout.waiting_at_lane(read_db(), site, device.lane_id, within_s=window)
    q = checkout.quote_stay(read_db(), site, stay)
    rollback_only()
    return jsonify(q.to_dict())


@bp.post("/pay/payments")
def pay_record():
    """Record the payment of the amount due, once per idempotency key."""
    device, site = _site()
    body = _body(FIELDS_PAY)
    stay_id = _stay_id(body.get("stay_id"))
    key = _token(body.get("idempotency_key"), "idempotency_key", KEY)
    if stay_id is None or key is None:
        raise InvalidInput("stay_id and idempotency_key are required")
    method = body.get("method")
    if not isinstance(method, str) or method not in checkout.TERMINAL_METHODS:
        raise InvalidInput(f"method must be one of {', '.join(checkout.TERMINAL_METHODS)}")
    amount_minor = checkout.to_minor(body.get("amount"), site.currency)
    stay = checkout.find_stay(db(), site, stay_id=stay_id, lock=True)
    taken = checkout.take_payment(db(), site, stay, amount_minor=amount_minor, method=method, stay_locked=True,
                                  reference=checkout.device_reference(device, key),
                                  terminal_ref=_token(body.get("terminal_ref"), "terminal_ref"), device=device,
                                  lane=db().get(Lane, device.lane_id) if device.lane_id else None)
    receipt = checkout.receipt(db(), site, taken.payment, known_unvoided=taken.created, quote=taken.quote,
                               device=device).to_dict()
    receipt["idempotency_key"] = key
    resp = jsonify(receipt)
    resp.status_code = 201  # a retry gets the same reply; only this header tells it apart
    resp.headers["Idempotent-Replayed"] = "false" if taken.created else "true"
    return resp


MAX_ID = 2**63 - 1  # ids are 64-bit: a larger number is no payment (and no database error)


def _payment_of(site: Site, payment_id: int) -> Payment:
    payment = read_db().get(Payment, payment_id) if payment_id <= MAX_ID else None
    if payment is None or payment.site_id != site.id or payment.kind != "payment":
        raise NotFound(f"no payment {payment_id} at this site")
    return payment


@bp.get("/pay/payments/<int:payment_id>/receipt")
def pay_receipt(payment_id: int):
    """The receipt as JSON (it says whether the payment was voided since)."""
    _device, site = _site()
    r = checkout.receipt(read_db(), site, _payment_of(site, payment_id))
    rollback_only()
    return jsonify(r.to_dict())


@bp.get("/pay/payments/<int:payment_id>/receipt.html")
def pay_receipt_html(payment_id: int):
    """The receipt as a printable HTML page (for a terminal that prints HTML)."""
    _device, site = _site()
    r = checkout.receipt(read_db(), site, _payment_of(site, payment_id))
    rollback_only()
    return render_template("console/receipt.html", r=r, d=r.to_dict(), site=site)

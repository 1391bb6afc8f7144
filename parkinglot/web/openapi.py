"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json.

Tests validate real responses against these schemas, so the document stays true.
"""
from __future__ import annotations

from typing import Any

from flask import jsonify

from .. import __version__
from .api import bp

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                           "details": {"type": "object"}},
        },
        "decision": {"enum": ["deny", "attendant"]},
        "reason": {"type": "string"},
        "message_for_display": {"type": "string"},
    },
}

EVENT_REPLY = {
    "type": "object",
    "required": ["decision", "reason", "plate", "confidence", "session_id", "fee_due", "message_for_display",
                 "currency"],
    "properties": {
        "decision": {"enum": ["open", "deny", "attendant"]},
        "reason": {"type": "string"},
        "plate": {"type": "string", "pattern": "^[A-Z0-9]{0,10}$"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "session_id": {"type": ["integer", "null"]},
        "fee_due": {"type": ["string", "null"], "pattern": "^[0-9]+(\\.[0-9]+)?$",
                    "description": "Amount still to pay, in major units of `currency` (decimal string)"},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "message_for_display": {"type": "string"},
        "event_id": {"type": ["string", "null"]},
        "read_id": {"type": ["integer", "null"]},
        "decision_id": {"type": ["integer", "null"]},
        "ticket": {"type": ["string", "null"]},
        "candidates": {"type": "array", "items": {"type": "string"}},
        "visitor_pass": {"type": ["string", "null"],
                         "description": "At an exit, for a stay on a visitor pass: what the pass changed about "
                                        "the fee (free, the visitor rate, or the normal tariff), as the site sets it"},
        "error": {"type": "object", "description": "Only on 409: the event id was used for another request"},
    },
}

EVENT_ID_DOC = ("The controller's id for this vehicle event, unique per lane. It is bound to what was sent "
                "with it (the plate or the frames' SHA-256, and the ticket): the same request retried within "
                "the replay window (10 minutes by default) gets the stored reply and creates nothing; any other "
                "request under a used id, or the same one later, is recorded, raises an alert and gets 409 with "
                "decision `attendant`. One exception: a retried exit whose stored reply was `payment_required` is "
                "decided again, so a car that has paid in the meantime is let out.")
CAPTURED_AT_DOC = ("The controller's clock when the frames were taken, ISO 8601 with an offset. It is recorded, "
                   "shown and kept as evidence, but never decides anything: credential validity, permit hours, "
                   "fees, paid-until and grace are judged at the server's receive time. It is refused when more "
                   "than 5 minutes ahead or 7 days behind the server; an exit captured before its stay's entry "
                   "goes to an attendant. Left out, empty or null, the receive time is recorded in its place.")
# an empty string (a form field left blank) or null is taken as "not given", as documented
CAPTURED_AT = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "maxLength": 0},
                         {"type": "null"}], "description": CAPTURED_AT_DOC}

PLATE_EVENT = {
    "type": "object",
    "required": ["plate", "confidence"],
    "properties": {
        "plate": {"type": "string", "description": "As read by the camera, A-Z and 0-9 (ASCII; spaces, dashes "
                  "and dots are dropped); empty string if no plate was read"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1, "description": "A number; true/false are refused"},
        "event_id": {"type": "string", "pattern": "^[A-Za-z0-9._:\\-]{1,64}$", "description": EVENT_ID_DOC},
        "captured_at": CAPTURED_AT,
        "ticket": {"type": "string", "pattern": "^[A-Za-z0-9._:\\-]{1,64}$"},
        "alternatives": {"type": "array", "items": {"type": "object", "required": ["plate"],
                         "properties": {"plate": {"type": "string"}, "confidence": {"type": "number"}}}},
    },
}

FRAME_EVENT = {
    "type": "object",
    "required": ["frame"],
    "properties": {
        "frame": {"type": "array", "items": {"type": "string", "format": "binary"}, "maxItems": 5,
                  "description": "One or more JPEG/PNG frames of the same vehicle (a burst)"},
        "event_id": {"type": "string", "description": EVENT_ID_DOC},
        "captured_at": CAPTURED_AT,
        "ticket": {"type": "string"},
    },
}

RECOGNITION = {
    "type": "object",
    "required": ["plate", "confidence", "alternatives", "reason", "timings", "region"],
    "properties": {
        "plate": {"type": "string"},
        "confidence": {"type": "number"},
        "raw_text": {"type": "string"},
        "box": {"type": ["array", "null"]},
        "alternatives": {"type": "array", "items": {"type": "object", "required": ["plate", "confidence"]}},
        "reason": {"type": ["string", "null"]},
        "frame_index": {"type": "integer"},
        "region": {"type": "string"},
        "candidate_boxes": {"type": "array"},
        "timings": {"type": "object", "additionalProperties": {"type": "number"}},
    },
}

LANE_STATE = {
    "type": "object",
    "required": ["lane", "site", "direction", "emergency_mode", "last_decision", "barrier"],
    "properties": {
        "lane": {"type": "string"}, "name": {"type": "string"}, "site": {"type": "string"},
        "direction": {"enum": ["entry", "exit"]}, "enabled": {"type": "boolean"}, "driver": {"type": "string"},
        "emergency_mode": {"type": "boolean"},
        "last_decision": {"type": ["object", "null"]},
        "barrier": {"type": ["object", "null"]},
    },
}

REVENUE = {
    "type": "object",
    "required": ["site", "currency", "from", "to", "group_by", "rows", "totals"],
    "properties": {
        "site": {"type": "string"}, "currency": {"type": "string"}, "timezone": {"type": "string"},
        "from": {"type": "string"}, "to": {"type": "string"}, "group_by": {"type": "string"},
        "rows": {"type": "array", "items": {"type": "object"}},
        "totals": {"type": "object"},
        "reconciliation": {"type": "object"},
        "occupancy": {"type": "object"},
    },
}


MONEY = {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$",
         "description": "An amount in major units of `currency`, as a decimal string (never a float)"}
TOKEN = {"type": "string", "pattern": "^[A-Za-z0-9._:\\-]{1,64}$"}
TIME = {"type": "string", "format": "date-time"}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}

PAY_QUOTE_REQUEST = {
    "type": "object", "additionalProperties": False,
    "description": "Exactly one of `ticket`, `plate` (the vehicle inside) or `stay_id`.",
    "properties": {
        "ticket": TOKEN,
        "plate": {"type": "string", "maxLength": 16, "description": "A-Z and 0-9; spaces, dashes and dots are dropped"},
        "stay_id": {"type": "integer", "minimum": 1},
    },
}

PAY_QUOTE = {
    "type": "object",
    "required": ["stay_id", "plate", "status", "entered_at", "quoted_at", "currency", "amount", "paid",
                 "amount_due", "amount_due_minor", "paid_until", "exit_grace_min", "exit_by", "breakdown"],
    "properties": {
        "stay_id": {"type": "integer"}, "plate": {"type": "string"}, "ticket": {"type": ["string", "null"]},
        "status": {"enum": ["open", "closed"],
                   "description": "`closed`: the car left owing money; the quote is its open unpaid balance"},
        "entered_at": TIME,
        "quoted_at": {**TIME, "description": "The server's clock: the stay is priced as if it left now"},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "amount": {**MONEY, "description": "The fee for the stay so far"},
        "paid": {**MONEY, "description": "Already paid (payments less refunds and voids, plus credits)"},
        "amount_due": {**MONEY, "description": "What to pay now: a payment must be exactly this"},
        "amount_due_minor": {"type": "integer", "minimum": 0},
        "paid_until": {**NULLABLE_TIME, "description": "The last instant the fee covers; null: covered for good"},
        "exit_grace_min": {"type": "integer", "minimum": 0,
                           "description": "Minutes after `paid_until` to reach the exit with nothing more due"},
        "exit_by": {**NULLABLE_TIME, "description": "`paid_until` + the exit grace, once paid: leave by then"},
        "basis": {"type": "string", "description": "How the fee was priced; `unpaid_balance`: what a stay "
                  "that left owing money still owes (nothing more accrues)"},
        "unpaid_balance_id": {"type": ["integer", "null"],
                              "description": "The unpaid balance this quote settles (a stay that has left), else null"},
        "breakdown": {"type": "array", "items": {"type": "object", "required": ["kind", "label", "amount"],
                      "properties": {"kind": {"type": "string"}, "label": {"type": "string"},
                                     "amount": {"type": "string"}}}},
    },
}

PAY_REQUEST = {
    "type": "object", "additionalProperties": False,
    "required": ["stay_id", "amount", "method", "idempotency_key"],
    "properties": {
        "stay_id": {"type": "integer", "minimum": 1, "description": "From the quote (or an exit reply's `session_id`)"},
        "amount": {**MONEY, "description": "Exactly the quote's `amount_due`: anything else is refused (409) "
                   "with the amount due now"},
        "method": {"enum": ["cash", "card", "mobile", "validation"]},
        "idempotency_key": {"type": "string", "pattern": "^[A-Za-z0-9._:\\-]{1,48}$",
                            "description": "The terminal's key for this payment. A retry with the same key and "
                                           "the same payment gets the same reply (header "
                                           "`Idempotent-Replayed: true`) and records nothing; the same key with "
                                           "another amount, method, stay or terminal_ref gets 409."},
        "terminal_ref": {**TOKEN, "description": "The terminal's own transaction reference, kept on the receipt"},
    },
}

RECEIPT = {
    "type": "object",
    "required": ["receipt_no", "payment_id", "site", "stay_id", "paid_at", "amount", "amount_minor", "currency",
                 "method", "paid_until", "exit_by", "voided"],
    "properties": {
        "receipt_no": {"type": "string"}, "payment_id": {"type": "integer"}, "site": {"type": "string"},
        "site_name": {"type": "string"}, "stay_id": {"type": ["integer", "null"]},
        "plate": {"type": ["string", "null"]}, "ticket": {"type": ["string", "null"]},
        "entered_at": NULLABLE_TIME, "paid_at": TIME, "amount": MONEY, "amount_minor": {"type": "integer"},
        "currency": {"type": "string"}, "method": {"type": "string"}, "terminal_ref": {"type": ["string", "null"]},
        "paid_until": NULLABLE_TIME, "exit_by": NULLABLE_TIME, "taken_by": {"type": "string"},
        "voided": {"type": "boolean", "description": "A supervisor voided it (recorded by mistake): not valid"},
        "voided_at": NULLABLE_TIME, "idempotency_key": {"type": "string"},
    },
}


def _err(desc: str) -> dict[str, Any]:
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _ok(desc: str, schema: str) -> dict[str, Any]:
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


DEVICE = [{"deviceKey": []}]
PAY_STATION = [{"payStationKey": []}]


def _receipt_op(summary: str, ok: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"summary": f"Pay station: {summary}", "security": PAY_STATION,
                    "parameters": [{"name": "payment", "in": "path", "required": True,
                                    "schema": {"type": "integer", "minimum": 1}}],
                    "responses": {"200": ok, "404": _err("No such payment at this site (or no 64-bit id)")}}}
USER = [{"consoleSession": []}, {"basicAuth": []}]

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "parkinglot API", "version": __version__,
             "description": "Lane controllers (device keys) and console users (session or Basic auth). "
                            "Any non-2xx answer to a lane event means: do not open."},
    "servers": [{"url": "/api/v1"}],
    "components": {
        "securitySchemes": {
            "deviceKey": {"type": "http", "scheme": "bearer",
                          "description": "A lane controller's API key (refused on the pay endpoints)"},
            "payStationKey": {"type": "http", "scheme": "bearer",
                              "description": "A pay station's API key (device kind `pay_station`): the pay "
                                             "endpoints only; refused (403) everywhere else"},
            "basicAuth": {"type": "http", "scheme": "basic"},
            "consoleSession": {"type": "apiKey", "in": "cookie", "name": "session"},
        },
        "schemas": {"Error": ERROR, "EventReply": EVENT_REPLY, "PlateEvent": PLATE_EVENT, "FrameEvent": FRAME_EVENT,
                    "Recognition": RECOGNITION, "LaneState": LANE_STATE, "Revenue": REVENUE,
                    "PayQuoteRequest": PAY_QUOTE_REQUEST, "PayQuote": PAY_QUOTE, "PayRequest": PAY_REQUEST,
                    "Receipt": RECEIPT},
    },
    "paths": {
        "/lanes/{lane}/events": {
            "post": {
                "summary": "A vehicle at a lane: frames or a camera-read plate; returns the decision",
                "security": DEVICE,
                "parameters": [{"name": "lane", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/PlateEvent"}},
                    "multipart/form-data": {"schema": {"$ref": "#/components/schemas/FrameEvent"}}}},
                "responses": {
                    "200": _ok("The decision (a retry with the same event_id gets the same reply)", "EventReply"),
                    "409": _ok("The event id was already used for another request: recorded, attendant called",
                               "EventReply"),
                    "400": _err("Malformed JSON"), "401": _err("Missing, invalid or revoked key"),
                    "403": _err("Another site's lane"), "404": _err("Unknown lane"),
                    "413": _err("Body too large"), "415": _err("Wrong content type"),
                    "422": _err("Invalid field, too many frames, undecodable frame, capture time out of range"),
                    "429": _err("Too many failed key attempts"), "503": _err("Database unavailable: deny"),
                },
            }
        },
        "/lanes/{lane}/passages": {
            "post": {
                "summary": "The barrier reports that the car of an `open` decision has passed",
                "description": "Drivers that can tell should report passages: until one arrives, a repeat read "
                               "of the same plate on the lane within the site's duplicate window is taken as the "
                               "same car still waiting and gets the same `open`; after it, a repeat read is "
                               "another car and is decided afresh (a cloned plate following the first car).",
                "security": DEVICE,
                "parameters": [{"name": "lane", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["decision_id"],
                    "properties": {"decision_id": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
                                   "passed_at": {"type": "string", "format": "date-time",
                                                 "description": "The controller's clock; recorded only"}}}}}},
                "responses": {"201": {"description": "Recorded"}, "200": {"description": "Already recorded"},
                              "401": _err("Bad key"), "404": _err("No such open decision on this lane"),
                              "409": _err("That decision did not open the barrier"),
                              "422": _err("Invalid field")},
            }
        },
        "/recognize": {
            "post": {
                "summary": "Recognition only (commissioning); stores nothing",
                "security": DEVICE,
                "parameters": [{"name": "region", "in": "query", "schema": {"enum": ["us", "eu", "br"]}}],
                "requestBody": {"required": True, "content": {
                    "multipart/form-data": {"schema": {"$ref": "#/components/schemas/FrameEvent"}}}},
                "responses": {"200": _ok("What the pipeline read", "Recognition"), "401": _err("Bad key"),
                              "413": _err("Body too large"), "415": _err("Wrong content type"),
                              "422": _err("Undecodable frame")},
            }
        },
        "/lanes/{lane}": {
            "get": {
                "summary": "Lane state",
                "security": DEVICE + USER,
                "parameters": [{"name": "lane", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _ok("State", "LaneState"), "401": _err("Not authenticated"),
                              "403": _err("Not allowed"), "404": _err("Unknown lane")},
            }
        },
        "/lanes/{lane}/open": {
            "post": {
                "summary": "Open the barrier by hand (attendant); the reason is mandatory and audited",
                "description": "Every car that passes is accounted for. At an entry lane `plate` is required: "
                               "the car is admitted (a stay is opened, with a ticket if the site issues them). "
                               "At an exit lane a `plate` closes that car's stay, its fee billed and anything "
                               "still due recorded as an unpaid balance with the reason and the user's name. "
                               "`no_vehicle: true` opens without naming a car (a barrier test), and says so.",
                "security": USER,
                "parameters": [{"name": "lane", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["reason"], "properties": {
                        "reason": {"type": "string", "minLength": 3},
                        "plate": {"type": "string", "maxLength": 20},
                        "no_vehicle": {"type": "boolean"},
                        "override_stop": {"type": "boolean", "description": "Supervisor only: let out a named "
                                          "car on a stop list (hotlist or lock, or a look-alike); audited and "
                                          "alerted. Without it such a car is refused with 409."}}}}}},
                "responses": {"200": {"description": "Opened; `session_id` is the stay admitted or let out, "
                                                     "`unpaid` what it left owing"},
                              "401": _err("Not authenticated"), "403": _err("Not allowed"),
                              "404": _err("Unknown lane"),
                              "409": _err("The car is already inside, was admitted already, or is on a stop list"),
                              "422": _err("No reason; an entry without a plate; a plate with no open stay")},
            }
        },
        "/sites/{site}/emergency": {
            "post": {
                "summary": "Switch the site's emergency (evacuation) mode (supervisor)",
                "security": USER,
                "parameters": [{"name": "site", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["active", "reason"],
                    "properties": {"active": {"type": "boolean"}, "reason": {"type": "string", "minLength": 3}}}}}},
                "responses": {"200": {"description": "New state"}, "401": _err("Not authenticated"),
                              "403": _err("Not allowed"), "409": _err("Already in that mode"),
                              "422": _err("Missing field")},
            }
        },
        "/pay/quotes": {
            "post": {
                "summary": "Pay station: what a stay owes now, by ticket, plate or stay id",
                "description": "Priced at the server's clock. `exit_by` says until when, once `amount_due` is "
                               "paid, the car may leave with nothing more to pay (the tariff's exit grace). "
                               "A stay whose car was let out owing money (by ticket, stay id, or by plate when "
                               "that plate is not inside: its newest such stay) quotes its open unpaid "
                               "balance (`basis` `unpaid_balance`); paying it settles the balance.",
                "security": PAY_STATION,
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/PayQuoteRequest"}}}},
                "responses": {"200": _ok("The quote", "PayQuote"),
                              "404": _err("No such ticket or stay at this site, or the plate is not inside"),
                              "409": _err("`stay_closed`: the stay has left (or was voided) with no open unpaid "
                                          "balance (none, settled or written off)"),
                              "422": _err("Not exactly one of ticket, plate, stay_id; invalid value; unknown field")},
            }
        },
        "/pay/waiting": {
            "get": {
                "summary": "Lane payment terminal: the quote of the car its exit lane just refused for payment",
                "description": "For a pay station bound to an exit lane (`parkinglot devices add --kind pay_station "
                               "--lane CODE`): the stay of the last car the lane decided on, if that decision "
                               "(within the event replay window) was `payment_required`. Pay it with "
                               "`POST /pay/payments`; the controller's retry of the same exit event then opens.",
                "security": PAY_STATION,
                "responses": {"200": _ok("The quote", "PayQuote"),
                              "404": _err("`no_car_waiting`: the lane's last decision was not a refusal for payment"),
                              "409": _err("`not_a_lane_terminal` (this pay station is bound to no lane) or "
                                          "`stay_closed`")},
            }
        },
        "/pay/payments": {
            "post": {
                "summary": "Pay station: record the payment of the amount due",
                "description": "The amount must equal what a fresh quote says is due. Errors: `amount_mismatch` "
                               "(409, `details.amount_due` is the amount due now), `nothing_due` (409), "
                               "`stay_closed` (409: left with no open unpaid balance), `idempotency_key_reused` (409). "
                               "A stay that left owing money is paid the same way: the amount is the balance "
                               "still owed, and the payment settles it. A car whose exit was refused "
                               "with `payment_required` is let out when its controller retries the same event "
                               "after this payment.",
                "security": PAY_STATION,
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/PayRequest"}}}},
                "responses": {"201": _ok("Recorded (or the same payment retried): the receipt", "Receipt"),
                              "404": _err("No such stay at this site"),
                              "409": _err("Amount differs from the amount due, nothing due, stay closed, or the "
                                          "idempotency key was used for another payment"),
                              "422": _err("Invalid field (amount not a decimal string, unknown method, ...)")},
            }
        },
        "/pay/payments/{payment}/receipt": _receipt_op("a payment's receipt as JSON", _ok("The receipt", "Receipt")),
        "/pay/payments/{payment}/receipt.html": _receipt_op(
            "a payment's receipt as a printable HTML page",
            {"description": "The receipt page", "content": {"text/html": {"schema": {"type": "string"}}}}),
        "/reports/revenue": {
            "get": {
                "summary": "Revenue report (finance): JSON or CSV",
                "security": USER,
                "parameters": [
                    {"name": "site", "in": "query", "required": True, "schema": {"type": "string"}},
                    {"name": "from", "in": "query", "required": True, "schema": {"type": "string", "format": "date"}},
                    {"name": "to", "in": "query", "required": True, "schema": {"type": "string", "format": "date"}},
                    {"name": "group_by", "in": "query",
                     "schema": {"enum": ["day", "week", "month", "lane", "method", "tariff"]}},
                    {"name": "format", "in": "query", "schema": {"enum": ["json", "csv"]}},
                ],
                "responses": {"200": {"description": "The report", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Revenue"}},
                    "text/csv": {"schema": {"type": "string"}}}},
                    "401": _err("Not authenticated"), "403": _err("Not finance"), "404": _err("Unknown site"),
                    "422": _err("Bad range")},
            }
        },
    },
}


COMMON_ERRORS = {
    "400": "Malformed request (e.g. invalid JSON)",
    "401": "Not authenticated",
    "403": "Not allowed for this caller",
    "404": "Unknown lane, site or resource",
    "409": "Conflicts with the current state",
    "413": "Body too large",
    "415": "Wrong content type",
    "422": "Invalid field values",
    "429": "Too many failed authentication attempts",
    "503": "Database or evidence store unavailable (nothing was recorded)",
}


def _with_common_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """Every operation documents the error answers any request can get, in the one error shape."""
    for ops in spec["paths"].values():
        for op in ops.values():
            for code, desc in COMMON_ERRORS.items():
                op["responses"].setdefault(code, _err(desc))
    return spec


SPEC = _with_common_errors(SPEC)


@bp.get("/openapi.json")
def openapi_document():
    return jsonify(SPEC)

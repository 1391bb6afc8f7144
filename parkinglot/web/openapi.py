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
                   "goes to an attendant.")

PLATE_EVENT = {
    "type": "object",
    "required": ["plate", "confidence"],
    "properties": {
        "plate": {"type": "string", "description": "As read by the camera, A-Z and 0-9 (ASCII; spaces, dashes "
                  "and dots are dropped); empty string if no plate was read"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1, "description": "A number; true/false are refused"},
        "event_id": {"type": "string", "pattern": "^[A-Za-z0-9._:\\-]{1,64}$", "description": EVENT_ID_DOC},
        "captured_at": {"type": "string", "format": "date-time", "description": CAPTURED_AT_DOC},
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
        "captured_at": {"type": "string", "format": "date-time", "description": CAPTURED_AT_DOC},
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


def _err(desc: str) -> dict[str, Any]:
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _ok(desc: str, schema: str) -> dict[str, Any]:
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


DEVICE = [{"deviceKey": []}]
USER = [{"consoleSession": []}, {"basicAuth": []}]

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "parkinglot API", "version": __version__,
             "description": "Lane controllers (device keys) and console users (session or Basic auth). "
                            "Any non-2xx answer to a lane event means: do not open."},
    "servers": [{"url": "/api/v1"}],
    "components": {
        "securitySchemes": {
            "deviceKey": {"type": "http", "scheme": "bearer", "description": "Device API key"},
            "basicAuth": {"type": "http", "scheme": "basic"},
            "consoleSession": {"type": "apiKey", "in": "cookie", "name": "session"},
        },
        "schemas": {"Error": ERROR, "EventReply": EVENT_REPLY, "PlateEvent": PLATE_EVENT, "FrameEvent": FRAME_EVENT,
                    "Recognition": RECOGNITION, "LaneState": LANE_STATE, "Revenue": REVENUE},
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
                    "properties": {"decision_id": {"type": "integer", "minimum": 1},
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
                        "no_vehicle": {"type": "boolean"}}}}}},
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

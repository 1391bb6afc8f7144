"""Typed errors raised by services. The web layer maps each to one HTTP status."""
from __future__ import annotations


class ParkingError(Exception):
    """Base class. ``code`` is a stable machine-readable identifier."""

    code = "error"
    status = 400

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(ParkingError):
    code = "not_found"
    status = 404


class InvalidInput(ParkingError):
    code = "invalid_input"
    status = 422


class Forbidden(ParkingError):
    code = "forbidden"
    status = 403


class Conflict(ParkingError):
    code = "conflict"
    status = 409


class EvidenceWriteError(ParkingError):
    """The image could not be stored; nothing that points to it may be committed."""

    code = "evidence_write_failed"
    status = 503


class Unavailable(ParkingError):
    code = "unavailable"
    status = 503

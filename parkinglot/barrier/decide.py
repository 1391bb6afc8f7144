"""Barrier decision rules: pure functions over plain facts.

Fail closed: the barrier opens only on an explicit ``open``. Any doubt goes to an
attendant, and anything that smells of theft is denied. The one exception is a
site in emergency (evacuation) mode, where every lane opens and each opening is
recorded by the caller.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal, Optional

Outcome = Literal["open", "deny", "attendant"]
CredentialStatus = Literal["valid", "expired", "suspended", "not_yet_valid", "outside_hours", "revoked"]


@dataclass(frozen=True)
class SiteRules:
    anti_passback: str = "deny"  # deny | attendant | off
    min_confidence: float = 0.6
    emergency: bool = False
    issues_tickets: bool = True
    visitors: str = "open"  # open | attendant | refuse: who may enter without a credential
    free_format_min_confidence: float = 0.8


@dataclass(frozen=True)
class Credential:
    """A permit or a visitor pass that names this plate, and whether it holds right now.

    ``lapsed_on`` is the local date a lapsed credential (expired, revoked, cancelled,
    withdrawn) stopped holding; the caller passes only those that lapsed recently enough
    to matter (the site's ``lapsed_credential_days``).
    """

    kind: Literal["permit", "visitor_pass"]
    id: int
    status: CredentialStatus
    lapsed_on: Optional[date] = None


@dataclass(frozen=True)
class StopHit:
    """A hotlist entry or vehicle lock that the read matches, exactly or as a look-alike."""

    kind: Literal["hotlist", "lock"]
    id: int
    plate: str  # the listed plate
    exact: bool
    note: str = ""

    @property
    def alert_kind(self) -> str:
        return "hotlist" if self.kind == "hotlist" else "locked_vehicle"

    @property
    def reason(self) -> str:
        if self.kind == "hotlist":
            return "hotlisted" if self.exact else "hotlist_lookalike"
        return "vehicle_locked" if self.exact else "lock_lookalike"


# Whether a read has the shape of a plate of the site's regions: a regular serial, only the
# free-form (vanity) pattern, or nothing the site's regions issue.
FormatFit = Literal["serial", "free", "none"]


@dataclass(frozen=True)
class EntryFacts:
    plate: str
    confidence: float
    already_inside: bool = False
    credential: Optional[Credential] = None
    site_full: bool = False
    stop: Optional[StopHit] = None  # the strongest hotlist/lock hit, exact or look-alike
    format_fit: FormatFit = "serial"


@dataclass(frozen=True)
class ExitFacts:
    plate: str
    confidence: float
    match: Literal["paired", "needs_attendant", "refused"]
    match_reason: str
    alert_kind: Optional[str] = None
    ticket_matched: bool = False
    fee_due_minor: int = 0
    captured_before_entry: bool = False  # the controller's clock says the car left before it came


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str
    message: str
    alert_kind: Optional[str] = None
    open_stay: bool = False  # entry: start a stay
    close_stay: bool = False  # exit: close the paired stay
    issue_ticket: bool = False
    supersede_stay: bool = False  # entry with anti-passback off: void the stale stay

    @property
    def opens(self) -> bool:
        return self.outcome == "open"


WAIT = "Please wait: an attendant will assist"


def _attendant(reason: str, message: str = WAIT, alert_kind: Optional[str] = None) -> Decision:
    return Decision("attendant", reason, message, alert_kind)


def _deny(reason: str, message: str, alert_kind: Optional[str] = None) -> Decision:
    return Decision("deny", reason, message, alert_kind)


CREDENTIAL_MESSAGES = {
    "expired": "Permit or pass has expired",
    "suspended": "Permit is suspended",
    "not_yet_valid": "Permit or pass is not valid yet",
    "outside_hours": "Permit is not valid at this hour",
    "revoked": "Permit or pass was revoked",
}


def _credential_refused(cred: Credential) -> Decision:
    message = CREDENTIAL_MESSAGES.get(cred.status, "Please wait")
    if cred.lapsed_on is not None:
        word = "expired" if cred.status == "expired" else "withdrawn"
        message = f"Credential {word} on {cred.lapsed_on.isoformat()}: an attendant will assist"
    return _attendant(f"{cred.kind}_{cred.status}", message)


def decide_entry(facts: EntryFacts, rules: SiteRules) -> Decision:
    stop = facts.stop
    if rules.emergency:
        return Decision("open", "emergency_mode", "Emergency: barrier open", stop.alert_kind if stop else None,
                        open_stay=bool(facts.plate) and not facts.already_inside)
    if not facts.plate:
        return _attendant("no_plate_read")
    if stop is not None:
        if stop.kind == "hotlist" and stop.exact:
            return _deny("hotlisted", "Entry refused: please contact the attendant", "hotlist")
        # a look-alike of a stopped plate, or a locked vehicle: never opens, a person looks
        return _attendant(stop.reason, alert_kind=stop.alert_kind)
    if facts.confidence < rules.min_confidence:
        return _attendant("low_confidence")
    if facts.already_inside:
        if rules.anti_passback == "deny":
            return _deny("already_inside", "Entry refused: this vehicle is already inside")
        if rules.anti_passback == "attendant":
            return _attendant("already_inside")
    supersede = facts.already_inside and rules.anti_passback == "off"
    cred = facts.credential
    if cred is not None:
        if cred.status == "valid":
            return Decision("open", f"{cred.kind}_valid", "Welcome", open_stay=True, supersede_stay=supersede)
        return _credential_refused(cred)
    # an unknown vehicle: the site's visitor policy, then whether the read looks like a plate
    if rules.visitors == "refuse":
        return _deny("visitors_not_admitted", "Entry for registered vehicles only")
    if rules.visitors != "open":
        return _attendant("visitor_needs_attendant")
    if facts.format_fit == "none":
        return _attendant("plate_format_unknown")
    if facts.format_fit == "free" and facts.confidence < rules.free_format_min_confidence:
        return _attendant("free_format_low_confidence")
    if facts.site_full:
        return _deny("site_full", "Car park full")
    return Decision("open", "visitor", "Welcome: please take your ticket" if rules.issues_tickets else "Welcome",
                    open_stay=True, issue_ticket=rules.issues_tickets, supersede_stay=supersede)


def decide_exit(facts: ExitFacts, rules: SiteRules) -> Decision:
    if rules.emergency:
        return Decision("open", "emergency_mode", "Emergency: barrier open", facts.alert_kind,
                        close_stay=facts.match == "paired")
    if facts.match == "refused":
        return _deny(facts.match_reason, "Exit refused: please contact the attendant", facts.alert_kind)
    if facts.match == "needs_attendant":
        return _attendant(facts.match_reason, alert_kind=facts.alert_kind)
    if facts.captured_before_entry:
        return _attendant("exit_before_entry")
    if facts.confidence < rules.min_confidence and not facts.ticket_matched:
        return _attendant("low_confidence")
    if facts.fee_due_minor > 0:
        return _deny("payment_required", "Please pay at the pay station")
    return Decision("open", facts.match_reason, "Goodbye", close_stay=True)


def failure(reason: str, direction: str, *, emergency: bool = False) -> Decision:
    """What a lane gets when we could not decide (error, timeout, undecodable frame)."""
    if emergency:
        return Decision("open", "emergency_mode", "Emergency: barrier open")
    return _attendant(reason)

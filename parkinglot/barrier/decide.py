"""Barrier decision rules: pure functions over plain facts.

Fail closed: the barrier opens only on an explicit ``open``. Any doubt goes to an
attendant, and anything that smells of theft is denied. The one exception is a
site in emergency (evacuation) mode, where every lane opens and each opening is
recorded by the caller.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

Outcome = Literal["open", "deny", "attendant"]
CredentialStatus = Literal["valid", "expired", "suspended", "not_yet_valid", "outside_hours", "revoked"]


@dataclass(frozen=True)
class SiteRules:
    anti_passback: str = "deny"  # deny | attendant | off
    min_confidence: float = 0.6
    emergency: bool = False
    issues_tickets: bool = True


@dataclass(frozen=True)
class Credential:
    """A permit or a visitor pass that names this plate, and whether it holds right now."""

    kind: Literal["permit", "visitor_pass"]
    id: int
    status: CredentialStatus


@dataclass(frozen=True)
class EntryFacts:
    plate: str
    confidence: float
    hotlisted: bool = False
    already_inside: bool = False
    credential: Optional[Credential] = None
    site_full: bool = False


@dataclass(frozen=True)
class ExitFacts:
    plate: str
    confidence: float
    match: Literal["paired", "needs_attendant", "refused"]
    match_reason: str
    alert_kind: Optional[str] = None
    ticket_matched: bool = False
    fee_due_minor: int = 0


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


def _attendant(reason: str, message: str, alert_kind: Optional[str] = None) -> Decision:
    return Decision("attendant", reason, message, alert_kind)


def _deny(reason: str, message: str, alert_kind: Optional[str] = None) -> Decision:
    return Decision("deny", reason, message, alert_kind)


CREDENTIAL_MESSAGES = {
    "expired": "Permit or pass has expired",
    "suspended": "Permit is suspended",
    "not_yet_valid": "Permit or pass is not valid yet",
    "outside_hours": "Permit is not valid at this hour",
    "revoked": "Visitor pass was revoked",
}


def decide_entry(facts: EntryFacts, rules: SiteRules) -> Decision:
    if rules.emergency:
        return Decision("open", "emergency_mode", "Emergency: barrier open",
                        "hotlist" if facts.hotlisted else None, open_stay=bool(facts.plate) and not facts.already_inside)
    if not facts.plate:
        return _attendant("no_plate_read", "Please wait: an attendant will assist")
    if facts.hotlisted:
        return _deny("hotlisted", "Entry refused: please contact the attendant", "hotlist")
    if facts.confidence < rules.min_confidence:
        return _attendant("low_confidence", "Please wait: an attendant will assist")
    if facts.already_inside:
        if rules.anti_passback == "deny":
            return _deny("already_inside", "Entry refused: this vehicle is already inside")
        if rules.anti_passback == "attendant":
            return _attendant("already_inside", "Please wait: an attendant will assist")
    supersede = facts.already_inside and rules.anti_passback == "off"
    cred = facts.credential
    if cred is not None:
        if cred.status == "valid":
            return Decision("open", f"{cred.kind}_valid", "Welcome", open_stay=True, supersede_stay=supersede)
        return _attendant(f"{cred.kind}_{cred.status}", CREDENTIAL_MESSAGES.get(cred.status, "Please wait"))
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
        return _attendant(facts.match_reason, "Please wait: an attendant will assist")
    if facts.confidence < rules.min_confidence and not facts.ticket_matched:
        return _attendant("low_confidence", "Please wait: an attendant will assist")
    if facts.fee_due_minor > 0:
        return _deny("payment_required", "Please pay at the pay station")
    return Decision("open", facts.match_reason, "Goodbye", close_stay=True)


def failure(reason: str, direction: str, *, emergency: bool = False) -> Decision:
    """What a lane gets when we could not decide (error, timeout, undecodable frame)."""
    if emergency:
        return Decision("open", "emergency_mode", "Emergency: barrier open")
    return _attendant(reason, "Please wait: an attendant will assist")

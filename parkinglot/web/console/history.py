"""Audit histories as an attendant reads them: local times, names instead of ids, and sentences.

The audit trail stores canonical JSON with ids, UTC instants and keyed digests of plates
(``hmac:…``). Pages that explain a stay, an alert or a dispute show each event as one
sentence in the site's time zone, naming people and lanes; the digests are left out (they
mean nothing to a person; ``parkinglot audit verify`` and an evidence bundle keep them).
Events this module has no sentence for still read as "what: field value, ..." with the same
clean-ups, so a new kind of event is never shown as a dict.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable, Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...records.models import AuditEvent, Lane, Site, User
from . import formatting

DIGEST = re.compile(r"hmac:[0-9a-f]{6,}")
HIDDEN = "[plate]"
CAUSES = {"confirm_match": "a confirmed match", "manual_exit": "a manual exit", "emergency_exit": "an emergency exit"}


@dataclass(frozen=True)
class Line:
    at: str  # local time with seconds and zone abbreviation
    who: str
    what: str  # one sentence


class _Names:
    """People and lanes named in a batch of events, loaded with one query each."""

    def __init__(self, session: Session, site: Site, events: list[tuple[AuditEvent, dict[str, Any]]]) -> None:
        self.site = site
        user_ids = {int(e.actor_id) for e, _ in events if e.actor_type == "user" and (e.actor_id or "").isdigit()}
        for _, data in events:
            for key in ("user_id", "approved_by", "opened_by", "resolved_by"):
                if isinstance(data.get(key), int):
                    user_ids.add(data[key])
        usernames = {data[key] for _, data in events for key in ("approved_by", "by", "user")
                     if isinstance(data.get(key), str)}
        found = list(session.scalars(select(User).where(User.id.in_(user_ids) | User.username.in_(usernames)))
                     ) if user_ids or usernames else []
        self.people = {u.id: u for u in found}
        self.usernames = {u.username: u for u in found}
        self.lanes = {lane.id: lane for lane in session.scalars(select(Lane).where(Lane.site_id == site.id))}
        self.lane_codes = {lane.code: lane for lane in self.lanes.values()}

    def person(self, user_id: Any) -> str:
        user = self.people.get(user_id) if isinstance(user_id, int) else None
        if user is None:
            return f"user #{user_id}" if user_id is not None else "someone"
        return user.display_name or user.username

    def named(self, username: Any, default: str = "someone") -> str:
        """A username recorded in an event's data, as the person's name."""
        user = self.usernames.get(username) if isinstance(username, str) else None
        return (user.display_name or user.username) if user is not None else (str(username) if username else default)

    def lane(self, ref: Any) -> str:
        lane = self.lanes.get(ref) if isinstance(ref, int) else self.lane_codes.get(ref)
        return f"{lane.name} ({lane.code})" if lane is not None else (str(ref) if ref else "no lane")

    def time(self, value: Any) -> str:
        at = _instant(value)
        return formatting.local_time(at, self.site, seconds=True) if at else str(value)

    def money(self, minor: Any, currency: Optional[str] = None) -> str:
        return formatting.money(int(minor), currency or self.site.currency) if isinstance(minor, int) else "—"


def _instant(value: Any) -> Optional[datetime]:
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            return None
        return at if at.tzinfo is not None else None
    return None


def clean(text: Any) -> str:
    """A value as text with every plate digest hidden."""
    return DIGEST.sub(HIDDEN, str(text))


def _quote(text: Any) -> str:
    return f"“{clean(text)}”" if text else ""


def _words(code: Any) -> str:
    return str(code or "").replace("_", " ")


def _with(reason: Any) -> str:
    return f": {_quote(reason)}" if reason else ""


def _alert_kind(kind: Any) -> str:
    from .templating import ALERT_KINDS  # the console's names for alert kinds

    return ALERT_KINDS.get(kind, _words(kind))


Sentence = Callable[[dict[str, Any], _Names], str]

SENTENCES: dict[str, Sentence] = {
    "stay.opened": lambda d, n: (
        f"Stay opened: entered {n.time(d.get('entered_at'))} at {n.lane(d.get('lane_id'))}"
        + (", with a ticket" if d.get("ticket") else "")
        + (", on a permit" if d.get("permit_id") else "")
        + (", on a visitor pass" if d.get("visitor_pass_id") else "") + "."),
    "stay.closed": lambda d, n: (
        f"Stay closed ({_words(d.get('reason'))}): left {n.time(d.get('exited_at'))} at {n.lane(d.get('lane_id'))}"
        + (f", billed {n.money(d.get('fee_minor'))}" if d.get("fee_minor") is not None else "") + "."),
    "stay.void": lambda d, n: f"Stay voided ({_words(d.get('reason'))}) at {n.time(d.get('exited_at'))}.",
    "stay.expired": lambda d, n: f"Stay marked expired: inside longer than {d.get('max_stay_hours')} h.",
    "stay.admitted": lambda d, n: f"Admitted by hand at {n.lane(d.get('lane'))}{_with(d.get('reason'))}.",
    "stay.match_confirmed": lambda d, n: f"Match confirmed at {n.lane(d.get('lane'))}{_with(d.get('reason'))}.",
    "stay.stop_overridden": lambda d, n: (
        f"Hotlist or lock overridden at {n.lane(d.get('lane'))}{_with(d.get('reason'))}."),
    "stay.left_unpaid": lambda d, n: (
        f"Left owing {n.money(d.get('amount_minor'), d.get('currency'))} after "
        f"{CAUSES.get(d.get('cause'), _words(d.get('cause')))}, approved by {n.named(d.get('approved_by'), 'emergency mode')}"
        f"{_with(d.get('reason'))}."),
    "stay.balance_written_off": lambda d, n: (
        f"{n.money(d.get('amount_minor'), d.get('currency'))} written off by {n.named(d.get('by'))}{_with(d.get('reason'))}."),
    "lane.decision": lambda d, n: (
        f"{n.lane(d.get('lane'))} told the barrier: {d.get('outcome')} ({_words(d.get('reason'))})"
        + (f", {n.money(d.get('fee_due_minor'))} to pay" if d.get("fee_due_minor") else "")
        + (f"; photo taken {n.time(d.get('captured_at'))} by the controller's clock"
           if d.get("captured_at") and d.get("captured_at") != d.get("received_at") else "") + "."),
    "lane.manual_open": lambda d, n: (
        f"Barrier at {n.lane(d.get('lane'))} opened by hand" +
        (" (no car passed)" if d.get("no_vehicle") else "") + f"{_with(d.get('reason'))}."),
    "lane.passage": lambda d, n: f"The car passed the barrier at {n.lane(d.get('lane'))}.",
    "payment.recorded": lambda d, n: (
        f"Payment of {n.money(d.get('amount_minor'), d.get('currency'))} by {_words(d.get('method'))}"
        + (f", reference {_quote(d.get('reference'))}" if d.get("reference") else "")
        + (f", paid until {n.time(d.get('paid_until'))}" if d.get("paid_until") else "") + "."),
    "payment.refunded": lambda d, n: (
        f"Refund of {n.money(d.get('amount_minor'), d.get('currency'))}{_with(d.get('reason'))}."),
    "payment.adjusted": lambda d, n: f"Adjustment of {n.money(d.get('amount_minor'))}{_with(d.get('reason'))}.",
    "payment.voided": lambda d, n: (
        f"Payment of {n.money(abs(d.get('amount_minor')), d.get('currency'))} voided{_with(d.get('reason'))}."),
    "alert.raised": lambda d, n: (
        f"Alert raised: {_alert_kind(d.get('kind'))}" + (f" at {n.lane(d.get('lane_id'))}" if d.get("lane_id") else "")
        + "."),
    "alert.acknowledged": lambda d, n: f"Alert acknowledged{_with(d.get('note'))}.",
    "alert.resolved": lambda d, n: f"Alert resolved{_with(d.get('note'))}.",
    "dispute.opened": lambda d, n: f"Dispute opened{_with(d.get('reason'))}.",
    "dispute.resolved": lambda d, n: (
        f"Dispute resolved: {_words(d.get('outcome'))}"
        + (f", fee {n.money(d.get('fee_before_minor'))} → {n.money(d.get('fee_after_minor'))}"
           if d.get("fee_after_minor") is not None and d.get("fee_after_minor") != d.get("fee_before_minor") else "")
        + f"{_with(d.get('note'))}."),
    "evidence.exported": lambda d, n: f"Evidence bundle exported{_with(d.get('reason'))}.",
}

SKIPPED = frozenset({"plate", "plates", "vehicles", "ticket", "user", "read_id", "decision_id", "event_id"})


def generic(action: str, data: dict[str, Any], names: _Names) -> str:
    """An event without a sentence of its own: its name, then its fields in words."""
    parts = []
    for key, value in data.items():
        if key in SKIPPED or value in (None, "", [], {}):
            continue
        if key.endswith("_minor") and isinstance(value, int):
            shown = names.money(value, data.get("currency"))
            key = key[: -len("_minor")]
        elif key in ("lane", "lane_id"):
            shown, key = names.lane(value), "lane"
        elif key in ("user_id", "approved_by", "opened_by", "resolved_by", "by", "user"):
            shown = names.person(value) if isinstance(value, int) else names.named(value)
            key = "by" if key == "user_id" else key
        elif _instant(value) is not None:
            shown = names.time(value)
        elif isinstance(value, dict):
            shown = "(" + ", ".join(f"{_words(k)} {clean(v)}" for k, v in value.items()) + ")"
        elif isinstance(value, list):
            shown = ", ".join(clean(v) for v in value)
        else:
            shown = clean(value)
        parts.append(f"{_words(key)} {shown}")
    head = _words(action.replace(".", " "))
    return f"{head[:1].upper()}{head[1:]}" + (f": {', '.join(parts)}." if parts else ".")


def describe(event: AuditEvent, data: dict[str, Any], names: _Names) -> str:
    sentence = SENTENCES.get(event.action)
    if sentence is not None:
        try:
            return sentence(data, names)
        except (TypeError, ValueError, AttributeError):  # an older event's shape: still readable
            pass
    return generic(event.action, data, names)


def _who(event: AuditEvent, names: _Names) -> str:
    if event.actor_type == "user":
        return names.person(int(event.actor_id)) if (event.actor_id or "").isdigit() else "a user"
    if event.actor_type == "device":
        return f"controller #{event.actor_id}"
    return {"system": "the system", "emergency": "emergency mode"}.get(event.actor_type, event.actor_type)


def _data(event: AuditEvent) -> dict[str, Any]:
    try:
        data = json.loads(event.data or "{}")
    except ValueError:
        return {"data": event.data}
    return data if isinstance(data, dict) else {"data": data}


def lines(session: Session, events: Iterable[AuditEvent], site: Site) -> list[Line]:
    """The events as lines for a page: local time, who, one sentence each."""
    parsed = [(e, _data(e)) for e in events]
    names = _Names(session, site, parsed)
    return [Line(formatting.local_time(e.at, site, seconds=True), _who(e, names), describe(e, d, names))
            for e, d in parsed]

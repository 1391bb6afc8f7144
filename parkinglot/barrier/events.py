"""Lane events: store the read and its evidence, decide, act, and record the decision.

This is the service behind ``POST /api/v1/lanes/<lane>/events``. It runs inside
the caller's transaction and only flushes; the caller commits and only then
replies, so a lane is never told ``open`` without a stored record behind it.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Optional, Sequence

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import plates
from ..billing import balances, fees
from ..lpr import formats
from ..records import alerts, audit, entry_checks, evidence, lookup, matching, permits, reads, stays, vehicles, wallclock
from ..records.evidence import EvidenceStore
from ..records.models import Alert, BarrierCommand, Decision as DecisionRow, Lane, LanePassage, ParkingSession, PlateRead
from ..records.models import Site, Zone
from ..records.reads import StoredRead
from ..records.sites import currency_exponent
from ..records.types import utcnow
from . import decide

log = logging.getLogger("parkinglot.lane")

REENTRY_LOOKBACK = timedelta(hours=24)


@dataclass(frozen=True)
class Reading:
    """What was read at the lane, by our pipeline or by the camera itself."""

    plate: str
    raw_text: str = ""
    confidence: float = 0.0
    alternatives: tuple[tuple[str, float], ...] = ()
    box: Optional[list[Any]] = None
    timings: dict[str, float] = field(default_factory=dict)
    no_plate_reason: Optional[str] = None
    source: str = "pipeline"
    region: str = "us"
    best_frame: int = 0


@dataclass(frozen=True)
class Frame:
    data: bytes
    content_type: str
    width: Optional[int] = None
    height: Optional[int] = None


@dataclass(frozen=True)
class LaneEvent:
    """One lane event. ``received_at`` is the server's clock and decides everything live;
    ``captured_at`` is the controller's clock, recorded as a fact and never trusted."""

    lane_id: int
    captured_at: datetime
    received_at: datetime
    reading: Reading
    device_id: Optional[int] = None
    event_id: Optional[str] = None
    frames: tuple[Frame, ...] = ()
    ticket: Optional[str] = None
    request_digest: Optional[str] = None  # ``request_digest(...)`` of what the controller sent


def request_digest(key: bytes, lane_id: int, *, plate: str = "", frames: Sequence[bytes] = (),
                   ticket: Optional[str] = None) -> str:
    """The fingerprint an event id is bound to: the lane, the plate a camera sent or the
    SHA-256 of every frame, and the ticket. Keyed (HMAC, the instance's audit plate key
    ``audit.plate_key(session)``), so it does not give the plate away."""
    shas = ",".join(hashlib.sha256(data).hexdigest() for data in frames)
    return audit.keyed_digest(key, "lane-event", str(lane_id), plate, shas, ticket or "")


@dataclass(frozen=True)
class Reply:
    decision: str
    reason: str
    plate: str
    confidence: float
    session_id: Optional[int]
    fee_due: Optional[str]
    currency: str
    message_for_display: str
    event_id: Optional[str] = None
    read_id: Optional[int] = None
    decision_id: Optional[int] = None
    ticket: Optional[str] = None
    candidates: tuple[str, ...] = ()
    visitor_pass: Optional[str] = None  # a stay on a visitor pass: what the pass changed about the fee

    def to_json(self) -> dict[str, Any]:
        # the fields are plain values: a shallow dict is what asdict() built, without its deep copy
        data = {name: getattr(self, name) for name in _REPLY_FIELDS}
        data["candidates"] = list(self.candidates)
        return data


_REPLY_FIELDS = tuple(f.name for f in fields(Reply))


@dataclass(frozen=True)
class Outcome:
    reply: Reply
    barrier_command_id: Optional[int] = None
    replayed: bool = False
    status: int = 200  # HTTP status: 409 for a different request under a used event id


def money(amount_minor: Optional[int], currency: str) -> Optional[str]:
    if amount_minor is None:
        return None
    exp = currency_exponent(currency)
    return str((Decimal(amount_minor) / (Decimal(10) ** exp)).quantize(Decimal(1).scaleb(-exp)))


DEFAULT_REPLAY_WINDOW_S = 600
# A stored refusal that a payment can lift: the retry of such an exit is decided again.
RETRY_REDECIDES = frozenset({"payment_required"})

_DECISION_OF_READ = select(DecisionRow).where(DecisionRow.read_id == bindparam("read_id"))  # built once
# The newest decision made for an event id: its first read's, or a re-decided retry's.
_LATEST_DECISION_OF_EVENT = (
    select(DecisionRow).join(PlateRead, PlateRead.id == DecisionRow.read_id)
    .where((PlateRead.id == bindparam("read_id")) | (PlateRead.retry_of_id == bindparam("read_id")))
    .order_by(DecisionRow.id.desc()).limit(1)
)


@dataclass(frozen=True)
class PriorEvent:
    """What a lane's earlier use of an event id left: its first read and newest decision."""

    read: PlateRead
    decision: Optional[DecisionRow]

    def verdict(self, digest: Optional[str], received_at: datetime, window_s: int) -> str:
        """``replay`` (the same request, retried in time), ``redecide`` (the same request, whose
        stored refusal a payment may have lifted) or ``conflict`` (anything else)."""
        same = self.read.request_digest is not None and self.read.request_digest == digest
        if not same or received_at - self.read.received_at > timedelta(seconds=window_s):
            return "conflict"
        if self.decision is not None and self.decision.reason in RETRY_REDECIDES:
            return "redecide"
        return "replay"

    def stored_outcome(self) -> Outcome:
        row = self.decision
        if row is None:  # pragma: no cover - read and decision are committed together
            raise RuntimeError(f"read {self.read.id} has no decision")
        stored = {**row.response, "decision_id": row.id, "candidates": tuple(row.response.get("candidates", ()))}
        return Outcome(Reply(**{k: v for k, v in stored.items() if k in _REPLY_FIELDS}), replayed=True)


def prior_event(session: Session, lane_id: int, event_id: str) -> Optional[PriorEvent]:
    read = reads.find_by_event(session, lane_id, event_id)
    if read is None:
        return None
    return PriorEvent(read, session.scalar(_LATEST_DECISION_OF_EVENT, {"read_id": read.id}))


def replay(session: Session, lane_id: int, event_id: str, digest: str, received_at: datetime,
           window_s: int = DEFAULT_REPLAY_WINDOW_S) -> Optional[Outcome]:
    """The stored reply, if this is a timely retry of a recorded event with the same request
    (the lane API asks before paying for recognition). Anything else (a new event, a paid
    retry, a conflict) returns None: ``process`` decides it."""
    prior = prior_event(session, lane_id, event_id)
    if prior is None or prior.verdict(digest, received_at, window_s) != "replay":
        return None
    return prior.stored_outcome()


def _site_rules(site: Site) -> decide.SiteRules:
    return decide.SiteRules(anti_passback=site.anti_passback, min_confidence=site.min_confidence,
                            emergency=site.emergency_mode, issues_tickets=site.issues_tickets,
                            visitors=site.visitors, free_format_min_confidence=site.free_format_min_confidence)


def _site_full(session: Session, site: Site, lane: Lane) -> bool:
    def open_count(*conds) -> int:
        return session.scalar(select(func.count()).select_from(ParkingSession)
                              .where(ParkingSession.site_id == site.id, ParkingSession.status == "open", *conds)) or 0

    if site.capacity is not None and open_count() >= site.capacity:
        return True
    if lane.zone_id is not None:
        zone = session.get(Zone, lane.zone_id)
        if zone is not None and zone.capacity is not None and open_count(ParkingSession.zone_id == zone.id) >= zone.capacity:
            return True
    return False


@dataclass(frozen=True)
class AlertToRaise:
    kind: str
    message: str


def _raise_once(session: Session, *, site_id: int, lane_id: int, kind: str, plate: str, read_id: int,
                session_id: Optional[int], message: str, window_s: int) -> None:
    """One alert per vehicle, lane and kind within the duplicate window (repeated reads of one car)."""
    recent = session.scalar(
        select(Alert.id).where(Alert.site_id == site_id, Alert.lane_id == lane_id, Alert.kind == kind,
                               Alert.plate == plate, Alert.status == "open",
                               Alert.created_at >= utcnow() - timedelta(seconds=max(window_s, 1))).limit(1)
    )
    if recent is None:
        alerts.raise_alert(session, site_id=site_id, kind=kind, plate=plate, lane_id=lane_id, read_id=read_id,
                           session_id=session_id, message=message)


ALERT_MESSAGES = {
    "hotlist": "Hotlisted vehicle {plate} at {lane}",
    "no_entry": "Exit attempt by {plate} at {lane} with no matching entry",
    "ticket_mismatch": "Ticket presented at {lane} belongs to another vehicle than {plate}",
    "locked_vehicle": "Locked vehicle {plate} tried to leave at {lane}",
}


def _alert_for(d: decide.Decision, stop: Optional[decide.StopHit], plate: str, lane: Lane) -> list[AlertToRaise]:
    """The alert a decision raises; a stop-list hit names the entry it matched."""
    if not d.alert_kind:
        return []
    if stop is not None and stop.alert_kind == d.alert_kind:
        return [AlertToRaise(d.alert_kind, f"{vehicles.describe(stop, plate or 'unknown vehicle')}, at {lane.name}")]
    template = ALERT_MESSAGES.get(d.alert_kind, "{kind} at {lane}")
    return [AlertToRaise(d.alert_kind, template.format(plate=plate or "unknown vehicle", lane=lane.name,
                                                       kind=d.alert_kind))]


def process(session: Session, store: EvidenceStore, ev: LaneEvent, *,
            replay_window_s: int = DEFAULT_REPLAY_WINDOW_S, check_prior: bool = True) -> Outcome:
    """Record one lane event and decide. Flushes only; the caller commits, then replies.

    An event id binds the request sent with it: the same request retried within
    ``replay_window_s`` gets the stored reply (a stored ``payment_required`` is decided
    again, since paying is the point of the retry); a different request, or one too
    late, is recorded and refused with HTTP 409 and an alert.

    No savepoints on this hot path: if a concurrent request wins a race (the same
    event id, or the same plate admitted at another lane in the same instant) the
    database raises IntegrityError. Roll back and call again: the second run replays
    the stored reply or decides with the new facts (``process_with_retry``). That retry is
    also how a used event id is found when ``check_prior`` is False (one query fewer for
    the usual, new event).
    """
    retry_of: Optional[PlateRead] = None
    if ev.event_id and check_prior:
        prior = prior_event(session, ev.lane_id, ev.event_id)
        if prior is not None:
            verdict = prior.verdict(ev.request_digest, ev.received_at, replay_window_s)
            if verdict == "replay":
                return prior.stored_outcome()
            if verdict == "conflict":
                return _conflict(session, store, ev, prior)
            retry_of = prior.read
    lane = session.get(Lane, ev.lane_id)
    site = session.get(Site, lane.site_id)
    r = ev.reading
    read_input = _read_input(session, store, ev, lane, retry_of_id=retry_of.id if retry_of else None)
    original = reads.find_recent_duplicate(session, lane, r.plate, ev.received_at, site.duplicate_window_s)
    read = reads.insert_read(session, read_input, duplicate_of_id=original.id if original else None)
    if original is not None:
        repeated = _repeat_open(session, site, lane, original, read, ev)
        if repeated is not None:
            return repeated
    rules = _site_rules(site)
    if lane.direction == "entry":
        return _entry(session, site, lane, read, ev, rules)
    return _exit(session, site, lane, read, ev, rules)


def _read_input(session: Session, store: EvidenceStore, ev: LaneEvent, lane: Lane, *,
                retry_of_id: Optional[int] = None, reused_event_id: Optional[str] = None) -> reads.ReadInput:
    """The read to store for ``ev``, its frames saved as evidence first."""
    r = ev.reading
    frames = [evidence.save_image(session, store, f.data, content_type=f.content_type, width=f.width, height=f.height)
              for f in ev.frames]
    # a retry or a reused id is stored without the event id: (lane, event id) stays unique
    event_id = None if (retry_of_id or reused_event_id) else ev.event_id
    return reads.ReadInput(
        lane=lane, captured_at=ev.captured_at, received_at=ev.received_at, plate=r.plate, raw_text=r.raw_text,
        confidence=r.confidence, candidates=[{"text": t, "confidence": round(c, 4)} for t, c in r.alternatives],
        box=r.box, region=r.region, source=r.source, event_id=event_id, device_id=ev.device_id, ticket=ev.ticket,
        no_plate_reason=r.no_plate_reason, timings=r.timings, frames=frames,
        best_frame=min(r.best_frame, max(len(frames) - 1, 0)), request_digest=ev.request_digest,
        retry_of_id=retry_of_id, reused_event_id=reused_event_id,
    )


def _conflict(session: Session, store: EvidenceStore, ev: LaneEvent, prior: PriorEvent) -> Outcome:
    """A different request under a used event id: recorded with its photos, never opens (409).

    A controller whose counter restarted after a reboot would otherwise hand old ``open``s to
    new cars. The stop lists are still probed, so a hotlisted car is not missed this way.
    """
    lane = session.get(Lane, ev.lane_id)
    site = session.get(Site, lane.site_id)
    read = reads.insert_read(session, _read_input(session, store, ev, lane, reused_event_id=ev.event_id))
    first = prior.read
    late = ev.received_at - first.received_at
    why = "another request" if first.request_digest != ev.request_digest else "the same request, too late to be a retry"
    raised = [AlertToRaise("event_id_reuse",
                           f"{lane.name} sent {why} under event id {ev.event_id} (first used by read #{first.id}, "
                           f"{int(late.total_seconds())} s earlier); nothing was opened")]
    stop = vehicles.strongest_stop(session, site.id, read.plate)
    if stop is not None:
        raised.append(AlertToRaise(stop.alert_kind, f"{vehicles.describe(stop, read.plate)}, at {lane.name}"))
    d = decide.Decision("attendant", "event_id_reused", decide.WAIT)
    return _record(session, site, lane, read, ev, d, session_id=None, raised=raised, status=409)


_PASSAGE_OF = select(LanePassage.id).where(LanePassage.decision_id == bindparam("decision_id"))


def _repeat_open(session: Session, site: Site, lane: Lane, original: PlateRead, read: StoredRead,
                 ev: LaneEvent) -> Optional[Outcome]:
    """A repeat read of a car just let through, while it is still at the barrier, gets the same
    ``open``; but only while that still holds: the barrier has not reported the car's passage,
    the stay is as the ``open`` left it, no stop list names the plate, and an emergency open is
    repeated only while the emergency lasts. Otherwise the read is decided afresh."""
    first = session.scalar(_DECISION_OF_READ, {"read_id": original.id})
    if first is None or first.outcome != "open":
        return None
    if session.scalar(_PASSAGE_OF, {"decision_id": first.id}) is not None:
        return None
    if first.actor == "emergency" and not site.emergency_mode:
        return None
    stay = session.get(ParkingSession, first.session_id) if first.session_id else None
    if stay is None:
        return None
    if lane.direction == "entry" and stay.status != "open":
        return None
    if lane.direction == "exit" and not (stay.status == "closed" and stay.exit_read_id == original.id):
        return None
    if vehicles.strongest_stop(session, site.id, read.plate) is not None:
        return None
    return _record(session, site, lane, read, ev, decide.Decision("open", first.reason, first.message),
                   session_id=first.session_id, fee_due_minor=first.fee_due_minor, actor="duplicate",
                   ticket=first.response.get("ticket"))


def _lapsed_on(cred: permits.CredentialHit, site: Site) -> Optional[date]:
    if cred.lapsed_at is None:
        return None
    return cred.lapsed_at.astimezone(wallclock.zone(site.timezone)).date()


def _entry(session: Session, site: Site, lane: Lane, read: StoredRead, ev: LaneEvent, rules: decide.SiteRules
           ) -> Outcome:
    at = ev.received_at  # the server's clock decides
    plate = read.plate
    flags = entry_checks.entry_flags(session, site.id, plate)
    stop = vehicles.strongest_stop(session, site.id, plate) if flags.stopped else None
    inside = lookup.open_stay_for(session, site.id, plate) if flags.inside else None
    cred = permits.credential_for(session, site, plate, at) if flags.permit or flags.visitor_pass else None
    facts = decide.EntryFacts(
        plate=plate, confidence=read.confidence,
        already_inside=inside is not None,
        credential=decide.Credential(cred.kind, cred.id, cred.status, _lapsed_on(cred, site)) if cred else None,
        site_full=_site_full(session, site, lane) if plate else False,
        stop=stop,
        format_fit=formats.fit_class(plate, site.plate_regions) if plate else "none",
    )
    d = decide.decide_entry(facts, rules)
    stay: Optional[ParkingSession] = None
    ticket: Optional[str] = None
    if d.supersede_stay and inside is not None:
        stays.close_stay(session, inside, exited_at=at, reason="superseded_by_reentry", status="void")
    if d.open_stay:
        ticket = stays.new_ticket() if d.issue_ticket else None
        tariff = fees.current_tariff(session, site, at)
        previous = None
        if tariff is not None and tariff.rules.get("reentry_min"):  # only tariffs with a re-entry rule care
            previous = session.scalar(
                select(ParkingSession).where(ParkingSession.site_id == site.id, ParkingSession.plate == plate,
                                             ParkingSession.status == "closed",
                                             ParkingSession.exited_at >= at - REENTRY_LOOKBACK,
                                             ParkingSession.exited_at <= at)
                .order_by(ParkingSession.exited_at.desc()).limit(1)
            )
        stay = stays.open_stay(
            session, site_id=site.id, plate=plate, entered_at=at, entry_lane_id=lane.id, entry_read_id=read.id,
            zone_id=lane.zone_id, ticket=ticket, tariff_version_id=tariff.id if tariff else None,
            permit_id=cred.id if cred and cred.kind == "permit" and cred.status == "valid" else None,
            visitor_pass_id=cred.id if cred and cred.kind == "visitor_pass" and cred.status == "valid" else None,
            reentry_of_id=previous.id if previous else None, savepoint=False,
        )
    return _record(session, site, lane, read, ev, d, session_id=stay.id if stay else (inside.id if inside else None),
                   ticket=ticket, raised=_alert_for(d, stop, plate, lane))


def _exit(session: Session, site: Site, lane: Lane, read: StoredRead, ev: LaneEvent, rules: decide.SiteRules
          ) -> Outcome:
    at = ev.received_at  # the server's clock decides: fee, paid-until and grace
    alternatives = [c["text"] for c in read.candidates if c.get("text")]
    m = matching.match_exit(session, site.id, read.plate, ticket=ev.ticket, alternatives=alternatives)
    fee_due = 0
    status: Optional[fees.FeeStatus] = None
    if m.paired and m.session is not None:
        status = fees.fee_status(session, site, m.session, at)
        fee_due = status.due_minor
    facts = decide.ExitFacts(plate=read.plate, confidence=read.confidence, match=m.outcome, match_reason=m.reason,
                             alert_kind=m.alert_kind, ticket_matched=m.reason == "ticket_and_plate",
                             fee_due_minor=fee_due,
                             captured_before_entry=m.session is not None and ev.captured_at < m.session.entered_at)
    d = decide.decide_exit(facts, rules)
    if d.close_stay and m.session is not None:
        try:
            stays.close_stay(session, m.session, exited_at=at, exit_lane_id=lane.id, exit_read_id=read.id,
                             fee_minor=status.total_minor if status else None,
                             reason="emergency_exit" if d.reason == "emergency_mode" else "exit")
        except stays.AlreadyClosed:  # a racing exit read closed it first: this car is not released twice
            d = decide.Decision("attendant", "already_closed", decide.WAIT)
        else:
            if status is not None and status.due_minor > 0:  # only an evacuation lets a car out owing
                balances.record_unpaid(session, site, m.session, due_minor=status.due_minor, cause="emergency_exit",
                                       reason="emergency mode (evacuation): barrier opened without payment",
                                       lane=lane, user=balances.emergency_approver(session, site))
    terms = None
    if m.paired and m.session is not None and m.session.visitor_pass_id:
        terms = f"Visitor pass: {permits.pass_terms(site)}"
    return _record(session, site, lane, read, ev, d, session_id=m.session.id if m.session else None,
                   fee_due_minor=fee_due if d.reason == "payment_required" else None,
                   candidates=tuple(c.plate for c in m.candidates), raised=_alert_for(d, m.stop, read.plate, lane),
                   visitor_pass=terms)


# Built once: one decision per lane event, inserted without the unit of work's overhead.
_INSERT_DECISION = insert(DecisionRow.__table__).returning(DecisionRow.__table__.c.id)


def _record(session: Session, site: Site, lane: Lane, read: StoredRead, ev: LaneEvent, d: decide.Decision, *,
            session_id: Optional[int], fee_due_minor: Optional[int] = None, actor: str = "rule",
            ticket: Optional[str] = None, candidates: tuple[str, ...] = (),
            raised: Sequence[AlertToRaise] = (), status: int = 200, visitor_pass: Optional[str] = None) -> Outcome:
    for alert in raised:
        _raise_once(session, site_id=site.id, lane_id=lane.id, kind=alert.kind, plate=read.plate, read_id=read.id,
                    session_id=session_id, message=alert.message, window_s=site.duplicate_window_s)
    if site.emergency_mode and actor == "rule":
        actor = "emergency"
    reply = Reply(decision=d.outcome, reason=d.reason, plate=read.plate, confidence=round(read.confidence, 4),
                  session_id=session_id, fee_due=money(fee_due_minor, site.currency), currency=site.currency,
                  message_for_display=d.message, event_id=ev.event_id, read_id=read.id, ticket=ticket,
                  candidates=candidates, visitor_pass=visitor_pass)
    session.flush()  # a plain INSERT doesn't autoflush: rows it points to (alert, stay) go first
    decision_id = session.execute(_INSERT_DECISION, dict(
        read_id=read.id, site_id=site.id, lane_id=lane.id, outcome=d.outcome, reason=d.reason, message=d.message,
        session_id=session_id, fee_due_minor=fee_due_minor, actor=actor, user_id=None, shift_id=None,
        response=reply.to_json())).scalar_one()
    reply = Reply(**{**reply.__dict__, "decision_id": decision_id})
    command_id = None
    if d.opens and site.barrier_mode in ("push", "both"):
        cmd = BarrierCommand(lane_id=lane.id, decision_id=decision_id, command="open", status="pending")
        session.add(cmd)
        session.flush()
        command_id = cmd.id
    audit.append(session, "lane.decision", "decision", decision_id,
                 {"lane": lane.code, "event_id": ev.event_id, "read_id": read.id, "plate": read.plate,
                  "outcome": d.outcome, "reason": d.reason, "session_id": session_id, "actor": actor,
                  "fee_due_minor": fee_due_minor, "captured_at": ev.captured_at, "received_at": ev.received_at,
                  "photos": list(read.photos)},
                 actor=audit.Actor.device(ev.device_id) if ev.device_id else audit.SYSTEM, site_id=site.id)
    log.info("lane decision", extra={"lane": lane.code, "event_id": ev.event_id, "plate_read": bool(read.plate),
                                     "confidence": round(read.confidence, 3), "decision": d.outcome,
                                     "reason": d.reason, "session_id": session_id, "actor": actor,
                                     "lpr_ms": read.timings.get("total_ms")})
    return Outcome(reply, command_id, status=status)


def process_with_retry(session: Session, store: EvidenceStore, ev: LaneEvent, *,
                       replay_window_s: int = DEFAULT_REPLAY_WINDOW_S) -> Outcome:
    """``process`` and commit; on a lost race or a used event id, roll back and run once more,
    looking for the event id's earlier use (see ``process``)."""
    try:
        outcome = process(session, store, ev, replay_window_s=replay_window_s, check_prior=False)
        session.commit()
        return outcome
    except IntegrityError:
        session.rollback()
    outcome = process(session, store, ev, replay_window_s=replay_window_s)
    session.commit()
    return outcome


def normalise_plate_input(text: str) -> str:
    """Validate a camera-supplied plate string (raises plates.PlateError)."""
    return plates.validate(text)

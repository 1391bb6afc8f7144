"""Append-only, hash-chained audit trail.

Each event's hash covers its own fields and its predecessor's hash, so editing,
deleting or reordering any event breaks every link after it. The single
``audit_head`` row holds the tip; appenders lock it (``FOR UPDATE`` on PostgreSQL,
the write lock on SQLite), so the chain never forks under concurrency.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

from sqlalchemy import bindparam, event, insert, select, text, update
from sqlalchemy.orm import Session

from ..evidence.chain import GENESIS_HASH, event_hash, hash_middle  # noqa: F401 - re-exported
from .models import AuditEvent, AuditHead
from .types import utcnow



def canonical_json(data: Mapping[str, Any] | None) -> str:
    """Deterministic JSON: sorted keys, no whitespace, non-JSON values as strings."""
    return json.dumps(data or {}, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


# Plates are personal data and the audit trail can never be edited, so the trail holds
# a keyed digest of each plate instead of the plate itself. The records (reads, stays)
# hold the plate; when retention purges them, the trail still verifies and names no one.
# With the instance's key an investigator can still confirm "was it this plate?".
# Tickets are digested too (a ticket leads back to its stay), and so is every other
# occurrence of the event's own plates and tickets in its text (an alert's message, a
# reason typed by an attendant): callers put the plate an event is about in its data.
PLATE_FIELDS = ("plate", "plates", "vehicles", "ticket")
# The key travels with the sessions of one instance (``Session.info``), never in a module
# global: two apps (or a restore that installs another key) in one process each digest
# under their own key. ``session_info(key)`` is what a session factory is given.
PLATE_KEY_INFO = "parkinglot_audit_plate_key"


def session_info(key: bytes) -> dict[str, bytes]:
    """The ``info`` a session factory needs so that its sessions digest plates under ``key``."""
    if not key:
        raise ValueError("the audit plate key must not be empty")
    return {PLATE_KEY_INFO: bytes(key)}


def plate_key(session: Session) -> bytes:
    """The instance's audit plate key carried by ``session`` (set by ``build_context``)."""
    key = session.info.get(PLATE_KEY_INFO)
    if not key:
        raise RuntimeError("this session carries no audit plate key: build its factory with "
                           "make_session_factory(engine, info=audit.session_info(key)) (build_context does)")
    return key


def plate_digest(plate: str, key: bytes) -> str:
    """``hmac:<hex>`` digest of a plate under the instance's audit key ('' stays '')."""
    if not plate:
        return ""
    return "hmac:" + hmac.new(key, plate.encode("utf-8"), hashlib.sha256).hexdigest()[:24]


def keyed_digest(key: bytes, *parts: str) -> str:
    """HMAC-SHA256 (hex) of ``parts`` under the instance's audit key: a fingerprint of a
    request that holds a plate, which can be compared but not turned back into the plate."""
    message = "\x1f".join(parts).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _named_plates(data: Any, found: set[str]) -> set[str]:
    if isinstance(data, Mapping):
        for k, v in data.items():
            if k in PLATE_FIELDS:
                for x in (v if isinstance(v, (list, tuple)) else [v]):
                    if isinstance(x, str) and len(x) >= 2:
                        found.add(x)
            else:
                _named_plates(v, found)
    elif isinstance(data, (list, tuple)):
        for v in data:
            _named_plates(v, found)
    return found


class _TextScrubber:
    """Digests whole-word occurrences of the given plates in text; compiled only when one occurs."""

    def __init__(self, named: set[str], key: bytes) -> None:
        self.named = named
        self.key = key
        self._pattern: Optional[re.Pattern[str]] = None

    def __call__(self, text: str) -> str:
        if not self.named or not any(p in text for p in self.named):
            return text
        if self._pattern is None:
            alternatives = "|".join(map(re.escape, sorted(self.named, key=len, reverse=True)))
            self._pattern = re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])")
        return self._pattern.sub(lambda m: self.digest(m.group(0)), text)

    def digest(self, plate: str) -> str:
        return plate_digest(plate, self.key)


def _pseudonymise(data: Any, scrub: _TextScrubber) -> Any:
    digest = scrub.digest
    if isinstance(data, Mapping):
        out = {}
        for k, v in data.items():
            if k in PLATE_FIELDS:
                out[k] = [digest(x) for x in v] if isinstance(v, (list, tuple)) else digest(v or "")
            else:
                out[k] = _pseudonymise(v, scrub)
        return out
    if isinstance(data, (list, tuple)):
        return [_pseudonymise(v, scrub) for v in data]
    if isinstance(data, str):
        return scrub(data)
    return data


def pseudonymise(data: Any, key: bytes) -> Any:
    """Replace plate and ticket values (keys in PLATE_FIELDS, at any depth) by their digests,
    and every whole-word occurrence of those same values in the event's other strings."""
    return _pseudonymise(data, _TextScrubber(_named_plates(data, set()), key))


@dataclass(frozen=True)
class Actor:
    """Who did it: a user, a device, a rule engine, or the system itself."""

    type: str
    id: Optional[str] = None

    @classmethod
    def user(cls, user_id: int) -> "Actor":
        return cls("user", str(user_id))

    @classmethod
    def device(cls, device_id: int) -> "Actor":
        return cls("device", str(device_id))


SYSTEM = Actor("system")


_PENDING = "parkinglot_audit_pending"
# The id of the last event this session's transaction wrote: the checkpoint hook
# (``records.trail.checkpoints``) reads it after the commit, an integer compare per commit.
WRITTEN = "parkinglot_audit_written"


@dataclass
class PendingEvent:
    """An event queued in a transaction; it gets its id and hash when the transaction commits."""

    at: datetime
    site_id: Optional[int]
    actor_type: str
    actor_id: Optional[str]
    action: str
    entity_type: str
    entity_id: Optional[str]
    data: str
    transaction: Any = None


def append(
    session: Session,
    action: str,
    entity_type: str,
    entity_id: object,
    data: Mapping[str, Any] | None = None,
    *,
    actor: Actor = SYSTEM,
    site_id: Optional[int] = None,
    at: Optional[datetime] = None,
) -> PendingEvent:
    """Queue one event in the caller's transaction; it is chained and written at commit.

    Writing the whole transaction's events at once keeps the chain's lock (the head
    row) for the shortest possible time: one statement on PostgreSQL (up to 8 events),
    three elsewhere, however many events the transaction has. If the transaction (or
    the savepoint the event was queued in) rolls back, the event goes with it.
    """
    event = PendingEvent(
        at=(at or utcnow()).astimezone(timezone.utc),
        site_id=site_id,
        actor_type=actor.type,
        actor_id=actor.id,
        action=action,
        entity_type=entity_type,
        entity_id=None if entity_id is None else str(entity_id),
        data=canonical_json(pseudonymise(data or {}, plate_key(session))),
        transaction=session.get_nested_transaction() or session.get_transaction(),
    )
    session.info.setdefault(_PENDING, []).append(event)
    return event


# Built once: this runs at every commit that audits something (every lane event).
_head = AuditHead.__table__
_events = AuditEvent.__table__
_LOCK_HEAD = select(_head.c.last_id, _head.c.last_hash).where(_head.c.id == 1).with_for_update()
_INSERT_EVENTS = insert(_events)
_MOVE_HEAD = (update(_head).where(_head.c.id == 1)
              .values(last_id=bindparam("new_last_id"), last_hash=bindparam("new_last_hash")))
_CHAINED_APPEND: dict[int, Any] = {}  # PostgreSQL: events in the transaction -> one statement
_VALUE_COLUMNS = [c for c in _events.c if c.name not in ("id", "prev_hash", "hash")]


def _chained_append(n: int, dialect: Any) -> Any:
    """One PostgreSQL statement that locks the head, chains ``n`` events, inserts them and moves the head.

    The chain's lock is then held for one statement and the COMMIT, never while Python
    runs: with the hashing done client-side between a ``SELECT .. FOR UPDATE`` and the
    INSERT, a lock holder that lost the CPU (or its worker's GIL) stalled every other
    lane's commit behind it. The SQL hashes ``id || middle || prev_hash`` exactly as
    ``event_hash`` does (``middle`` comes from ``hash_middle``), and ``verify`` recomputes
    every hash in Python, so the two cannot drift apart unnoticed. Built once per ``n``
    as text: SQLAlchemy would recompile a multi-row statement at every execution.
    """
    stmt = _CHAINED_APPEND.get(n)
    if stmt is None:
        steps = [f"h AS (SELECT last_id AS id, last_hash AS hash FROM {_head.name} WHERE id = 1 FOR UPDATE)"]
        prev = "h"
        for i in range(n):
            steps.append(f"e{i} AS (SELECT {prev}.id + 1 AS id, {prev}.hash AS prev_hash, "
                         f"encode(sha256(convert_to(({prev}.id + 1)::text || chr(31) || :mid{i} || chr(31) "
                         f"|| {prev}.hash, 'UTF8')), 'hex') AS hash FROM {prev})")
            prev = f"e{i}"
        # strings as TEXT: an explicit cast to VARCHAR(n) would silently truncate a long value
        # (whose hash was taken in full); the column's own assignment check raises instead
        casts = {c.name: "TEXT" if c.type.python_type is str else c.type.compile(dialect=dialect)
                 for c in _VALUE_COLUMNS}
        rows = " UNION ALL ".join(
            f"SELECT e{i}.id, " + ", ".join(f"CAST(:ev{i}_{c.name} AS {casts[c.name]})" for c in _VALUE_COLUMNS)
            + f", e{i}.prev_hash, e{i}.hash FROM e{i}" for i in range(n))
        names = ", ".join(["id", *(c.name for c in _VALUE_COLUMNS), "prev_hash", "hash"])
        steps.append(f"appended AS (INSERT INTO {_events.name} ({names}) {rows})")
        sql = (f"WITH {', '.join(steps)} UPDATE {_head.name} SET last_id = {prev}.id, last_hash = {prev}.hash "
               f"FROM {prev} WHERE {_head.name}.id = 1 RETURNING {_head.name}.last_id, {_head.name}.last_hash")
        stmt = _CHAINED_APPEND[n] = text(sql).bindparams(
            *[bindparam(f"ev{i}_{c.name}", type_=c.type) for i in range(n) for c in _VALUE_COLUMNS],
            *[bindparam(f"mid{i}", type_=_events.c.data.type) for i in range(n)])
    return stmt


def write_pending(session: Session) -> int:
    """Chain and insert the queued events (called before every commit). Returns how many."""
    pending: list[PendingEvent] = session.info.pop(_PENDING, [])
    if not pending:
        return 0
    session.flush()  # other rows first: the head's lock is held only for the statements below
    conn = session.connection()
    values = [dict(at=ev.at, site_id=ev.site_id, actor_type=ev.actor_type, actor_id=ev.actor_id, action=ev.action,
                   entity_type=ev.entity_type, entity_id=ev.entity_id, data=ev.data) for ev in pending]
    if conn.dialect.name == "postgresql" and len(values) <= 8:  # the usual transaction: a lane event's few events
        params = {f"ev{i}_{k}": v for i, row in enumerate(values) for k, v in row.items()}
        params.update({f"mid{i}": hash_middle(**row) for i, row in enumerate(values)})
        last_id, _ = conn.execute(_chained_append(len(values), conn.dialect), params).one()
        session.info[WRITTEN] = last_id
        return len(values)
    last_id, last_hash = conn.execute(_LOCK_HEAD).one()
    rows = []
    for row in values:
        last_id += 1
        last_hash, prev_hash = event_hash(id=last_id, prev_hash=last_hash, **row), last_hash
        rows.append({**row, "id": last_id, "prev_hash": prev_hash, "hash": last_hash})
    conn.execute(_INSERT_EVENTS, rows)  # every row has every key: one INSERT (executemany for several)
    conn.execute(_MOVE_HEAD, {"new_last_id": last_id, "new_last_hash": last_hash})
    session.info[WRITTEN] = last_id
    return len(rows)


def within_transaction(txn: Any, ended: Any) -> bool:
    """Whether ``txn`` is ``ended`` or nested inside it."""
    while txn is not None:
        if txn is ended:
            return True
        txn = txn.parent
    return False


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    write_pending(session)


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: Any) -> None:
    pending = session.info.get(_PENDING)
    if pending:
        session.info[_PENDING] = [ev for ev in pending if not within_transaction(ev.transaction, previous_transaction)]


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_broken_id: Optional[int] = None
    problem: str = ""


def verify(session: Session, *, batch: int = 5000) -> VerifyResult:
    """Walk the whole chain; report the first event whose link or content is wrong.

    The head is read first and the walk stops there, so events appended while
    verifying (the system keeps running) are left for the next run.
    """
    head = session.get(AuditHead, 1)
    if head is None:
        return VerifyResult(False, 0, None, "audit head row is missing")
    head_id, head_hash = head.last_id, head.last_hash
    prev_hash = GENESIS_HASH
    expected_id = 1
    checked = 0
    last_id = 0
    stmt = (select(AuditEvent).where(AuditEvent.id <= head_id).order_by(AuditEvent.id)
            .execution_options(yield_per=batch))
    for ev in session.scalars(stmt):
        if ev.id != expected_id:
            return VerifyResult(False, checked, expected_id, f"event {expected_id} is missing (next is {ev.id})")
        if ev.prev_hash != prev_hash:
            return VerifyResult(False, checked, ev.id, "link to the previous event is broken")
        recomputed = event_hash(
            id=ev.id,
            at=ev.at,
            site_id=ev.site_id,
            actor_type=ev.actor_type,
            actor_id=ev.actor_id,
            action=ev.action,
            entity_type=ev.entity_type,
            entity_id=ev.entity_id,
            data=ev.data,
            prev_hash=ev.prev_hash,
        )
        if recomputed != ev.hash:
            return VerifyResult(False, checked, ev.id, "content does not match its hash")
        prev_hash = ev.hash
        expected_id += 1
        last_id = ev.id
        checked += 1
        session.expunge(ev)
    if head_id != last_id or head_hash != prev_hash:
        return VerifyResult(False, checked, last_id + 1, f"chain ends at {last_id} but the head records {head_id}")
    return VerifyResult(True, checked)


def history(session: Session, entity_type: str, entity_id: object) -> list[AuditEvent]:
    """All events about one entity, oldest first."""
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_type == entity_type, AuditEvent.entity_id == str(entity_id))
            .order_by(AuditEvent.id)
        )
    )

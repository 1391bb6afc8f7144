"""The audit chain's hashing and the signed checkpoint's text: pure functions, no database.

``records.audit`` chains events with these, ``records.trail`` signs checkpoints of them,
and the bundle verifier recomputes them from a ZIP file alone, so the three can never
disagree about what an event's hash covers.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping, Optional

GENESIS_HASH = "0" * 64
CHECKPOINT_FORMAT = "parkinglot-audit-checkpoint/1"


def iso_at(at: datetime | str) -> str:
    """An event time as hashed: ISO 8601 with microseconds (UTC, ``+00:00``); a string is taken as is."""
    return at if isinstance(at, str) else at.isoformat(timespec="microseconds")


def hash_middle(
    *,
    at: datetime | str,
    site_id: Optional[int],
    actor_type: str,
    actor_id: Optional[str],
    action: str,
    entity_type: str,
    entity_id: Optional[str],
    data: str,
) -> str:
    """The hashed text between an event's id and its predecessor's hash."""
    return "\x1f".join([
        iso_at(at),
        "" if site_id is None else str(site_id),
        actor_type,
        actor_id or "",
        action,
        entity_type,
        entity_id or "",
        data,
    ])


def event_hash(*, id: int, prev_hash: str, **fields: Any) -> str:
    """SHA-256 of ``id, at, site, actor, action, entity, data, prev_hash`` joined by U+001F.

    PostgreSQL computes the same from ``hash_middle`` when it appends (``records.audit``);
    every verifier recomputes it here.
    """
    payload = f"{id}\x1f{hash_middle(**fields)}\x1f{prev_hash}"
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


EVENT_FIELDS = ("id", "at", "site_id", "actor_type", "actor_id", "action", "entity_type", "entity_id", "data",
                "prev_hash", "hash")


def event_record(ev: Any) -> dict[str, Any]:
    """An event (row or mapping) as plain JSON values, exactly as hashed (``at`` as its hashed text)."""
    get = ev.get if isinstance(ev, Mapping) else (lambda name: getattr(ev, name))
    out = {name: get(name) for name in EVENT_FIELDS}
    out["at"] = iso_at(out["at"])
    return out


def recompute(ev: Mapping[str, Any]) -> str:
    """The hash an event record should carry."""
    return event_hash(id=int(ev["id"]), prev_hash=ev["prev_hash"], at=ev["at"], site_id=ev["site_id"],
                      actor_type=ev["actor_type"], actor_id=ev["actor_id"], action=ev["action"],
                      entity_type=ev["entity_type"], entity_id=ev["entity_id"], data=ev["data"])


def check_segment(events: Iterable[Mapping[str, Any]]) -> Optional[str]:
    """Problem with a run of consecutive events (ids without gaps, each hash right, each linked
    to the one before), or None. The first event's own ``prev_hash`` is taken on trust:
    only the hashes that follow depend on it."""
    prev: Optional[Mapping[str, Any]] = None
    for ev in events:
        if prev is not None:
            if int(ev["id"]) != int(prev["id"]) + 1:
                return f"event {int(prev['id']) + 1} is missing (next is {ev['id']})"
            if ev["prev_hash"] != prev["hash"]:
                return f"event {ev['id']}: link to event {prev['id']} is broken"
        if recompute(ev) != ev["hash"]:
            return f"event {ev['id']}: content does not match its hash"
        prev = ev
    return None


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: the trail had ``count`` events, the last one (``last_id``) hashed ``head_hash``, at ``at``."""

    seq: int
    last_id: int
    head_hash: str
    count: int
    at: str  # ISO 8601 UTC, as signed
    key_id: str
    signature: str  # base64 Ed25519 signature of ``message()``

    def message(self) -> bytes:
        return checkpoint_message(self.seq, self.last_id, self.head_hash, self.count, self.at, self.key_id)

    def to_dict(self) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "seq": self.seq, "last_id": self.last_id, "head_hash": self.head_hash,
                "count": self.count, "at": self.at, "key_id": self.key_id, "signature": self.signature}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Checkpoint":
        """From a log line or a bundle; raises ValueError when a field is missing or of the wrong kind."""
        try:
            if d.get("format", CHECKPOINT_FORMAT) != CHECKPOINT_FORMAT:
                raise ValueError(f"unknown checkpoint format {d.get('format')!r}")
            return cls(int(d["seq"]), int(d["last_id"]), str(d["head_hash"]), int(d["count"]), str(d["at"]),
                       str(d["key_id"]), str(d["signature"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a checkpoint: {exc}") from None


def checkpoint_message(seq: int, last_id: int, head_hash: str, count: int, at: str, key_id: str) -> bytes:
    """The exact bytes a checkpoint's signature covers."""
    return "\x1f".join([CHECKPOINT_FORMAT, str(seq), str(last_id), head_hash, str(count), at, key_id]).encode("utf-8")

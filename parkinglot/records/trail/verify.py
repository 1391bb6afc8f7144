"""``audit verify``: the chain's own links, its guards, and the signed checkpoints in and outside the database.

The chain alone finds an edited or deleted event. It cannot find a rewrite by someone
who dropped the triggers and recomputed every hash, cut the tail and moved the head
back, or emptied the trail: those leave a consistent chain. A signed checkpoint, kept
where that person cannot reach it, still names the old tip, so the trail contradicts it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from ...evidence import checkpoint_log
from ...evidence.chain import Checkpoint
from ...evidence.signing import fingerprint, verify_signature
from .. import audit
from ..models import AuditEvent
from . import checkpoints

# Every guard the migrations create (0001, 0007); one missing means someone removed it.
REQUIRED_TRIGGERS = {
    "sqlite": ("audit_event_no_update", "audit_event_no_delete", "audit_checkpoint_no_update",
               "audit_checkpoint_no_delete", "audit_head_forward_only", "audit_head_no_delete"),
    "postgresql": ("audit_event_append_only", "audit_event_no_truncate", "audit_checkpoint_append_only",
                   "audit_checkpoint_no_truncate", "audit_head_forward_only", "audit_head_no_delete",
                   "audit_head_no_truncate"),
}


def missing_triggers(session: Session) -> list[str]:
    """The trail's guard triggers that are absent (or, on PostgreSQL, disabled)."""
    dialect = session.get_bind().dialect.name
    required = REQUIRED_TRIGGERS.get(dialect, ())
    if dialect == "sqlite":
        present = set(session.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")))
    elif dialect == "postgresql":
        present = set(session.scalars(text(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D' AND tgrelid IN "
            "('audit_event'::regclass, 'audit_head'::regclass, 'audit_checkpoint'::regclass)")))
    else:
        return []
    return [name for name in required if name not in present]


@dataclass
class TrailReport:
    ok: bool
    events: int
    checkpoints: int
    problems: list[str] = field(default_factory=list)
    first_contradicted: Optional[Checkpoint] = None
    latest: Optional[Checkpoint] = None
    notes: list[str] = field(default_factory=list)


def _hashes_at(session: Session, ids: set[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    ordered = sorted(ids)
    for i in range(0, len(ordered), 500):
        part = ordered[i:i + 500]
        out.update((i, h) for i, h in session.execute(select(AuditEvent.id, AuditEvent.hash).where(AuditEvent.id.in_(part))))
    return out


def contradiction(cp: Checkpoint, chain_length: int, hash_at: Optional[str]) -> Optional[str]:
    """Why the trail (``chain_length`` verified events, ``hash_at`` its hash at ``cp.last_id``)
    contradicts checkpoint ``cp``, or None."""
    signed = f"checkpoint {cp.seq} signed at {cp.at} covers {cp.count} events"
    if cp.last_id > chain_length:
        if chain_length == 0:
            return f"the trail is EMPTIED: {signed}, the trail has none"
        return f"the trail is TRUNCATED: {signed}, the trail has only {chain_length}"
    if cp.last_id > 0 and hash_at != cp.head_hash:
        return (f"the trail was RE-CHAINED: event {cp.last_id} hashes to {str(hash_at)[:16]}…, "
                f"{signed} ending in {cp.head_hash[:16]}…")
    return None


def verify_trail(session: Session, public_key, *, log_path: Optional[Path] = None,
                 previous_keys: Sequence[Any] = ()) -> TrailReport:
    """Guards, chain and checkpoints; every problem is listed, the first contradicted checkpoint named.

    ``public_key``: the current key (None: no key file); ``previous_keys``: the public keys of
    retired signing keys, so checkpoints signed before a key rotation still verify.
    """
    trusted = {fingerprint(k): k for k in [*previous_keys, public_key] if k is not None}
    problems: list[str] = []
    notes: list[str] = []
    missing = missing_triggers(session)
    if missing:
        problems.append("the append-only guards are MISSING: " + ", ".join(missing))
    chain = audit.verify(session)
    chain_length = chain.checked
    if not chain.ok:
        problems.append(f"the chain is BROKEN at event {chain.first_broken_id}: {chain.problem}")
        chain_length = (chain.first_broken_id or 1) - 1

    in_db = checkpoints.stored(session)
    in_log, log_problems = checkpoint_log.read(log_path)
    problems.extend(log_problems)
    if log_path is None:
        notes.append("no checkpoint log configured: only the database's own checkpoints were checked")
    elif not Path(log_path).exists():
        notes.append(f"the checkpoint log {log_path} does not exist (yet)")
    by_seq: dict[int, Checkpoint] = {}
    if not trusted and (in_db or in_log):
        problems.append(f"{len(in_db) + len(in_log)} checkpoint signature(s) could not be checked: no public key "
                        "(the signing key file is missing; pass the published public key)")
    for source, items in (("database", in_db), ("checkpoint log", in_log)):
        for cp in items:
            key = trusted.get(cp.key_id)
            if trusted and key is None:
                problems.append(f"checkpoint {cp.seq} in the {source} is signed by an UNKNOWN key {cp.key_id} "
                                "(forged, or a retired key missing from AUDIT_PREVIOUS_PUBLIC_KEYS)")
                continue
            if key is not None and not verify_signature(key, cp.message(), cp.signature):
                problems.append(f"checkpoint {cp.seq} in the {source} has an INVALID signature "
                                "(forged or altered)")
                continue
            other = by_seq.get(cp.seq)
            if other is not None and other != cp:
                problems.append(f"checkpoint {cp.seq} differs between the database and the checkpoint log")
                continue
            by_seq[cp.seq] = cp
    db_seqs = {cp.seq for cp in in_db}
    only_in_log = sorted(seq for seq in by_seq if seq not in db_seqs)
    if only_in_log and in_db:
        notes.append(f"{len(only_in_log)} checkpoint(s) are only in the log (first: {only_in_log[0]})")
    if only_in_log and not in_db:
        problems.append(f"the database holds NO checkpoints but the log holds {len(only_in_log)}: "
                        "they were deleted")

    ordered = [by_seq[s] for s in sorted(by_seq)]
    hashes = _hashes_at(session, {cp.last_id for cp in ordered if 0 < cp.last_id <= chain_length})
    first = None
    for cp in ordered:
        why = contradiction(cp, chain_length, hashes.get(cp.last_id))
        if why:
            problems.append(why)
            first = cp
            break
    return TrailReport(ok=not problems, events=chain.checked, checkpoints=len(ordered), problems=problems,
                       first_contradicted=first, latest=ordered[-1] if ordered else None, notes=notes)

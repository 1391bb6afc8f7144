"""Signed checkpoints of the audit chain: taken every N events or M minutes, and on demand.

A checkpoint says "the trail had ``count`` events and the last one hashed ``head_hash``",
signed with the instance's Ed25519 key (a file the database cannot reach). It is stored
in ``audit_checkpoint``, appended to the checkpoint log outside the database, and sent to
the witness (webhook or syslog) when one is configured. A trail that was rewritten,
cut short or emptied after a checkpoint no longer matches it (``trail.verify``).

The write path pays one integer compare per commit: ``audit.write_pending`` leaves the
id of the last event it wrote in ``session.info`` and the ``after_commit`` hook compares
it with the next due id. When one is due, a background thread takes it in its own short
transaction (the committing request replies at once), and a failure there is logged,
never raised.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from ...evidence import checkpoint_log
from ...evidence.chain import Checkpoint, checkpoint_message
from ...evidence.signing import Signer
from .. import audit
from ..models import AuditCheckpoint, AuditHead
from ..types import utcnow

log = logging.getLogger("parkinglot.audit.checkpoints")
IDLE_EXIT_S = 30.0  # the background thread ends after this long without a due checkpoint


def as_checkpoint(row: AuditCheckpoint) -> Checkpoint:
    return Checkpoint(row.seq, row.last_id, row.head_hash, row.count, row.at, row.key_id, row.signature)


def latest(session: Session) -> Optional[Checkpoint]:
    row = session.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(1))
    return as_checkpoint(row) if row is not None else None


def stored(session: Session) -> list[Checkpoint]:
    return [as_checkpoint(r) for r in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq))]


def covering(session: Session, event_id: int) -> Optional[Checkpoint]:
    """The first checkpoint whose chain includes ``event_id``."""
    row = session.scalar(select(AuditCheckpoint).where(AuditCheckpoint.last_id >= event_id)
                         .order_by(AuditCheckpoint.seq).limit(1))
    return as_checkpoint(row) if row is not None else None


def take(session: Session, signer: Signer, *, now: Optional[datetime] = None) -> tuple[Checkpoint, bool]:
    """Sign the chain's current tip in the caller's transaction (``flush`` only).

    Returns ``(checkpoint, True)`` for a new one, or the latest one and False when the
    chain has not moved since. The head row is locked while signing, so the checkpoint
    names a tip that really was the tip, and two takers never sign the same ``seq``.
    """
    head_id, head_hash = session.execute(
        select(AuditHead.last_id, AuditHead.last_hash).where(AuditHead.id == 1).with_for_update()).one()
    last = latest(session)
    if last is not None and last.last_id == head_id and last.head_hash == head_hash:
        return last, False
    seq = (last.seq if last else 0) + 1
    at = (now or utcnow()).astimezone(timezone.utc).isoformat(timespec="microseconds")
    signature = signer.sign(checkpoint_message(seq, head_id, head_hash, head_id, at, signer.key_id))
    cp = Checkpoint(seq, head_id, head_hash, head_id, at, signer.key_id, signature)
    session.add(AuditCheckpoint(seq=cp.seq, last_id=cp.last_id, head_hash=cp.head_hash, count=cp.count, at=cp.at,
                                key_id=cp.key_id, signature=cp.signature))
    session.flush()
    return cp, True


@dataclass(frozen=True)
class Policy:
    """When and where checkpoints go (from the settings: ``AUDIT_CHECKPOINT_*``, ``AUDIT_WITNESS_*``)."""

    every_events: int = 1000
    every_minutes: float = 60.0
    log_path: Optional[Path] = None
    witness_url: str = ""
    witness_syslog: str = ""
    witness_timeout_s: float = 2.0

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "Policy":
        log_path = settings.get("AUDIT_CHECKPOINT_LOG") or ""
        return cls(every_events=max(1, int(settings.get("AUDIT_CHECKPOINT_EVERY", 1000))),
                   every_minutes=float(settings.get("AUDIT_CHECKPOINT_MINUTES", 60)),
                   log_path=Path(log_path) if log_path else None,
                   witness_url=str(settings.get("AUDIT_WITNESS_URL") or ""),
                   witness_syslog=str(settings.get("AUDIT_WITNESS_SYSLOG") or ""),
                   witness_timeout_s=float(settings.get("WEBHOOK_TIMEOUT_S", 2.0)))


def send_to_witness(policy: Policy, cp: Checkpoint, *, sender: Optional[Callable[..., None]] = None) -> None:
    """Give the checkpoint to the external witness(es); failures are logged (the log file has it)."""
    body = {"event": "audit.checkpoint", "checkpoint": cp.to_dict()}
    if policy.witness_url:
        from ..notify import post_json

        try:
            (sender or post_json)(policy.witness_url, body, timeout_s=policy.witness_timeout_s)
        except Exception as exc:  # noqa: BLE001 - a witness that is down must not stop the trail
            log.error("audit checkpoint %s not delivered to the witness: %s", cp.seq, exc)
    if policy.witness_syslog:
        import json
        import logging.handlers

        target = policy.witness_syslog
        address: Any = target if target.startswith("/") else (target.rpartition(":")[0] or target,
                                                               int(target.rpartition(":")[2] or 514))
        try:
            handler = logging.handlers.SysLogHandler(address=address)
            try:
                record = logging.LogRecord("parkinglot.audit", logging.WARNING, __file__, 0,
                                           "parkinglot audit checkpoint %s", (json.dumps(cp.to_dict()),), None)
                handler.emit(record)
            finally:
                handler.close()
        except OSError as exc:
            log.error("audit checkpoint %s not sent to syslog %s: %s", cp.seq, target, exc)


class Checkpointer:
    """Takes checkpoints for one process: on demand, and when a commit makes one due.

    With ``background`` (the application's default) a due checkpoint is taken by a daemon
    thread, so the request whose commit crossed the boundary replies at once (a checkpoint
    is one short transaction and an fsync of the log: 10-30 ms on a busy machine); without
    it, right after the commit, in the committing thread (tests, one-off commands).
    """

    def __init__(self, sessions: sessionmaker[Session], signer: Callable[[], Signer], policy: Policy, *,
                 background: bool = False) -> None:
        self.sessions = sessions
        self._signer = signer
        self.policy = policy
        self.background = background
        self._next_id: Optional[int] = None
        self._next_time = 0.0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: Optional[threading.Thread] = None
        self._start_lock = threading.Lock()

    @property
    def signer(self) -> Signer:
        return self._signer()

    def checkpoint(self, *, now: Optional[datetime] = None) -> tuple[Checkpoint, bool]:
        """Take a checkpoint now (its own transaction), then publish it outside the database."""
        with self.sessions() as session:
            cp, new = take(session, self.signer, now=now)
            session.commit()
        if new:
            self.publish(cp)
        self._schedule(cp)
        return cp, new

    def publish(self, cp: Checkpoint) -> None:
        if self.policy.log_path is not None:
            try:
                checkpoint_log.append(self.policy.log_path, cp)
            except OSError as exc:
                log.error("audit checkpoint %s not written to %s: %s", cp.seq, self.policy.log_path, exc)
        if self.policy.witness_url or self.policy.witness_syslog:
            threading.Thread(target=send_to_witness, args=(self.policy, cp), name="audit-witness",
                             daemon=True).start()

    def _schedule(self, cp: Optional[Checkpoint]) -> None:
        self._next_id = (cp.last_id if cp else 0) + self.policy.every_events
        age_s = 0.0
        if cp is not None:
            age_s = max(0.0, (utcnow() - datetime.fromisoformat(cp.at)).total_seconds())
        self._next_time = time.monotonic() + self.policy.every_minutes * 60 - age_s

    def maybe_checkpoint(self) -> Optional[Checkpoint]:
        """Take a checkpoint if N events or M minutes (with new events) have passed since the latest one,
        which may have been taken by another process."""
        with self._lock:
            try:
                with self.sessions() as session:
                    last = latest(session)
                    head_id = session.scalar(select(AuditHead.last_id).where(AuditHead.id == 1)) or 0
                    session.rollback()
                self._schedule(last)
                moved = head_id > (last.last_id if last else 0)
                if head_id >= self._next_id or (moved and time.monotonic() >= self._next_time):  # type: ignore[operator]
                    return self.checkpoint()[0]
            except Exception:  # noqa: BLE001 - the commit stands; a later one tries again
                log.exception("automatic audit checkpoint failed")
                self._next_time = time.monotonic() + 60
        return None

    def after_commit(self, session: Session) -> None:
        """The hook on every commit: a dict lookup and two compares, unless a checkpoint is due."""
        written = session.info.pop(audit.WRITTEN, None)
        if written is None:
            return
        if self._next_id is not None and written < self._next_id and time.monotonic() < self._next_time:
            return
        if self.background:
            self._kick()
        elif not self._lock.locked():
            self.maybe_checkpoint()

    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="audit-checkpoints", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        """Take due checkpoints; end after IDLE_EXIT_S without work (the next due commit starts it again)."""
        while True:
            if not self._wake.wait(IDLE_EXIT_S):
                with self._start_lock:
                    if not self._wake.is_set():
                        self._thread = None
                        return
                continue
            self._wake.clear()
            self.maybe_checkpoint()
            if not self._wake.is_set():
                self._idle.set()

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait for a background checkpoint in progress (shutdown, tests). Returns whether it finished."""
        return self._idle.wait(timeout_s)

    def watch(self, sessions: sessionmaker[Session]) -> None:
        """Check after every commit through ``sessions`` whether a checkpoint is due."""
        event.listen(sessions, "after_commit", self.after_commit)
        event.listen(sessions, "after_soft_rollback", lambda s, _t: s.info.pop(audit.WRITTEN, None))

"""Brute-force throttling shared by all workers: failures per key, then a lockout.

Keys look like ``login:<username>``, ``login-ip:<addr>`` or ``apikey-ip:<addr>``.
Callers use their own short transaction, so a refused request still counts.
A key longer than the column (a client can choose part of it) is stored as a digest,
so it is counted like any other instead of failing the insert.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Optional

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .models import Throttle
from .types import utcnow

KEY_MAX = Throttle.__table__.c.key.type.length


def _fit(key: str) -> str:
    if len(key) <= KEY_MAX:
        return key
    return f"{key[:KEY_MAX - 72]}#sha256:{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()}"


def locked_until(session: Session, key: str, now: Optional[datetime] = None) -> Optional[datetime]:
    row = session.get(Throttle, _fit(key))
    now = now or utcnow()
    if row is not None and row.locked_until is not None and row.locked_until > now:
        return row.locked_until
    return None


def record_failure(session: Session, key: str, *, max_failures: int, lockout_s: int,
                   now: Optional[datetime] = None) -> Optional[datetime]:
    """Count a failure; returns the lockout end once ``max_failures`` is reached within the window."""
    key = _fit(key)
    now = now or utcnow()
    row = session.get(Throttle, key)
    if row is None:
        row = Throttle(key=key, failures=0, window_start=now)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:  # another worker created it
            row = session.get(Throttle, key)
    if now - row.window_start > timedelta(seconds=lockout_s) and (row.locked_until is None or row.locked_until <= now):
        row.failures = 0
        row.window_start = now
        row.locked_until = None
    row.failures += 1
    if row.failures >= max_failures:
        row.locked_until = now + timedelta(seconds=lockout_s)
    session.flush()
    return row.locked_until


def reset(session: Session, key: str) -> None:
    row = session.get(Throttle, _fit(key))
    if row is not None:
        row.failures = 0
        row.locked_until = None
        session.flush()

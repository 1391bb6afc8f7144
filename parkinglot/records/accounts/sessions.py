"""Ending every console session of a user at once.

A console session is a signed cookie the server does not store, so it cannot be deleted
on the server. Instead each user has a ``session_version``, stamped into the cookie at
login and compared whenever the session is loaded: raising it makes every cookie issued
before unusable, wherever it was copied to (console pages and the API alike).
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from .. import audit
from ..models import User

# Why a user's sessions ended: the reasons the rest of the code may give.
REASONS = ("logout", "password_changed", "role_changed", "deactivated")


def end_sessions(session: Session, user: User, *, reason: str, actor: audit.Actor) -> None:
    """Invalidate every session of ``user`` (flushed; committed by the caller)."""
    if reason not in REASONS:
        raise ValueError(f"unknown reason {reason!r}")
    user.session_version = (user.session_version or 0) + 1
    session.flush()
    audit.append(session, "user.sessions_ended", "user", user.id,
                 {"username": user.username, "reason": reason}, actor=actor)


def is_current(user: User, stamped: object) -> bool:
    """Whether a session stamped with ``stamped`` at login is still valid for ``user``."""
    return isinstance(stamped, int) and not isinstance(stamped, bool) and stamped == (user.session_version or 0)

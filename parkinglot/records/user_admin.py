"""Changing console accounts: role, sites, active flag (creation and passwords live in ``users``).

Every change is audited with who made it. An administrator cannot lock
themselves out (deactivate their own account or drop their own admin role).
A role change or a deactivation ends every session the user has open.
"""
from __future__ import annotations

from typing import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .accounts.sessions import end_sessions
from .errors import InvalidInput
from .models import ROLES, User


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def update_user(session: Session, user: User, *, display_name: str, role: str, sites: Sequence, active: bool,
                by: User) -> User:
    """Apply the changes and audit them (only what changed)."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    if user.id == by.id and (not active or role != user.role):
        raise InvalidInput("you cannot deactivate your own account or change your own role")
    before = {"display_name": user.display_name, "role": user.role, "active": user.active,
              "sites": sorted(s.code for s in user.sites)}
    user.display_name = (display_name or "").strip() or user.username
    user.role = role
    user.active = active
    user.sites = list(sites)
    after = {"display_name": user.display_name, "role": user.role, "active": user.active,
             "sites": sorted(s.code for s in user.sites)}
    changes = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
    if changes:
        session.flush()
        audit.append(session, "user.updated", "user", user.id, {"username": user.username, "changes": changes},
                     actor=audit.Actor.user(by.id))
    if "active" in changes and not user.active:
        end_sessions(session, user, reason="deactivated", actor=audit.Actor.user(by.id))
    elif "role" in changes:
        end_sessions(session, user, reason="role_changed", actor=audit.Actor.user(by.id))
    return user

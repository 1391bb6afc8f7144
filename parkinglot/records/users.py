"""Console users: hashed passwords, roles, and the sites each user may act on."""
from __future__ import annotations

from typing import Optional, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from . import audit
from .accounts import passwords
from .accounts.sessions import end_sessions
from .errors import Conflict, InvalidInput
from .models import ROLES, Site, User

USERNAME_MAX = 64  # the column's length
# Verifying against this keeps the time of a login for an unknown user the same as for a known one.
_DUMMY_HASH = generate_password_hash("timing-equaliser-not-a-password")



def normalise_username(username: object) -> str:
    return username.strip().lower() if isinstance(username, str) else ""


def is_valid_username(username: str) -> bool:
    """Letters, digits and . _ - @, at most ``USERNAME_MAX``: what an account can be named."""
    return (0 < len(username) <= USERNAME_MAX and username.isascii()
            and all(c.isalnum() or c in "._-@" for c in username))


def create_user(session: Session, *, username: str, password: str, role: str, sites: Sequence[Site] = (),
                display_name: str = "", actor: audit.Actor = audit.SYSTEM) -> User:
    """A new active account; the password must pass ``accounts.passwords.check``."""
    username = normalise_username(username)
    if not is_valid_username(username):
        raise InvalidInput(f"usernames use letters, digits and . _ - @ (at most {USERNAME_MAX})")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    passwords.check(password, username=username, role=role, display_name=display_name)
    if session.scalar(select(User.id).where(User.username == username)):
        raise Conflict(f"user {username!r} already exists")
    user = User(username=username, display_name=display_name or username, role=role,
                password_hash=generate_password_hash(password), active=True)
    user.sites = list(sites)
    session.add(user)
    session.flush()
    audit.append(session, "user.created", "user", user.id,
                 {"username": username, "role": role, "sites": [s.code for s in sites]}, actor=actor)
    return user


def authenticate(session: Session, username: str, password: str) -> Optional[User]:
    username = normalise_username(username)
    user = (session.scalar(select(User).where(User.username == username))
            if is_valid_username(username) else None)
    if user is None or not user.active or not isinstance(password, str) or len(password) > passwords.MAX_LENGTH:
        check_password_hash(_DUMMY_HASH, password[:passwords.MAX_LENGTH] if isinstance(password, str) else "")
        return None
    return user if check_password_hash(user.password_hash, password or "") else None


def set_password(session: Session, user: User, password: str, *, actor: audit.Actor) -> None:
    """Change a password (policy-checked); every session the user had open ends."""
    passwords.check(password, username=user.username, role=user.role, display_name=user.display_name)
    user.password_hash = generate_password_hash(password)
    audit.append(session, "user.password_changed", "user", user.id, {"username": user.username}, actor=actor)
    end_sessions(session, user, reason="password_changed", actor=actor)


def site_ids(session: Session, user: User) -> list[int]:
    """The sites a user may see: all of them for admins (and finance), else their own."""
    if user.role in ("admin", "finance") and not user.sites:
        return list(session.scalars(select(Site.id).order_by(Site.id)))
    return [s.id for s in user.sites]


def can(user: User, action: str) -> bool:
    """Role check for an action name (the console and the API share this table)."""
    allowed = PERMISSIONS.get(action)
    if allowed is None:
        raise KeyError(f"unknown action {action!r}")
    return user.active and (user.role in allowed or user.role == "admin")


PERMISSIONS: dict[str, frozenset[str]] = {
    "view_dashboard": frozenset({"attendant", "supervisor"}),
    "view_stays": frozenset({"attendant", "supervisor", "finance"}),
    "operate_lanes": frozenset({"attendant", "supervisor"}),
    "confirm_match": frozenset({"attendant", "supervisor"}),
    "override_stop": frozenset({"supervisor"}),  # release a hotlisted or locked vehicle by hand
    "work_alerts": frozenset({"attendant", "supervisor"}),
    "manage_hotlist": frozenset({"supervisor"}),
    "emergency": frozenset({"supervisor"}),
    "open_dispute": frozenset({"attendant", "supervisor"}),
    "resolve_dispute": frozenset({"supervisor"}),
    "manage_permits": frozenset({"supervisor"}),
    "view_permits": frozenset({"attendant", "supervisor"}),
    "lock_vehicle": frozenset({"attendant", "supervisor"}),
    "visitor_passes": frozenset({"attendant", "supervisor"}),
    "shifts": frozenset({"attendant", "supervisor"}),
    "view_kpis": frozenset({"supervisor"}),
    "view_revenue": frozenset({"finance"}),
    "record_payment": frozenset({"attendant", "supervisor", "finance"}),
    "refund": frozenset({"supervisor", "finance"}),
    "void_payment": frozenset({"supervisor"}),  # cancel a payment recorded by mistake (with a reason)
    "write_off": frozenset({"finance"}),  # give up on what a car left owing (reconciliation page)
    "manage_users": frozenset(),
    "manage_sites": frozenset(),  # sites, lanes, device keys, tariffs (administrators only)
    "subject_exports": frozenset({"supervisor"}),  # data-subject access requests (GDPR art. 15)
    "export_evidence": frozenset({"supervisor"}),  # signed evidence bundles of a stay, dispute or alert
}

"""What a login attempt leaves behind: audit events, and an alert when it locks an account.

No password (nor a part of one) is ever recorded. A failed attempt names the username
only when it is an existing account: people type their password into the username
box, and the trail can never be edited. Client addresses go to the server log, not to
the trail.
"""
from __future__ import annotations

from typing import Optional, Sequence

from sqlalchemy.orm import Session

from .. import alerts, audit, users
from ..models import User

# Which allowance a lockout used up: the account's (for browsers it never logged in from),
# one client address's, or one known browser's own allowance for that account.
SCOPES = {
    "account": "from browsers it has not logged in from before",
    "address": "from one network address",
    "browser": "on one browser it has logged in from before",
}


def succeeded(session: Session, user: User, *, via: str, known_browser: bool) -> None:
    """A login that started a session."""
    audit.append(session, "user.login", "user", user.id,
                 {"username": user.username, "via": via, "known_browser": known_browser},
                 actor=audit.Actor.user(user.id))


def failed(session: Session, user: Optional[User], *, via: str, known_browser: bool) -> None:
    """A wrong password, or a username that names no active account."""
    audit.append(session, "user.login_failed", "user", user.id if user else None,
                 {"username": user.username if user else None, "known_user": user is not None, "via": via,
                  "known_browser": known_browser})


def locked_out(session: Session, user: Optional[User], *, scopes: Sequence[str], lockout_s: int,
               failures: int) -> None:
    """Record a new lockout (of one or more allowances at once) and tell the people of the
    account's sites, with an alert at each. An unknown username has no sites to tell: its
    lockout is in the trail only.
    """
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"unknown lockout scopes {unknown!r}")
    audit.append(session, "user.locked_out", "user", user.id if user else None,
                 {"username": user.username if user else None, "scopes": list(scopes), "lockout_s": lockout_s,
                  "failures": failures})
    if user is None:
        return
    minutes = max(1, round(lockout_s / 60))
    where = " and ".join(SCOPES[s] for s in scopes)
    message = (f"Logins as {user.username} ({user.role}) {where} are locked for {minutes} min "
               f"after {failures} failed attempts.")
    for site_id in users.site_ids(session, user):
        alerts.raise_alert(session, site_id=site_id, kind="account_lockout", message=message)

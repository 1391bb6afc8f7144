"""Password policy for console accounts.

The strength check is zxcvbn (Dropbox's estimator, maintained for Python as the
``zxcvbn`` package): it ships its own frequency lists (common passwords, names,
English words, keyboard patterns), so a common password, a dictionary word with digits
or ``qwerty``-style walks are refused with no network and no word list of our own to
keep up to date. It also takes the username and display name as words an attacker
would try first. On top of it go the rules zxcvbn does not state on its own: a minimum
length (longer for the roles that can open every barrier or change every account),
no password that is or contains the username, and none made of spaces only.
"""
from __future__ import annotations

from zxcvbn import zxcvbn

from ..errors import InvalidInput

MIN_LENGTH = 10
PRIVILEGED_ROLES = ("admin", "supervisor")  # can switch emergency mode, release stops, manage accounts
MIN_LENGTH_PRIVILEGED = 14
MAX_LENGTH = 128  # bounds the hashing and strength-check cost of one login or account change
MIN_SCORE = 3  # zxcvbn's 0..4 scale; 3 is "safely unguessable" for an online attack with throttling
_ZXCVBN_MAX = 72  # the estimator's own input limit: the rest of a longer password only adds strength
_USERNAME_MIN = 3  # a shorter username would forbid too many ordinary passwords if contained


def min_length(role: str) -> int:
    """The shortest password allowed for ``role``."""
    return MIN_LENGTH_PRIVILEGED if role in PRIVILEGED_ROLES else MIN_LENGTH


def check(password: str, *, username: str, role: str, display_name: str = "") -> None:
    """Raise ``InvalidInput`` with a message a person can act on if ``password`` is refused."""
    if not isinstance(password, str) or not password.strip():
        raise InvalidInput("the password cannot be empty or only spaces")
    need = min_length(role)
    if len(password) < need:
        who = f"{role}s" if role in PRIVILEGED_ROLES else "console users"
        raise InvalidInput(f"passwords of {who} need at least {need} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidInput(f"passwords may have at most {MAX_LENGTH} characters")
    name = (username or "").strip().lower()
    folded = password.lower()
    if name and (folded == name or (len(name) >= _USERNAME_MIN and name in folded)):
        raise InvalidInput("the password must not be or contain the username")
    hints = [w for w in (name, (display_name or "").strip().lower()) if w]
    result = zxcvbn(password[:_ZXCVBN_MAX], user_inputs=hints, max_length=_ZXCVBN_MAX)
    if result["score"] < MIN_SCORE:
        feedback = result.get("feedback") or {}
        why = " ".join(part for part in [feedback.get("warning") or ""] + list(feedback.get("suggestions") or [])
                       if part)
        raise InvalidInput("this password is too easy to guess: "
                           + (why or "a few unrelated words make a strong one"))

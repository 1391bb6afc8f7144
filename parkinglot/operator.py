"""Who runs a command-line action: the operating-system account, recorded as its audit actor.

The CLI has no login; the account that ran it is what an auditor can trace, so restores
and data-subject exports record it (actor type ``operator``).
"""
from __future__ import annotations

import getpass

from .records.audit import Actor


def operator_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def operator_actor(name: str | None = None) -> Actor:
    return Actor("operator", (name or operator_name())[:64])

"""What an entry asks about a plate before deciding, in one round trip.

Is it already inside, on a stop list (hotlist or lock, exactly or as a look-alike),
named by a permit, named by a visitor pass? Most cars at an entry are none of these,
so one query of four ``EXISTS`` answers them all, and the services load the stay,
the stop-list hits or the credentials only where one exists. The conditions are the
services' own (``lookup``, ``vehicles``, ``permits``).
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from . import lookup, permits, vehicles


@dataclass(frozen=True)
class EntryFlags:
    inside: bool = False
    stopped: bool = False
    permit: bool = False
    visitor_pass: bool = False


_ENTRY_FLAGS = select(  # built once: every entry with a plate asks
    exists().where(*lookup.OPEN_STAY_OF_PLATE),
    vehicles.STOPPED,
    permits.PERMIT_NAMES_PLATE,
    permits.PASS_NAMES_PLATE,
)


def entry_flags(session: Session, site_id: int, plate: str) -> EntryFlags:
    """The four flags for ``plate`` at ``site_id`` (all False without a plate)."""
    if not plate:
        return EntryFlags()
    row = session.execute(_ENTRY_FLAGS, {"plate": plate, **vehicles.probe_params(site_id, plate)}).one()
    return EntryFlags(*(bool(v) for v in row))

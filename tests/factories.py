"""Small builders for test data (real rows through the real services)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Optional

from sqlalchemy.orm import Session

from parkinglot.records import reads, sites, stays
from parkinglot.records.models import Lane, Site

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


def make_site(session: Session, code: str = "S1", **kw) -> tuple[Site, Lane, Lane]:
    # US plate rules admit any 2-8 characters read with confidence (vanity plates), so tests
    # can name vehicles freely; the format rule has its own tests (test_gate_rules.py)
    opts = dict(name=f"Site {code}", timezone="Europe/Berlin", currency="EUR", plate_region="us")
    opts.update(kw)
    site = sites.create_site(session, code=code, **opts)
    zone = sites.create_zone(session, site, "Z1", "Main", capacity=100)
    entry = sites.create_lane(session, site, code=f"{code}-IN", name="Entry", direction="entry", zone=zone)
    exit_ = sites.create_lane(session, site, code=f"{code}-OUT", name="Exit", direction="exit", zone=zone)
    return site, entry, exit_


def make_read(session: Session, lane: Lane, plate: str, at: datetime = T0, **kw) -> "reads.PlateRead":
    inp = reads.ReadInput(lane=lane, captured_at=at, received_at=at, plate=plate, raw_text=plate,
                          confidence=kw.pop("confidence", 0.95), **kw)
    return reads.store_read(session, inp)


def enter(session: Session, site: Site, lane: Lane, plate: str, at: datetime = T0,
          ticket: Optional[str] = None):
    read = make_read(session, lane, plate, at)
    return stays.open_stay(session, site_id=site.id, plate=plate, entered_at=at, entry_lane_id=lane.id,
                           entry_read_id=read.id, zone_id=lane.zone_id, ticket=ticket)


def later(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)

"""Times people type, in a site's wall clock, turned into the UTC instants the store keeps.

A local time the clocks skip (spring forward) is refused rather than silently
shifted; an ambiguous one (fall back) takes its first occurrence. Whole days
are half-open ranges ``[local midnight, next local midnight)``, so a 23 h or
25 h day is still exactly one day.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from .errors import InvalidInput


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def localize(value: datetime, tz: str) -> datetime:
    """A naive local wall-clock time -> aware UTC; InvalidInput if the clocks skip that time."""
    z = zone(tz)
    aware = value.replace(tzinfo=z)
    back = aware.astimezone(timezone.utc).astimezone(z)
    if back.replace(tzinfo=None) != value:
        raise InvalidInput(f"{value:%Y-%m-%d %H:%M} does not exist in {tz} (the clocks skip it); pick another time")
    return aware.astimezone(timezone.utc)


def day_start(day: date, tz: str) -> datetime:
    """Local midnight of ``day``, in UTC."""
    return datetime.combine(day, time(0), tzinfo=zone(tz)).astimezone(timezone.utc)


def day_end(day: date, tz: str) -> datetime:
    """The start of the next local day: ranges are half-open, so an end date includes its whole day."""
    return day_start(day + timedelta(days=1), tz)


def parse_date(text: str) -> date:
    """``YYYY-MM-DD``; InvalidInput otherwise (the message names the value)."""
    try:
        return date.fromisoformat((text or "").strip())
    except ValueError:
        raise InvalidInput(f"{text!r} is not a date (use YYYY-MM-DD)") from None

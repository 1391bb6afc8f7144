"""Permit and visitor-pass validity: instants rather than calendar dates, hours on the site's wall
clock (windows may cross midnight), and cancelled or revoked credentials never valid.

These are the pure rules behind ``permits.permit_status`` and ``permits.pass_status``; which
credential a lane consults, and at what time, is tested with the lane events.
"""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from parkinglot.records import permits
from parkinglot.records.models import Permit, VisitorPass

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)  # a Monday evening
END = datetime(2026, 3, 20, 10, 0, tzinfo=UTC)  # a Friday morning


def permit(**kw) -> Permit:
    fields = dict(status="active", valid_from=START, valid_to=END, hours=None)
    fields.update(kw)
    return Permit(**fields)


@pytest.mark.parametrize("minutes, expected", [
    (-6 * 60, "not_yet_valid"), (-1, "not_yet_valid"), (0, "valid"), (1, "valid")])
def test_permit_starts_at_its_instant_not_its_date(minutes, expected):
    assert permits.permit_status(permit(), START + timedelta(minutes=minutes), "Europe/Berlin") == expected


@pytest.mark.parametrize("minutes, expected", [
    (-1, "valid"), (0, "expired"), (1, "expired"), (13 * 60 + 59, "expired"), (3 * 24 * 60, "expired")])
def test_permit_ends_at_its_instant_not_at_the_end_of_its_day(minutes, expected):
    assert permits.permit_status(permit(), END + timedelta(minutes=minutes), "Europe/Berlin") == expected


@pytest.mark.parametrize("days", [0, 1, 10])
def test_cancelled_or_suspended_permit_is_never_valid_inside_its_window(days):
    at = START + timedelta(days=days, minutes=5)
    assert permits.permit_status(permit(), at, "Europe/Berlin") == "valid"
    assert permits.permit_status(permit(status="cancelled"), at, "Europe/Berlin") == "expired"
    assert permits.permit_status(permit(status="suspended"), at, "Europe/Berlin") == "suspended"


DAY_HOURS = [{"days": "mon-fri", "from": "07:00", "to": "19:00"}]


@pytest.mark.parametrize("tz, at_utc, expected", [
    ("Europe/Berlin", datetime(2026, 3, 3, 6, 30, tzinfo=UTC), "valid"),  # 07:30 CET
    ("Europe/Berlin", datetime(2026, 3, 3, 5, 30, tzinfo=UTC), "outside_hours"),  # 06:30 CET
    ("Europe/Berlin", datetime(2026, 3, 3, 18, 30, tzinfo=UTC), "outside_hours"),  # 19:30 CET
    ("Europe/Berlin", datetime(2026, 3, 3, 17, 30, tzinfo=UTC), "valid"),  # 18:30 CET
    ("Europe/Berlin", datetime(2026, 7, 7, 5, 30, tzinfo=UTC), "valid"),  # 07:30 CEST
    ("Europe/Berlin", datetime(2026, 7, 7, 17, 30, tzinfo=UTC), "outside_hours"),  # 19:30 CEST
    ("America/New_York", datetime(2026, 3, 3, 12, 30, tzinfo=UTC), "valid"),  # 07:30 EST
    ("America/New_York", datetime(2026, 3, 3, 11, 30, tzinfo=UTC), "outside_hours"),  # 06:30 EST
    ("America/New_York", datetime(2026, 3, 4, 0, 30, tzinfo=UTC), "outside_hours"),  # Tue 19:30 EST
])
def test_permit_hours_are_the_sites_wall_clock(tz, at_utc, expected):
    p = permit(valid_to=datetime(2026, 12, 31, tzinfo=UTC), hours=DAY_HOURS)
    assert permits.permit_status(p, at_utc, tz) == expected


NIGHTS = [{"days": "mon-fri", "from": "18:00", "to": "08:00"}]


@pytest.mark.parametrize("local, inside", [
    (datetime(2026, 3, 6, 20, 0), True),  # Friday evening
    (datetime(2026, 3, 7, 6, 0), True),  # Saturday morning: the end of Friday's night
    (datetime(2026, 3, 7, 8, 0), False),  # ... which ends at 08:00
    (datetime(2026, 3, 7, 20, 0), False),  # Saturday evening
    (datetime(2026, 3, 8, 6, 0), False),  # Sunday morning
    (datetime(2026, 3, 9, 6, 0), False),  # Monday morning: Sunday night is not covered
    (datetime(2026, 3, 9, 12, 0), False),  # Monday midday
    (datetime(2026, 3, 9, 18, 0), True),  # Monday evening
    (datetime(2026, 3, 10, 7, 59), True),  # Tuesday morning: the end of Monday's night
])
def test_overnight_hours_belong_to_the_day_they_begin(local, inside):
    at = local.replace(tzinfo=BERLIN)
    assert permits.within_hours(NIGHTS, at, "Europe/Berlin") is inside
    p = permit(valid_to=datetime(2026, 12, 31, tzinfo=UTC), hours=NIGHTS)
    assert permits.permit_status(p, at.astimezone(UTC), "Europe/Berlin") == ("valid" if inside else "outside_hours")


def visitor_pass(**kw) -> VisitorPass:
    fields = dict(plate="GUEST1", valid_from=START, valid_to=START + timedelta(hours=5), revoked_at=None)
    fields.update(kw)
    return VisitorPass(**fields)


@pytest.mark.parametrize("minutes", [1, 60, 120, 299])
def test_revoked_pass_admits_nobody_even_inside_its_window(minutes):
    at = START + timedelta(minutes=minutes)
    assert permits.pass_status(visitor_pass(), at) == "valid"
    for revoked in (START - timedelta(days=1), START + timedelta(minutes=minutes - 1), START + timedelta(hours=6)):
        assert permits.pass_status(visitor_pass(revoked_at=revoked), at) == "revoked"


@pytest.mark.parametrize("minutes, expected", [
    (-1, "not_yet_valid"), (0, "valid"), (299, "valid"), (300, "expired"), (301, "expired"), (5 * 60 + 59, "expired")])
def test_pass_ends_at_its_instant_not_at_the_end_of_its_day(minutes, expected):
    """START + 5 h is 23:00 UTC: the rest of that calendar day is outside the pass."""
    assert permits.pass_status(visitor_pass(), START + timedelta(minutes=minutes)) == expected

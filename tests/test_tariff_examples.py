"""Worked examples: tariffs shaped like real published ones, priced by hand.

Each tariff below is the JSON a ``TariffVersion.rules`` would hold. The figures are
plausible, not a copy of any operator's price list; the *shapes* (per-started-step
duration bands, a rolling 24 h maximum, a capped night rate, first hour free) are the
ones published by airports, city-centre garages and shopping centres.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from parkinglot.billing.tariff import Paid, Tariff, quote

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")

AIRPORT_RULES = {
    "schema": 1,
    "currency": "EUR",
    "rates": {
        "standard": {
            "label": "Airport P2",
            "bands": [
                {"from_min": 0, "to_min": 60, "step_min": 30, "price": "2.50"},
                {"from_min": 60, "to_min": 240, "step_min": 60, "price": "4.00"},
                {"from_min": 240, "to_min": None, "step_min": 60, "price": "2.00"},
            ],
        },
    },
    "week": {"mon-sun": "standard"},
    "daily_cap": {"amount": "30.00", "day": "rolling"},
    "free": {"minutes": 10, "mode": "threshold"},
    "exit_grace_min": 15,
    "lost_ticket": "60.00",
}

CITY_RULES = {
    "schema": 1,
    "currency": "EUR",
    "rates": {
        "day": {"label": "Day", "bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "3.00"}]},
        "night": {"label": "Night", "cap": "5.00",
                  "bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "1.00"}]},
        "sunday": {"label": "Sunday/holiday",
                   "bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "1.50"}]},
    },
    "week": {
        "mon-sat": [{"from": "00:00", "to": "08:00", "rate": "night"},
                    {"from": "08:00", "to": "20:00", "rate": "day"},
                    {"from": "20:00", "to": "24:00", "rate": "night"}],
        "sun,holiday": [{"from": "00:00", "to": "08:00", "rate": "night"},
                        {"from": "08:00", "to": "20:00", "rate": "sunday"},
                        {"from": "20:00", "to": "24:00", "rate": "night"}],
    },
    "daily_cap": {"amount": "24.00", "day": "calendar", "change_at": "00:00"},
    "leniency_min": 5,
}

MALL_RULES = {
    "schema": 1,
    "currency": "EUR",
    "rates": {
        "standard": {
            "label": "Mall",
            "bands": [
                {"from_min": 0, "to_min": 120, "step_min": 60, "price": "1.00"},
                {"from_min": 120, "to_min": None, "step_min": 60, "price": "2.00"},
            ],
        },
    },
    "week": {"mon-sun": "standard"},
    "free": {"minutes": 60, "mode": "deducted"},
    "reentry_min": 30,
    "daily_cap": {"amount": "10.00", "day": "calendar", "change_at": "06:00"},
    "exit_grace_min": 10,
    "lost_ticket": "20.00",
}

AIRPORT = Tariff.from_dict(AIRPORT_RULES)
CITY = Tariff.from_dict(CITY_RULES)
MALL = Tariff.from_dict(MALL_RULES)
EXAMPLES = {"airport": AIRPORT, "city": CITY, "mall": MALL}


def fee(entry: datetime, exit: datetime, tariff: Tariff, tz=BERLIN, **kw) -> Decimal:
    return quote(entry, exit, tariff, tz, **kw).amount


def at(y, mo, d, h=0, mi=0, tz=BERLIN) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=tz)


# --- airport --------------------------------------------------------------------------------------

AIRPORT_CASES = [
    (timedelta(minutes=8), "0.00"),        # drop-off inside the 10 min free time
    (timedelta(minutes=10), "0.00"),
    (timedelta(minutes=11), "2.50"),       # over the free time: priced in full from entry
    (timedelta(minutes=45), "5.00"),       # two started half hours
    (timedelta(hours=2, minutes=10), "13.00"),   # 5.00 + started hours at 60 and 120 min
    (timedelta(hours=5), "19.00"),         # 5 + 3 x 4.00 + 1 x 2.00 (the step at 240 min)
    (timedelta(hours=10), "29.00"),        # 5 + 12 + 6 x 2.00
    (timedelta(hours=12), "30.00"),        # 33.00 capped at 30.00 for the first 24 h
    (timedelta(hours=24), "30.00"),
    (timedelta(hours=26), "34.00"),        # second 24 h: steps at 24 h and 25 h, 2.00 each
    (timedelta(days=3, hours=1), "92.00"),  # three capped days and one more hour
]


@pytest.mark.parametrize("stay,expected", AIRPORT_CASES)
def test_airport_daily_cap(stay, expected):
    """Airport short/long stay with a rolling 24 h maximum.

    Rules modelled: first 60 min 2.50 per started 30 min; 60-240 min 4.00 per started
    hour; from 240 min 2.00 per started hour (duration bands counted from entry, never
    restarting); at most 30.00 per 24 h counted from entry (rolling, not midnight);
    10 min free drop-off (a stay of at most 10 min is free, a longer one pays from entry);
    15 min to leave after paying; lost ticket 60.00.
    """
    entry = at(2024, 5, 6, 15, 0)
    assert fee(entry, entry + stay, AIRPORT) == Decimal(expected)


def test_airport_day_is_24h_of_elapsed_time_even_over_dst():
    """The rolling 24 h day ignores the wall clock: entry Sat 30 Mar 2024 12:00 CET, the
    first day ends Sun 31 Mar 13:00 CEST (24 h later, the clocks went forward)."""
    entry = at(2024, 3, 30, 12, 0)
    first_day_end = entry + timedelta(hours=24)
    assert first_day_end.astimezone(BERLIN).hour == 12  # naive wall arithmetic would say 12:00...
    end = entry.astimezone(ZoneInfo("UTC")) + timedelta(hours=24)
    assert end.astimezone(BERLIN).hour == 13            # ...the true instant is 13:00 CEST
    assert fee(entry, end, AIRPORT) == Decimal("30.00")
    assert fee(entry, end + timedelta(minutes=1), AIRPORT) == Decimal("32.00")
    q = quote(entry, end + timedelta(minutes=1), AIRPORT, BERLIN)
    day_cap = [ln for ln in q.lines if ln.kind == "daily_cap"]
    assert day_cap[0].end == end


def test_airport_pay_station_then_exit_grace():
    """Pay at 2 h 10 min (13.00, covered until 3 h after entry); 15 min to leave after that."""
    entry = at(2024, 5, 6, 15, 0)
    q = quote(entry, entry + timedelta(hours=2, minutes=10), AIRPORT, BERLIN)
    assert q.amount == Decimal("13.00") and q.paid_until == entry + timedelta(hours=3)
    paid = Paid(q.amount_minor, q.paid_until)
    late_ok = quote(entry, entry + timedelta(hours=3, minutes=15), AIRPORT, BERLIN, paid=paid)
    assert late_ok.due == 0 and late_ok.basis == "exit_grace"
    too_late = quote(entry, entry + timedelta(hours=3, minutes=16), AIRPORT, BERLIN, paid=paid)
    assert too_late.amount == Decimal("17.00") and too_late.due == Decimal("4.00")


def test_airport_lost_ticket():
    """Lost ticket: 60.00 flat, unless the plate's entry read proves the entry time."""
    entry = at(2024, 5, 6, 15, 0)
    exit_ = entry + timedelta(hours=2, minutes=10)
    lost = quote(entry, exit_, AIRPORT, BERLIN, lost_ticket=True)
    assert lost.amount == Decimal("60.00") and lost.basis == "lost_ticket" and lost.paid_until is None
    proven = quote(entry, exit_, AIRPORT, BERLIN, lost_ticket=True, entry_proven=True)
    assert proven.amount == Decimal("13.00")


# --- city centre -------------------------------------------------------------------------------

CITY_CASES = [
    # (entry, exit, expected, why)
    (at(2024, 5, 6, 9, 0), at(2024, 5, 6, 11, 30), "9.00", "three started day hours"),
    (at(2024, 5, 6, 9, 0), at(2024, 5, 6, 11, 5), "6.00", "5 min leniency: the third hour is not charged"),
    (at(2024, 5, 6, 9, 0), at(2024, 5, 6, 11, 6), "9.00", "6 min into the third hour: charged"),
    (at(2024, 5, 6, 19, 30), at(2024, 5, 6, 22, 30), "6.00", "19:30-20:00 day 3.00, then 3 night hours"),
    (at(2024, 5, 6, 18, 0), at(2024, 5, 7, 9, 30), "17.00", "2 day hours, night capped 5.00, 2 day hours"),
    (at(2024, 5, 6, 0, 0), at(2024, 5, 7, 0, 0), "24.00", "5 + 36 + 4 capped at 24.00 for the day"),
    (at(2024, 5, 5, 10, 0), at(2024, 5, 5, 13, 0), "4.50", "Sunday daytime rate"),
]


@pytest.mark.parametrize("entry,exit,expected,why", CITY_CASES, ids=[c[3] for c in CITY_CASES])
def test_city_centre_night_rate(entry, exit, expected, why):
    """City-centre garage with a capped night rate.

    Rules modelled: Mon-Sat 08:00-20:00 3.00 per started hour; every night 20:00-08:00
    1.00 per started hour, at most 5.00 per night (one window, across midnight);
    Sundays and public holidays 08:00-20:00 1.50 per started hour; at most 24.00 per
    calendar day (local midnight to midnight); 5 min leniency on every started hour.
    Each time-of-day band starts its own hour count when it begins.
    """
    assert fee(entry, exit, CITY) == Decimal(expected), why


def test_city_centre_holiday_from_the_site_calendar():
    """Whit Monday (20 May 2024) is in the site's calendar: the Sunday/holiday rate applies."""
    entry, exit_ = at(2024, 5, 20, 10, 0), at(2024, 5, 20, 13, 0)
    assert fee(entry, exit_, CITY) == Decimal("9.00")
    assert fee(entry, exit_, CITY, holidays={date(2024, 5, 20)}) == Decimal("4.50")


def test_city_centre_night_follows_the_wall_clock_on_dst_night():
    """Night of 30/31 Mar 2024 (clocks forward at 02:00): the night window 20:00-08:00 is
    11 h of elapsed time; Sunday's daytime rate starts at 08:00 CEST (06:00 UTC)."""
    q = quote(at(2024, 3, 30, 19, 0), at(2024, 3, 31, 9, 0), CITY, BERLIN)
    assert q.amount == Decimal("9.50")  # 3.00 day + 5.00 night (capped) + 1.50 Sunday
    night = [ln for ln in q.lines if ln.kind == "charge" and ln.rate == "night"]
    sunday = [ln for ln in q.lines if ln.kind == "charge" and ln.rate == "sunday"]
    assert sum(ln.units for ln in night) == 11  # 11 started night hours before the cap
    assert sunday[0].start == at(2024, 3, 31, 8, 0) == datetime(2024, 3, 31, 6, 0, tzinfo=ZoneInfo("UTC"))


def test_city_centre_quote_explains_itself():
    """The breakdown names each window and the cap; its lines add up to the amount."""
    q = quote(at(2024, 5, 6, 18, 0), at(2024, 5, 7, 9, 30), CITY, BERLIN)
    kinds = [(ln.kind, ln.rate) for ln in q.lines]
    assert kinds == [("charge", "day"), ("charge", "night"), ("charge", "day"), ("window_cap", "night")]
    assert sum(ln.amount for ln in q.lines) == q.amount == Decimal("17.00")
    assert q.next_band_at == at(2024, 5, 7, 20, 0)
    json.dumps(q.to_dict())


# --- shopping mall -------------------------------------------------------------------------------

MALL_CASES = [
    (timedelta(minutes=55), "0.00"),
    (timedelta(hours=1), "0.00"),
    (timedelta(hours=1, minutes=1), "1.00"),
    (timedelta(hours=2, minutes=30), "2.00"),
    (timedelta(hours=3), "2.00"),
    (timedelta(hours=3, minutes=20), "4.00"),
    (timedelta(hours=8), "10.00"),   # 2 + 5 x 2.00 = 12.00, capped at 10.00
]


@pytest.mark.parametrize("stay,expected", MALL_CASES)
def test_mall_first_hour_free(stay, expected):
    """Shopping centre, first hour free.

    Rules modelled: the first 60 min of every visit are free (deducted: a longer visit
    pays only for the time after the first hour); then 1.00 per started hour for two
    hours, then 2.00 per started hour; at most 10.00 per calendar day running from 06:00
    to 06:00; re-entering within 30 min of leaving gets no new free hour; 10 min to
    leave after paying; lost ticket 20.00.
    """
    entry = at(2024, 5, 11, 10, 0)
    assert fee(entry, entry + stay, MALL) == Decimal(expected)


def test_mall_reentry_does_not_restart_the_free_hour():
    entry = at(2024, 5, 11, 14, 0)
    stay = entry + timedelta(minutes=45)
    assert fee(entry, stay, MALL) == Decimal("0.00")
    assert fee(entry, stay, MALL, previous_exit=entry - timedelta(minutes=30)) == Decimal("1.00")
    assert fee(entry, stay, MALL, previous_exit=entry - timedelta(minutes=31)) == Decimal("0.00")


def test_mall_overnight_day_changes_at_0600():
    """Entry 20:00, exit 10:00 next day: billing from 21:00. Day to 06:00: 1+1+2x7 = 16.00,
    capped 10.00; from 06:00: four started hours at 2.00 = 8.00."""
    q = quote(at(2024, 5, 11, 20, 0), at(2024, 5, 12, 10, 0), MALL, BERLIN)
    assert q.amount == Decimal("18.00")
    (cap,) = [ln for ln in q.lines if ln.kind == "daily_cap"]
    assert cap.amount == Decimal("-6.00") and cap.end == at(2024, 5, 12, 6, 0)


def test_mall_paid_until_and_exit_grace():
    """Paying 2.00 at 2 h 30 covers the stay until 3 h (the next started hour); 10 min grace."""
    entry = at(2024, 5, 11, 10, 0)
    q = quote(entry, entry + timedelta(hours=2, minutes=30), MALL, BERLIN)
    assert (q.amount, q.paid_until) == (Decimal("2.00"), entry + timedelta(hours=3))
    paid = Paid(q.amount_minor, q.paid_until)
    assert quote(entry, entry + timedelta(hours=3, minutes=10), MALL, BERLIN, paid=paid).due == 0
    assert quote(entry, entry + timedelta(hours=3, minutes=11), MALL, BERLIN, paid=paid).due == Decimal("2.00")


def test_examples_round_trip_through_json():
    for name, tariff in EXAMPLES.items():
        text = json.dumps(tariff.to_dict())
        assert Tariff.from_dict(json.loads(text)) == tariff, name
    assert AIRPORT.to_dict() == {**AIRPORT_RULES, "rounding": {"mode": "half_up", "increment": "0.01"}}


def test_new_york_example_same_rules_other_zone():
    """The same city tariff in New York: the fall-back night (3 Nov 2024) is 13 h long."""
    q = quote(at(2024, 11, 2, 20, 0, NEW_YORK), at(2024, 11, 3, 8, 0, NEW_YORK), CITY, NEW_YORK)
    (night,) = [ln for ln in q.lines if ln.kind == "charge"]
    assert night.units == 13 and q.amount == Decimal("5.00")

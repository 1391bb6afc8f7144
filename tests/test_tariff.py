"""Unit tests of the tariff engine: validation, bands, graces, permits, money, breakdown."""
from __future__ import annotations

import copy
import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from parkinglot.billing import tariff as tariff_mod
from parkinglot.billing.tariff import (
    Band, DailyCap, DaySchedule, FreeTime, InvalidQuoteInput, InvalidTariff, Paid, PermitCover, PermitHours,
    Rate, Rounding, Tariff, TariffError, TimeBand, UnknownCurrency, clear_caches, quote,
)

from parkinglot.billing.tariff_model import WEEKDAYS

from .test_tariff_examples import AIRPORT, CITY, CITY_RULES, MALL

BERLIN = ZoneInfo("Europe/Berlin")
UTC = timezone.utc
T0 = datetime(2024, 5, 6, 9, 0, tzinfo=BERLIN)  # a Monday


def hourly(price="1.00", currency="EUR", **extra) -> Tariff:
    rules = {"currency": currency,
             "rates": {"std": {"bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": price}]}},
             "week": {"mon-sun": "std"}}
    rules.update(extra)
    return Tariff.from_dict(rules)


def rules_with_bands(bands):
    return {"currency": "EUR", "rates": {"std": {"bands": bands}}, "week": {"mon-sun": "std"}}


def fee(tariff, minutes, entry=T0, **kw):
    return quote(entry, entry + timedelta(minutes=minutes), tariff, BERLIN, **kw).amount


# --- bad input: one test each ------------------------------------------------------------------------

def test_exit_before_entry_is_refused():
    with pytest.raises(InvalidQuoteInput, match="before entry"):
        quote(T0, T0 - timedelta(seconds=1), AIRPORT, BERLIN)


def test_naive_datetime_is_refused():
    with pytest.raises(InvalidQuoteInput, match="naive"):
        quote(datetime(2024, 5, 6, 9, 0), T0 + timedelta(hours=1), AIRPORT, BERLIN)
    with pytest.raises(InvalidQuoteInput, match="naive"):
        quote(T0, datetime(2024, 5, 6, 12, 0), AIRPORT, BERLIN)


def test_unknown_currency_is_refused():
    with pytest.raises(UnknownCurrency, match="unknown currency 'EUX'"):
        hourly(currency="EUX")
    with pytest.raises(UnknownCurrency):
        Tariff("eur", (Rate("std", (Band(0, None, 60, Decimal("1")),)),),
               (DaySchedule(frozenset(WEEKDAYS), (TimeBand(0, 1440, "std"),)),))


def test_overlapping_bands_are_refused_at_creation_naming_the_band():
    bands = [{"from_min": 0, "to_min": 90, "step_min": 30, "price": "1.00"},
             {"from_min": 60, "to_min": None, "step_min": 60, "price": "2.00"}]
    with pytest.raises(InvalidTariff, match=r"bands\[1\] \(60 min to open-ended.*\) overlaps bands\[0\]") as e:
        Tariff.from_dict(rules_with_bands(bands))
    assert e.value.path == "rates['std'].bands[1]"


def test_gapped_bands_are_refused_at_creation_naming_the_band():
    bands = [{"from_min": 0, "to_min": 60, "step_min": 30, "price": "1.00"},
             {"from_min": 90, "to_min": None, "step_min": 60, "price": "2.00"}]
    with pytest.raises(InvalidTariff, match=r"gap between bands\[0\] .* and bands\[1\] .* from 60 to 90 min") as e:
        Tariff.from_dict(rules_with_bands(bands))
    assert e.value.path == "rates['std'].bands[1]"


@pytest.mark.parametrize("bands,message", [
    ([{"from_min": 30, "to_min": None, "step_min": 60, "price": "1"}], r"gap before bands\[0\]"),
    ([{"from_min": 0, "to_min": 60, "step_min": 60, "price": "1"}], r"gap after bands\[0\].*open-ended"),
    ([{"from_min": 0, "to_min": None, "step_min": 60, "price": "1"},
      {"from_min": 60, "to_min": None, "step_min": 60, "price": "1"}], r"bands\[1\].*overlaps bands\[0\]"),
    ([{"from_min": 0, "to_min": 90, "step_min": 60, "price": "1"},
      {"from_min": 90, "to_min": None, "step_min": 60, "price": "1"}], r"not a whole number of 60-min steps"),
    ([{"from_min": 0, "to_min": 0, "step_min": 60, "price": "1"}], r"positive number of minutes"),
    ([], r"at least one band"),
])
def test_other_band_mistakes_are_refused(bands, message):
    with pytest.raises(InvalidTariff, match=message):
        Tariff.from_dict(rules_with_bands(bands))


def test_time_bands_with_gaps_or_overlaps_are_refused_naming_the_band():
    rules = copy.deepcopy(CITY_RULES)
    rules["week"]["mon-sat"][1]["to"] = "21:00"
    with pytest.raises(InvalidTariff, match=r"band \[2\] 20:00-24:00 -> 'night' overlaps band \[1\] 08:00-21:00") as e:
        Tariff.from_dict(rules)
    assert e.value.path == "week['mon-sat'][2]"
    rules["week"]["mon-sat"][1]["to"] = "19:00"
    with pytest.raises(InvalidTariff, match=r"gap between band \[1\].* and band \[2\].*from 19:00 to 20:00"):
        Tariff.from_dict(rules)
    rules["week"]["mon-sat"][1]["to"] = "20:00"
    rules["week"]["mon-sat"][2]["to"] = "23:00"
    with pytest.raises(InvalidTariff, match=r"from 23:00 to 24:00"):
        Tariff.from_dict(rules)


@pytest.mark.parametrize("week,message", [
    ({"mon-fri": "std"}, "no schedule for sat, sun"),
    ({"mon-sun": "std", "sat": "std"}, "'sat' is covered twice"),
    ({"mon-sun": "nope"}, "unknown rate 'nope'"),
    ({"mon-sun": [{"from": "00:00", "to": "25:00", "rate": "std"}]}, "not a time of day"),
    ({"monday": "std"}, "unknown day 'monday'"),
])
def test_week_mistakes_are_refused(week, message):
    rules = rules_with_bands([{"from_min": 0, "to_min": None, "step_min": 60, "price": "1"}])
    rules["week"] = week
    with pytest.raises(InvalidTariff, match=message):
        Tariff.from_dict(rules)


@pytest.mark.parametrize("change,message", [
    ({"max_per_stay": 10.5}, "not 10.5"),                     # floats never hold money
    ({"lost_ticket": "-1"}, "non-negative"),
    ({"rounding": {"increment": "0.001"}}, "finer than the minor unit"),
    ({"rounding": {"mode": "bankers"}}, "mode must be one of"),
    ({"daily_cap": {"amount": "10.03", "day": "calendar"}, "rounding": {"increment": "0.05"}},
     "not a multiple of the rounding increment"),
    ({"daily_cap": {"amount": "10", "day": "weekly"}}, "'rolling' or 'calendar'"),
    ({"daily_cap": {"amount": "10", "day": "rolling", "change_at": "06:00"}}, "no change time"),
    ({"free": {"minutes": 10, "mode": "sometimes"}}, "'threshold' or 'deducted'"),
    ({"leniency_min": -5}, "non-negative"),
    ({"color": "blue"}, r"unknown key\(s\) \['color'\]"),
    ({"schema": 2}, "unsupported schema version"),
])
def test_tariff_rule_mistakes_are_refused(change, message):
    rules = rules_with_bands([{"from_min": 0, "to_min": None, "step_min": 60, "price": "1"}])
    rules.update(change)
    with pytest.raises(InvalidTariff, match=message):
        Tariff.from_dict(rules)


def test_errors_are_value_errors():
    assert issubclass(TariffError, ValueError)
    assert issubclass(InvalidTariff, TariffError) and issubclass(UnknownCurrency, InvalidTariff)
    assert issubclass(InvalidQuoteInput, TariffError)


def test_other_bad_quote_inputs():
    with pytest.raises(InvalidQuoteInput, match="unknown time zone"):
        quote(T0, T0, AIRPORT, "Mars/Olympus")
    with pytest.raises(InvalidQuoteInput, match="previous exit .* after this entry"):
        quote(T0, T0 + timedelta(hours=1), MALL, BERLIN, previous_exit=T0 + timedelta(minutes=1))
    with pytest.raises(InvalidQuoteInput, match="no lost-ticket fee"):
        quote(T0, T0 + timedelta(hours=1), CITY, BERLIN, lost_ticket=True)
    with pytest.raises(InvalidQuoteInput, match="permit rate 'gold' is not a rate"):
        quote(T0, T0 + timedelta(hours=1), CITY, BERLIN,
              permit=PermitCover(T0, T0 + timedelta(days=1), rate="gold"))
    with pytest.raises(InvalidQuoteInput, match="non-negative integer"):
        Paid(Decimal("1.00"), None)  # type: ignore[arg-type]
    with pytest.raises(InvalidQuoteInput, match="valid_to must be after"):
        PermitCover(T0, T0)


# --- currencies and rounding -------------------------------------------------------------------------

@pytest.mark.parametrize("currency,price,expected,minor", [
    ("EUR", "2.50", Decimal("7.50"), 750),
    ("JPY", "300", Decimal("900"), 900),
    ("KWD", "0.250", Decimal("0.750"), 750),
])
def test_currency_minor_units(currency, price, expected, minor):
    q = quote(T0, T0 + timedelta(hours=2, minutes=1), hourly(price, currency), BERLIN)
    assert q.amount == expected and q.amount_minor == minor and q.currency == currency
    assert str(q.amount) == str(expected)


@pytest.mark.parametrize("code,exp", [("EUR", 2), ("USD", 2), ("GBP", 2), ("CHF", 2), ("JPY", 0), ("KRW", 0),
                                      ("ISK", 0), ("CLP", 0), ("KWD", 3), ("BHD", 3), ("TND", 3), ("CLF", 4)])
def test_iso_4217_minor_units(code, exp):
    assert tariff_mod.currency_exponent(code) == exp


@pytest.mark.parametrize("mode,expected", [("half_up", "1.10"), ("half_even", "1.10"), ("up", "1.10"),
                                           ("down", "1.05")])
def test_rounding_to_five_centimes(mode, expected):
    """CHF cash rounding: 0.36 per started 15 min, 3 steps = 1.08 -> 1.10 (or 1.05 rounding down)."""
    t = Tariff.from_dict({"currency": "CHF", "rounding": {"mode": mode, "increment": "0.05"},
                          "rates": {"std": {"bands": [{"from_min": 0, "to_min": None, "step_min": 15,
                                                       "price": "0.36"}]}},
                          "week": {"mon-sun": "std"}})
    q = quote(T0, T0 + timedelta(minutes=40), t, BERLIN)
    assert q.amount == Decimal(expected)
    assert sum(ln.amount for ln in q.lines) == q.amount
    assert [ln.kind for ln in q.lines] == ["charge", "rounding"]


def test_half_even_and_half_up_differ_on_a_tie():
    """0.025 per minute: 3 minutes = 0.075 -> half_up 0.08, half_even 0.08; 1 minute 0.025 -> 0.03 / 0.02."""
    def t(mode):
        return Tariff.from_dict({"currency": "EUR", "rounding": {"mode": mode},
                                 "rates": {"std": {"bands": [{"from_min": 0, "to_min": None, "step_min": 1,
                                                              "price": "0.025"}]}},
                                 "week": {"mon-sun": "std"}})
    assert fee(t("half_up"), 1) == Decimal("0.03")
    assert fee(t("half_even"), 1) == Decimal("0.02")
    assert fee(t("half_up"), 3) == fee(t("half_even"), 3) == Decimal("0.08")


def test_paid_until_accounts_for_rounding():
    """0.02 per started minute, total rounded half-up to 0.05: the 6th minute (0.12) still rounds
    to 0.10, so 0.10 paid after 4.5 min covers the stay until the 7th minute starts."""
    t = Tariff.from_dict({"currency": "EUR", "rounding": {"increment": "0.05"}, "rates": {"std": {"bands": [
        {"from_min": 0, "to_min": None, "step_min": 1, "price": "0.02"}]}}, "week": {"mon-sun": "std"}})
    q = quote(T0, T0 + timedelta(seconds=30), t, BERLIN)
    assert q.amount == 0 and q.paid_until == T0 + timedelta(minutes=1)   # 0.02 rounds to 0.00
    q = quote(T0, T0 + timedelta(seconds=270), t, BERLIN)
    assert q.amount == Decimal("0.10") and q.paid_until == T0 + timedelta(minutes=6)
    assert quote(T0, q.paid_until, t, BERLIN).amount == Decimal("0.10")
    assert quote(T0, q.paid_until + timedelta(microseconds=1), t, BERLIN).amount == Decimal("0.15")


# --- bands ------------------------------------------------------------------------------------------

def test_cumulative_bands_per_started_step():
    """0-1 h: 2.00 per started 30 min; 1-3 h: 1.50 per started hour; then 3.00 flat once."""
    t = Tariff.from_dict(rules_with_bands([
        {"from_min": 0, "to_min": 60, "step_min": 30, "price": "2.00"},
        {"from_min": 60, "to_min": 180, "step_min": 60, "price": "1.50"},
        {"from_min": 180, "to_min": None, "step_min": None, "price": "3.00"},
    ]))
    assert [fee(t, m) for m in (0, 1, 30, 31, 60, 61, 120, 121, 180, 181, 10_000)] == [
        Decimal(x) for x in ("0.00", "2.00", "2.00", "4.00", "4.00", "5.50", "5.50", "7.00", "7.00", "10.00",
                             "10.00")]
    q = quote(T0, T0 + timedelta(minutes=100), t, BERLIN)
    assert q.paid_until == T0 + timedelta(minutes=120)
    assert q.next_band_at == T0 + timedelta(minutes=180)
    assert [ln.units for ln in q.lines] == [2, 1]


def test_seconds_count_a_started_step():
    assert fee(hourly(), 60) == Decimal("1.00")
    q = quote(T0, T0 + timedelta(minutes=60, microseconds=1), hourly(), BERLIN)
    assert q.amount == Decimal("2.00")


def test_max_per_stay_and_paid_until_none():
    t = hourly("2.00", max_per_stay="10.00")
    q = quote(T0, T0 + timedelta(hours=7), t, BERLIN)
    assert q.amount == Decimal("10.00") and q.paid_until is None
    assert [ln.kind for ln in q.lines] == ["charge", "stay_max"]
    assert quote(T0, T0 + timedelta(hours=4, minutes=1), t, BERLIN).paid_until is None


def test_window_cap_applies_per_window():
    """Mon 20:00 - Wed 08:00 under the city tariff (night 1.00/h, at most 5.00 per night window;
    24.00 per calendar day). Monday: 4 night hours = 4.00. Tuesday: the first night's 5th hour
    (1.00, window now at its 5.00 cap), then 12 day hours would be 36.00 but the day is capped
    at 24.00, so the second night's first hours (Tue 20-24) cost nothing. Wednesday: the
    second night window has spent 0.00, so it charges up to its own 5.00 cap. 4 + 24 + 5."""
    q = quote(datetime(2024, 5, 6, 20, 0, tzinfo=BERLIN), datetime(2024, 5, 8, 8, 0, tzinfo=BERLIN), CITY, BERLIN)
    assert q.amount == Decimal("33.00")
    caps = sorted((ln.kind, ln.amount) for ln in q.lines if ln.amount < 0)
    # Tuesday's cap took 13.00 of day hours and 4.00 of the second night; the first night's
    # cap took 7 of its 12 hours, the second night's cap 3 of the 8 it charged on Wednesday.
    assert caps == [("daily_cap", Decimal("-17.00")), ("window_cap", Decimal("-7.00")),
                    ("window_cap", Decimal("-3.00"))]


# --- graces and re-entry ------------------------------------------------------------------------------

def test_threshold_free_time_and_paid_until():
    t = hourly(free={"minutes": 15, "mode": "threshold"})
    q = quote(T0, T0 + timedelta(minutes=15), t, BERLIN)
    assert (q.amount, q.basis, q.paid_until) == (Decimal("0.00"), "free_time", T0 + timedelta(minutes=15))
    assert sum(ln.amount for ln in q.lines) == 0
    assert [ln.kind for ln in q.lines] == ["charge", "free_time"]
    q = quote(T0, T0 + timedelta(minutes=16), t, BERLIN)
    assert (q.amount, q.basis) == (Decimal("1.00"), "tariff")
    assert quote(T0, T0 + timedelta(minutes=5), t, BERLIN).next_band_at == T0 + timedelta(minutes=15)


def test_deducted_free_time_starts_the_band_clock_late():
    t = hourly(free={"minutes": 60, "mode": "deducted"})
    q = quote(T0, T0 + timedelta(minutes=30), t, BERLIN)
    assert q.amount == 0 and q.paid_until == T0 + timedelta(minutes=60) and q.next_band_at == T0 + timedelta(hours=1)
    q = quote(T0, T0 + timedelta(minutes=61), t, BERLIN)
    assert q.amount == Decimal("1.00") and q.billed_from == T0 + timedelta(hours=1)
    assert q.paid_until == T0 + timedelta(hours=2)


def test_leniency_applies_to_each_started_step_and_shifts_paid_until():
    t = hourly(leniency_min=5)
    assert fee(t, 65) == Decimal("1.00") and fee(t, 66) == Decimal("2.00")
    q = quote(T0, T0 + timedelta(minutes=30), t, BERLIN)
    assert q.paid_until == T0 + timedelta(minutes=65)
    assert quote(T0, q.paid_until, t, BERLIN).amount == q.amount


def test_leniency_also_forgives_the_first_minutes():
    """Documented consequence: a stay no longer than the leniency is not charged."""
    t = hourly(leniency_min=5)
    assert fee(t, 5) == 0 and fee(t, 6) == Decimal("1.00")


def test_exit_grace_counts_from_paid_until():
    t = hourly(exit_grace_min=15)
    q = quote(T0, T0 + timedelta(minutes=50), t, BERLIN)
    paid = Paid(q.amount_minor, q.paid_until)
    assert q.paid_until == T0 + timedelta(hours=1)
    assert quote(T0, T0 + timedelta(minutes=75), t, BERLIN, paid=paid).due == 0
    assert quote(T0, q.paid_until + timedelta(microseconds=1), t, BERLIN, paid=paid).basis == "exit_grace"
    late = quote(T0, T0 + timedelta(minutes=76), t, BERLIN, paid=paid)
    assert (late.amount, late.due, late.paid_minor) == (Decimal("2.00"), Decimal("1.00"), 100)


def test_partial_payment_leaves_the_rest_due():
    q = quote(T0, T0 + timedelta(minutes=150), hourly(), BERLIN, paid=Paid(100, None))
    assert (q.amount, q.due, q.due_minor) == (Decimal("3.00"), Decimal("2.00"), 200)


def test_reentry_window_boundaries():
    t = hourly(free={"minutes": 20, "mode": "threshold"}, reentry_min=15)
    stay = 10
    assert fee(t, stay) == 0
    assert fee(t, stay, previous_exit=T0 - timedelta(minutes=15)) == Decimal("1.00")
    assert fee(t, stay, previous_exit=T0 - timedelta(minutes=15, seconds=1)) == 0


# --- lost ticket ----------------------------------------------------------------------------------------

def test_lost_ticket_flat_fee_minus_what_was_paid():
    q = quote(T0, T0 + timedelta(hours=1), AIRPORT, BERLIN, lost_ticket=True, paid=Paid(500, None))
    assert (q.amount, q.due) == (Decimal("60.00"), Decimal("55.00"))
    assert [ln.kind for ln in q.lines] == ["lost_ticket"]


# --- permits ---------------------------------------------------------------------------------------------

RESIDENT_HOURS = (PermitHours(frozenset({"mon", "tue", "wed", "thu", "fri"}), 18 * 60, 8 * 60),)


def test_free_permit_within_its_hours_normal_tariff_outside():
    """Resident permit, weekdays 18:00-08:00, free: Mon 17:00 - Tue 09:00 pays 17-18 and 08-09 (day rate)."""
    permit = PermitCover(T0 - timedelta(days=30), T0 + timedelta(days=30), RESIDENT_HOURS, label="Permit R-17")
    q = quote(datetime(2024, 5, 6, 17, 0, tzinfo=BERLIN), datetime(2024, 5, 7, 9, 0, tzinfo=BERLIN), CITY,
              BERLIN, permit=permit)
    assert q.amount == Decimal("6.00") and q.lines[1].label == "Permit R-17 (free): flat 0.00"
    assert [(ln.rate, ln.amount) for ln in q.lines] == [("day", Decimal("3.00")), ("permit", Decimal("0.00")),
                                                         ("day", Decimal("3.00"))]


def test_permit_at_its_own_rate_and_validity_end():
    """A permit priced at the tariff's 'sunday' rate (1.50/h) that expires at 12:00: 09-12 at 1.50,
    12-14 back to the day rate (a new window, new hour count)."""
    rate_tariff = CITY
    permit = PermitCover(T0 - timedelta(days=1), datetime(2024, 5, 6, 12, 0, tzinfo=BERLIN), rate="sunday")
    q = quote(T0, datetime(2024, 5, 6, 14, 0, tzinfo=BERLIN), rate_tariff, BERLIN, permit=permit)
    assert q.amount == Decimal("4.50") + Decimal("6.00")
    assert q.lines[0].label == "Permit: Sunday/holiday: 3 x started 1 h at 1.50"


def test_permit_from_record_json():
    permit = PermitCover.from_record(T0 - timedelta(days=1), T0 + timedelta(days=1),
                                     [{"days": "mon-fri", "from": "18:00", "to": "08:00"}])
    assert permit.hours == RESIDENT_HOURS
    with pytest.raises(InvalidQuoteInput, match="permit hours must look like"):
        PermitCover.from_record(T0, T0 + timedelta(days=1), [{"days": "mon-fri"}])
    with pytest.raises(InvalidQuoteInput, match="unknown day 'holiday'"):
        PermitCover.from_record(T0, T0 + timedelta(days=1), [{"days": "holiday", "from": "08:00", "to": "09:00"}])


def test_permit_never_costs_more_than_no_permit():
    """A free permit 09:00-09:10 inside a stay 08:30-10:20 would split the day window in two
    (08:30-09:00: 1 started hour, 09:10-10:20: 2 started hours = 9.00) where the visitor pays
    2 started hours (6.00): the best-price rule charges 6.00 and does not apply the permit."""
    t = hourly("3.00")
    hours = (PermitHours(frozenset({"mon"}), 9 * 60, 9 * 60 + 10),)
    permit = PermitCover(T0 - timedelta(days=1), T0 + timedelta(days=1), hours)
    entry = datetime(2024, 5, 6, 8, 30, tzinfo=BERLIN)
    q = quote(entry, entry + timedelta(minutes=110), t, BERLIN, permit=permit)
    assert (q.amount, q.permit_applied) == (Decimal("6.00"), False)
    q = quote(entry, entry + timedelta(minutes=90), t, BERLIN, permit=permit)
    assert (q.amount, q.permit_applied) == (Decimal("6.00"), True)   # a tie: the permit's breakdown


# --- determinism, JSON, breakdown ---------------------------------------------------------------------

def test_same_inputs_same_quote_even_after_caches_are_cleared():
    args = (T0, T0 + timedelta(days=2, hours=3, minutes=7), CITY, "Europe/Berlin")
    first = quote(*args, holidays={date(2024, 5, 7)})
    clear_caches()
    again = quote(*args, holidays=[date(2024, 5, 7)])
    rebuilt = quote(T0, args[1], Tariff.from_dict(json.loads(json.dumps(CITY.to_dict()))), BERLIN,
                    holidays=frozenset({date(2024, 5, 7)}))
    assert first == again == rebuilt
    assert first.to_dict() == rebuilt.to_dict()


def test_quote_times_are_utc_and_json_ready():
    q = quote(T0, T0 + timedelta(hours=1, minutes=6), CITY, BERLIN)
    assert q.entry.tzinfo == UTC and q.entry == T0
    d = q.to_dict()
    assert d["amount"] == "6.00" and d["amount_minor"] == 600 and d["entry"] == "2024-05-06T07:00:00+00:00"
    json.dumps(d)


def test_python_api_builds_the_same_tariff_as_json():
    t = Tariff(
        currency="EUR",
        rates=(Rate("std", (Band(0, 60, 30, "2.00"), Band(60, None, 60, "1.50"))),),
        week=(DaySchedule(frozenset(WEEKDAYS), (TimeBand(0, 1440, "std"),)),),
        rounding=Rounding("half_up"),
        daily_cap=DailyCap(Decimal("12.00"), "calendar", 6 * 60),
        free=FreeTime(10, "threshold"),
    )
    assert Tariff.from_dict(t.to_dict()) == t
    assert t.to_dict()["daily_cap"] == {"amount": "12.00", "day": "calendar", "change_at": "06:00"}
    assert t.rounding.increment == Decimal("0.01")
    assert hash(t) == hash(Tariff.from_dict(t.to_dict()))


def test_tariff_is_immutable():
    with pytest.raises(AttributeError):
        CITY.currency = "USD"  # type: ignore[misc]


def test_midnight_gap_zone():
    """America/Santiago skips 00:00-01:00 on 2024-09-08: the calendar day starts at 01:00 local."""
    zone = ZoneInfo("America/Santiago")
    t = hourly(daily_cap={"amount": "5.00", "day": "calendar"})
    entry = datetime(2024, 9, 7, 20, 0, tzinfo=zone)
    q = quote(entry, entry.astimezone(UTC) + timedelta(hours=10), t, zone)  # 10 h elapsed
    (cap,) = [ln for ln in q.lines if ln.kind == "daily_cap"]
    assert cap.start == datetime(2024, 9, 8, 1, 0, tzinfo=zone)
    assert q.amount == Decimal("9.00")  # Saturday 20-24: 4.00; Sunday from 01:00: 6 hours capped at 5.00


# --- wall-clock edge cases ---------------------------------------------------------------------------

def test_change_time_inside_the_spring_forward_gap_takes_effect_at_the_jump():
    """Calendar day from 02:30 in Berlin: on 31 Mar 2024 the clocks jump 02:00 -> 03:00, so the
    new day starts at the jump (01:00 UTC). 1.00 per started 15 min, at most 1.00 a day: steps
    at 00:50 and 01:05 UTC fall on two different days."""
    t = Tariff.from_dict({"currency": "EUR", "rates": {"q": {"bands": [
        {"from_min": 0, "to_min": None, "step_min": 15, "price": "1.00"}]}}, "week": {"mon-sun": "q"},
        "daily_cap": {"amount": "1.00", "day": "calendar", "change_at": "02:30"}})
    entry = datetime(2024, 3, 31, 0, 50, tzinfo=UTC)
    q = quote(entry, entry + timedelta(minutes=30), t, BERLIN)
    assert q.amount == Decimal("2.00")
    assert tariff_mod.local_instant_us(BERLIN, date(2024, 3, 31).toordinal(), 150) == \
        tariff_mod.to_us(datetime(2024, 3, 31, 1, 0, tzinfo=UTC))


def test_band_inside_the_repeated_hour_applies_both_times():
    """Berlin, 27 Oct 2024, clocks go back 03:00 -> 02:00. Rate 'a' (1.00 per started 15 min) from
    00:00 to 02:30, free rate 'b' after. The wall clock shows 02:00-02:30 twice, so 'a' applies
    00:00-02:30 CEST (10 steps) and again 02:00-02:30 CET (a new window, 2 steps)."""
    t = Tariff.from_dict({"currency": "EUR",
                          "rates": {"a": {"bands": [{"from_min": 0, "to_min": None, "step_min": 15, "price": "1.00"}]},
                                    "b": {"bands": [{"from_min": 0, "to_min": None, "step_min": None, "price": "0"}]}},
                          "week": {"mon-sun": [{"from": "00:00", "to": "02:30", "rate": "a"},
                                               {"from": "02:30", "to": "24:00", "rate": "b"}]}})
    q = quote(datetime(2024, 10, 27, 0, 0, tzinfo=BERLIN), datetime(2024, 10, 27, 4, 0, tzinfo=BERLIN), t, BERLIN)
    assert q.amount == Decimal("12.00")
    assert [(ln.rate, ln.units) for ln in q.lines] == [("a", 10), ("b", 1), ("a", 2), ("b", 1)]


def test_permit_hours_that_began_the_day_before_cover_the_morning():
    """Resident permit mon-fri 18:00-08:00 (free). Tuesday 06:00-09:00: 06-08 is covered by
    Monday's evening window; only 08:00-09:00 is charged."""
    permit = PermitCover(T0 - timedelta(days=7), T0 + timedelta(days=7), RESIDENT_HOURS)
    q = quote(datetime(2024, 5, 7, 6, 0, tzinfo=BERLIN), datetime(2024, 5, 7, 9, 0, tzinfo=BERLIN), CITY, BERLIN,
              permit=permit)
    assert (q.amount, q.permit_applied) == (Decimal("3.00"), True)


def test_holiday_schedule_with_one_weekday_rate():
    """One rate all week, holidays free: only a holiday inside the stay changes anything."""
    t = hourly(week={"mon-sun": "std", "holiday": "free"},
               rates={"std": {"bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "1.00"}]},
                      "free": {"bands": [{"from_min": 0, "to_min": None, "step_min": None, "price": "0"}]}})
    entry, exit_ = datetime(2024, 5, 8, 22, 0, tzinfo=BERLIN), datetime(2024, 5, 10, 2, 0, tzinfo=BERLIN)
    assert quote(entry, exit_, t, BERLIN).amount == Decimal("28.00")
    assert quote(entry, exit_, t, BERLIN, holidays={date(2024, 12, 25)}).amount == Decimal("28.00")
    q = quote(entry, exit_, t, BERLIN, holidays={date(2024, 5, 9), date(2024, 12, 25)})  # Ascension Day
    assert q.amount == Decimal("4.00")  # 22-24 on the 8th, 00-02 on the 10th (a new window)
    assert q.next_band_at is None

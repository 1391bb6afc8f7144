"""Revenue reports: local-time buckets (DST included), splits, reconciliation, occupancy, CSV."""
import csv
import io
import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from parkinglot.billing import disputes, payments, reports, tariffs
from parkinglot.records import sites, stays, users
from parkinglot.records.errors import InvalidInput

from .factories import make_site

NY = ZoneInfo("America/New_York")
UTC = timezone.utc
HOURLY = {
    "schema": 1, "currency": "USD",
    "rates": {"std": {"bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "2.00"}]}},
    "week": {"mon-sun": "std"},
}


def ny(*args, fold: int = 0) -> datetime:
    """A New York wall-clock time (fold=0: the first of a repeated hour) as an aware datetime."""
    return datetime(*args, tzinfo=NY, fold=fold)


@pytest.fixture
def w(session):
    site, entry, exit_ = make_site(session, code="NYC", timezone="America/New_York", currency="USD",
                                   plate_region="us", capacity=10)
    version = tariffs.create_version(session, site, code="STD", name="Standard", rules=HOURLY,
                                     effective_from=datetime(2025, 1, 1, tzinfo=UTC), make_default=True)
    fin = users.create_user(session, username="fin", password="harbour-lantern-test-9", role="finance")
    return {"site": site, "entry": entry, "exit": exit_, "version": version, "user": fin.id, "n": 0}


def stay(session, w, entered, exited=None, fee=None, plate=None):
    w["n"] += 1
    s = stays.open_stay(session, site_id=w["site"].id, plate=plate or f"P{w['n']:04d}", entered_at=entered,
                        entry_lane_id=w["entry"].id, tariff_version_id=w["version"].id)
    if exited is not None:
        stays.close_stay(session, s, exited_at=exited, exit_lane_id=w["exit"].id, fee_minor=fee)
    return s


def pay(session, w, amount, at, *, s=None, method="card", lane=None):
    w["n"] += 1
    return payments.record_payment(session, w["site"], amount_minor=amount, method=method, reference=f"r{w['n']}",
                                   stay=s, at=at, lane_id=lane).payment


def day_rows(rv):
    return {r.group: r.totals for r in rv.rows}


# --- local-time buckets ---------------------------------------------------------------------------

def test_fall_back_day_holds_its_25_hours(session, w):
    """2025-11-02 in New York has 25 hours (EDT -> EST at 02:00). A payment at 00:30 local is in it,
    and so is one at 23:30 local (04:30 UTC the next day); 23:30 on the 1st is not."""
    pay(session, w, 100, ny(2025, 11, 1, 23, 30))      # 03:30Z on the 2nd, still the 1st locally
    pay(session, w, 200, ny(2025, 11, 2, 0, 30))       # 04:30Z: the first half hour of the 25 h day
    pay(session, w, 400, ny(2025, 11, 2, 1, 30, fold=1))  # the repeated hour
    pay(session, w, 800, ny(2025, 11, 2, 23, 30))      # 04:30Z on the 3rd
    pay(session, w, 1600, ny(2025, 11, 3, 0, 30))
    rv = reports.revenue(session, w["site"], date(2025, 11, 1), date(2025, 11, 3), group_by="day")
    got = {k: t.takings_minor for k, t in day_rows(rv).items()}
    assert got == {"2025-11-01": 100, "2025-11-02": 200 + 400 + 800, "2025-11-03": 1600}
    assert day_rows(rv)["2025-11-02"].payments == 3
    assert rv.period.start == datetime(2025, 11, 1, 4, tzinfo=UTC)
    assert rv.period.end == datetime(2025, 11, 4, 5, tzinfo=UTC)


def test_spring_forward_day_holds_its_23_hours(session, w):
    pay(session, w, 100, ny(2026, 3, 8, 0, 15))
    pay(session, w, 200, ny(2026, 3, 8, 23, 45))  # 03:45Z on the 9th
    pay(session, w, 400, ny(2026, 3, 9, 0, 0))     # exactly the next local midnight
    rv = reports.revenue(session, w["site"], date(2026, 3, 8), date(2026, 3, 9), group_by="day")
    assert {k: t.takings_minor for k, t in day_rows(rv).items()} == {"2026-03-08": 300, "2026-03-09": 400}


def test_range_edges_are_local_midnights(session, w):
    pay(session, w, 100, ny(2025, 6, 30, 23, 59))
    pay(session, w, 200, ny(2025, 7, 1, 0, 0))
    pay(session, w, 400, ny(2025, 7, 31, 23, 59, 59))
    pay(session, w, 800, ny(2025, 8, 1, 0, 0))
    rv = reports.revenue(session, w["site"], date(2025, 7, 1), date(2025, 7, 31), group_by="month")
    assert [(r.group, r.totals.takings_minor) for r in rv.rows] == [("2025-07-01", 600)]


def test_every_period_is_listed_even_when_empty(session, w):
    pay(session, w, 100, ny(2025, 7, 3, 12))
    rv = reports.revenue(session, w["site"], date(2025, 7, 1), date(2025, 7, 5), group_by="day")
    assert [r.group for r in rv.rows] == [f"2025-07-0{i}" for i in range(1, 6)]
    assert [r.totals.takings_minor for r in rv.rows] == [0, 0, 100, 0, 0]


def test_weeks_start_on_monday_and_are_clipped_to_the_range(session, w):
    pay(session, w, 100, ny(2025, 10, 29, 12))  # Wednesday
    pay(session, w, 200, ny(2025, 11, 2, 23))   # Sunday (the 25 h day)
    pay(session, w, 400, ny(2025, 11, 3, 1))    # Monday
    pay(session, w, 800, ny(2025, 11, 12, 9))   # Wednesday, outside the range
    rv = reports.revenue(session, w["site"], date(2025, 10, 29), date(2025, 11, 11), group_by="week")
    assert [(r.group, r.period_first.isoformat(), r.period_last.isoformat(), r.totals.takings_minor)
            for r in rv.rows] == [("2025-10-27", "2025-10-29", "2025-11-02", 300),
                                  ("2025-11-03", "2025-11-03", "2025-11-09", 400),
                                  ("2025-11-10", "2025-11-10", "2025-11-11", 0)]


def test_months(session, w):
    pay(session, w, 100, ny(2025, 1, 31, 23, 30))
    pay(session, w, 200, ny(2025, 2, 1, 0, 30))
    pay(session, w, 400, ny(2025, 3, 31, 22))
    rv = reports.revenue(session, w["site"], date(2025, 1, 15), date(2025, 3, 31), group_by="month")
    assert [(r.group, r.totals.takings_minor) for r in rv.rows] == [
        ("2025-01-01", 100), ("2025-02-01", 200), ("2025-03-01", 400)]
    assert rv.rows[0].period_first == date(2025, 1, 15) and rv.rows[-1].period_last == date(2025, 3, 31)


@pytest.mark.parametrize("group_by", ["day", "week", "month"])
def test_buckets_match_a_zoneinfo_reference(session, w, group_by):
    """Random instants around both 2025 DST changes: the database agrees with Python's zoneinfo."""
    rng = random.Random(11)
    lo, hi = datetime(2025, 2, 25, tzinfo=UTC), datetime(2025, 11, 20, tzinfo=UTC)
    expected: dict[str, int] = {}
    instants = [lo + timedelta(seconds=rng.randrange(int((hi - lo).total_seconds()))) for _ in range(150)]
    # plus instants right at the DST changes and local midnights around them
    instants += [datetime(2025, 3, 9, 7, tzinfo=UTC), datetime(2025, 11, 2, 6, tzinfo=UTC),
                 datetime(2025, 11, 2, 4, tzinfo=UTC), datetime(2025, 11, 3, 5, tzinfo=UTC),
                 datetime(2025, 11, 3, 4, 59, 59, 999999, tzinfo=UTC)]
    first, last = date(2025, 3, 1), date(2025, 11, 15)
    for i, at in enumerate(instants):
        amount = 100 + i
        pay(session, w, amount, at)
        d = at.astimezone(NY).date()
        if not first <= d <= last:
            continue
        key = {"day": d, "week": d - timedelta(days=d.weekday()), "month": d.replace(day=1)}[group_by]
        expected[key.isoformat()] = expected.get(key.isoformat(), 0) + amount
    rv = reports.revenue(session, w["site"], first, last, group_by=group_by)
    got = {r.group: r.totals.takings_minor for r in rv.rows if r.totals.takings_minor}
    assert got == expected


# --- what is counted where ------------------------------------------------------------------------

def test_refunds_and_adjustments_are_shown_apart_from_takings(session, w):
    s = stay(session, w, ny(2025, 7, 1, 9), ny(2025, 7, 1, 11), fee=400)
    pay(session, w, 400, ny(2025, 7, 1, 10, 55), s=s)
    payments.refund(session, w["site"], s, amount_minor=150, reason="goodwill", reference="rf", user_id=w["user"])
    payments.adjust(session, w["site"], s, amount_minor=150, reason="goodwill", reference="adj", user_id=w["user"])
    rv = reports.revenue(session, w["site"], date(2025, 7, 1), date(2025, 7, 31), group_by="day")
    t = rv.totals
    assert (t.payments, t.takings_minor) == (1, 400)
    # the refund and adjustment were made "now" (outside July 2025): not in this range
    assert (t.refunds, t.adjustments) == (0, 0)
    today = datetime.now(NY).date()
    rv = reports.revenue(session, w["site"], today - timedelta(days=1), today + timedelta(days=1), group_by="method")
    t = rv.totals
    assert (t.refunds, t.refunds_minor, t.adjustments, t.adjustments_minor) == (1, -150, 1, 150)
    assert t.net_takings_minor == -150
    assert {r.group: r.totals.refunds_minor for r in rv.rows} == {"adjustment": 0, "card": -150}


def test_splits_by_method_lane_and_tariff_add_up_to_the_totals(session, w):
    other_version = tariffs.create_version(session, w["site"], code="EVT", name="Event", rules=HOURLY,
                                           effective_from=datetime(2025, 1, 1, tzinfo=UTC))
    s1 = stay(session, w, ny(2025, 7, 1, 9), ny(2025, 7, 1, 11), fee=400)
    s2 = stays.open_stay(session, site_id=w["site"].id, plate="EVT1", entered_at=ny(2025, 7, 2, 9),
                         tariff_version_id=other_version.id)
    pay(session, w, 400, ny(2025, 7, 1, 10), s=s1, method="cash", lane=w["exit"].id)
    pay(session, w, 300, ny(2025, 7, 1, 10, 30), s=s1, method="card")  # pay station: the stay's exit lane
    pay(session, w, 700, ny(2025, 7, 2, 10), s=s2, method="app")        # no lane at all yet
    pay(session, w, 50, ny(2025, 7, 2, 11), method="permit_fee")         # not about a stay
    rv = reports.revenue(session, w["site"], date(2025, 7, 1), date(2025, 7, 2), group_by="day",
                         splits=("method", "lane", "tariff"))
    assert rv.totals.takings_minor == 1450 and rv.totals.payments == 4
    for name, rows in rv.splits.items():
        assert reports._sum(rows) == rv.totals, name
    assert {r.group: r.totals.takings_minor for r in rv.splits["method"]} == {
        "app": 700, "card": 300, "cash": 400, "permit_fee": 50}
    assert [(r.group, r.label, r.totals.takings_minor) for r in rv.splits["lane"]] == [
        ("NYC-OUT", "Exit", 700), (None, "No lane", 750)]
    assert [(r.group, r.totals.takings_minor) for r in rv.splits["tariff"]] == [
        ("EVT v1", 700), ("STD v1", 700), (None, 50)]
    by_lane = reports.revenue(session, w["site"], date(2025, 7, 1), date(2025, 7, 2), group_by="lane", splits=())
    assert by_lane.rows == rv.splits["lane"]


def test_other_sites_are_not_counted(session, w):
    other, _, _ = make_site(session, code="LA", timezone="America/Los_Angeles", currency="USD")
    payments.record_payment(session, other, amount_minor=999, method="card", reference="la-1",
                            at=ny(2025, 7, 1, 12))
    pay(session, w, 100, ny(2025, 7, 1, 12))
    rv = reports.revenue(session, w["site"], date(2025, 7, 1), date(2025, 7, 1))
    assert rv.totals.takings_minor == 100


# --- bad input ------------------------------------------------------------------------------------

def test_range_longer_than_the_limit_is_refused(session, w):
    with pytest.raises(InvalidInput, match="at most 400"):
        reports.revenue(session, w["site"], date(2024, 1, 1), date(2025, 2, 4))  # 401 days
    reports.revenue(session, w["site"], date(2024, 1, 1), date(2025, 2, 3))  # 400 days: fine
    reports.revenue(session, w["site"], date(2024, 1, 1), date(2025, 2, 4), max_days=500)
    with pytest.raises(InvalidInput, match="at most 31"):
        reports.report(session, w["site"], date(2025, 1, 1), date(2025, 2, 1), max_days=31)


def test_from_after_to_is_refused(session, w):
    with pytest.raises(InvalidInput, match="after"):
        reports.revenue(session, w["site"], date(2025, 7, 2), date(2025, 7, 1))


def test_unknown_grouping_is_refused(session, w):
    with pytest.raises(InvalidInput, match="group_by"):
        reports.revenue(session, w["site"], date(2025, 7, 1), date(2025, 7, 2), group_by="hour")
    with pytest.raises(InvalidInput, match="split"):
        reports.revenue(session, w["site"], date(2025, 7, 1), date(2025, 7, 2), splits=("zone",))


# --- reconciliation and occupancy --------------------------------------------------------------

def test_reconciliation_of_billed_against_paid(session, w):
    paid = stay(session, w, ny(2025, 7, 1, 8), ny(2025, 7, 1, 10), fee=400)
    pay(session, w, 400, ny(2025, 7, 1, 9, 55), s=paid)
    owes = stay(session, w, ny(2025, 7, 1, 8), ny(2025, 7, 1, 14), fee=1200)
    pay(session, w, 200, ny(2025, 7, 1, 13), s=owes)
    owes_more = stay(session, w, ny(2025, 7, 2, 8), ny(2025, 7, 2, 18), fee=2000)
    overpaid = stay(session, w, ny(2025, 7, 2, 8), ny(2025, 7, 2, 9), fee=200)
    pay(session, w, 500, ny(2025, 7, 2, 8, 50), s=overpaid)
    stay(session, w, ny(2025, 6, 30, 8), ny(2025, 6, 30, 9), fee=999)  # exited before the range
    early = stay(session, w, ny(2025, 6, 30, 22), ny(2025, 7, 1, 1), fee=600)  # entered before, left inside
    pay(session, w, 600, ny(2025, 6, 30, 23, 59), s=early)  # paid before the range: not "collected" in it
    # a voided stay: credited in full and refunded, so it owes nothing
    voided = stay(session, w, ny(2025, 7, 2, 8), ny(2025, 7, 2, 12), fee=800)
    pay(session, w, 800, ny(2025, 7, 2, 11, 55), s=voided)
    d = disputes.open_dispute(session, voided, user_id=w["user"], reason="cloned plate")
    disputes.resolve_dispute(session, d, user_id=w["user"], outcome="void", note="owner was abroad")

    p = reports.period(w["site"], date(2025, 7, 1), date(2025, 7, 2))
    rc = reports.reconciliation(session, p, top=2)
    assert rc.stays_exited == 6
    assert rc.billed_minor == 400 + 1200 + 2000 + 200 + 600 + 800
    assert rc.credits_minor == 800
    assert rc.paid_minor == 400 + 200 + 500 + 600 + 0  # voided: 800 paid, 800 refunded
    assert (rc.open_balance_minor, rc.open_balance_stays) == (1000 + 2000, 2)
    assert (rc.overpaid_minor, rc.overpaid_stays) == (300, 1)
    assert [(b.session_id, b.balance_minor) for b in rc.top_open_balances] == [(owes_more.id, 2000), (owes.id, 1000)]
    assert rc.top_open_balances[0].exited_at == ny(2025, 7, 2, 18)
    assert rc.collected.takings_minor == 400 + 200 + 500 + 800  # payments taken on the 1st and 2nd


def test_occupancy_and_peak(session, w):
    # inside at the start of the range: entered on the 30th, one leaves on the 1st, one still open
    # an expired stay (no exit seen) is left out
    exp = stay(session, w, ny(2025, 7, 1, 10, 20))
    stays.expire_overdue(session, w["site"], now=ny(2025, 7, 10))
    session.refresh(exp)
    assert exp.status == "expired"
    stay(session, w, ny(2025, 6, 30, 20), ny(2025, 7, 1, 9), fee=0)
    stay(session, w, ny(2025, 6, 30, 21))
    gone = stay(session, w, ny(2025, 6, 29, 8), ny(2025, 6, 29, 9), fee=0)  # left before: not inside
    assert gone.status == "closed"
    # during the range: three overlap between 10:00 and 10:30 on the 1st
    stay(session, w, ny(2025, 7, 1, 9, 30), ny(2025, 7, 1, 11), fee=0)
    stay(session, w, ny(2025, 7, 1, 10), ny(2025, 7, 1, 10, 30), fee=0)
    stay(session, w, ny(2025, 7, 1, 10, 15), ny(2025, 7, 1, 12, 15), fee=0)
    # a swap at the same instant is not counted as two cars
    stay(session, w, ny(2025, 7, 2, 8), ny(2025, 7, 2, 9), fee=0)
    stay(session, w, ny(2025, 7, 2, 9), ny(2025, 7, 2, 10), fee=0)
    oc = reports.occupancy(session, reports.period(w["site"], date(2025, 7, 1), date(2025, 7, 2)))
    assert oc.occupancy_at_start == 2
    assert oc.stays_entered == 5 and oc.stays_exited == 6
    # durations of the six exits: 13 h, 1.5 h, 0.5 h, 2 h, 1 h, 1 h
    assert oc.average_stay_s == int((13 + 1.5 + 0.5 + 2 + 1 + 1) * 3600 / 6)
    # 09:00 one leaves (1 inside), 09:30 +1 (2), 10:00 +1 (3), 10:15 +1 (4) is the peak
    assert (oc.peak, oc.peak_at) == (4, ny(2025, 7, 1, 10, 15))
    assert oc.capacity == 10 and oc.turnover == Decimal("0.25")  # 5 entries / (10 spaces x 2 days)


def test_peak_is_the_start_when_nothing_arrives(session, w):
    stay(session, w, ny(2025, 6, 30, 20))
    p = reports.period(w["site"], date(2025, 7, 1), date(2025, 7, 1))
    oc = reports.occupancy(session, p)
    assert (oc.peak, oc.peak_at, oc.average_stay_s) == (1, p.start, None)


# --- output ---------------------------------------------------------------------------------------

def test_report_to_dict_and_csv(session, w):
    # a lane code starts with a letter or digit (sites.CODE), so only its name can look like a formula
    weird = sites.create_lane(session, w["site"], code="WEIRD-1", name="=cmd|' /C calc'!A0", direction="exit")
    s = stay(session, w, ny(2025, 7, 1, 9), ny(2025, 7, 1, 11), fee=400)
    pay(session, w, 1234, ny(2025, 7, 1, 10), s=s, lane=weird.id)
    rep = reports.report(session, w["site"], date(2025, 7, 1), date(2025, 7, 2), group_by="day")
    d = rep.to_dict()
    assert d["site"] == "NYC" and d["currency"] == "USD" and d["timezone"] == "America/New_York"
    assert d["from"] == "2025-07-01" and d["to"] == "2025-07-02"
    assert d["rows"][0]["takings"] == "12.34" and d["rows"][1]["takings"] == "0.00"
    assert d["totals"]["net_takings"] == "12.34"
    assert d["reconciliation"]["billed"] == "4.00" and d["reconciliation"]["overpaid"] == "8.34"
    assert d["occupancy"]["average_stay_minutes"] == "120.0"

    text = reports.to_csv(rep)
    assert text.endswith("\r\n")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0].keys()) == list(reports.CSV_COLUMNS)
    day1 = rows[0]
    assert (day1["section"], day1["group"], day1["period_start"], day1["takings"], day1["currency"]) == (
        "day", "2025-07-01", "2025-07-01", "12.34", "USD")
    assert [r["section"] for r in rows] == ["day", "day", "total", "method", "lane"]
    lane_row = rows[-1]
    assert lane_row["group"] == "WEIRD-1" and lane_row["label"].startswith("'=")
    for r in rows:  # amounts: dot decimal, two places, never a comma
        for col in ("takings", "refunded", "adjusted", "net_takings"):
            assert Decimal(r[col]) == Decimal(r[col]).quantize(Decimal("0.01")) and "," not in r[col]


def test_money_in_a_currency_without_minor_units(session):
    site, _, _ = make_site(session, code="TYO", timezone="Asia/Tokyo", currency="JPY")
    payments.record_payment(session, site, amount_minor=1200, method="cash", reference="j1",
                            at=datetime(2025, 7, 1, 3, tzinfo=UTC))
    rep = reports.report(session, site, date(2025, 7, 1), date(2025, 7, 1))
    assert rep.to_dict()["totals"]["takings"] == "1200"

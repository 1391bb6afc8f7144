"""The daily revenue roll-up stays equal to a fresh sum of the payments, on both backends."""
import random
import sqlite3
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from parkinglot.billing import payments, reports, tariffs
from parkinglot.cli import main
from parkinglot.db import make_engine
from parkinglot.records import migrate, revenue_rollup, stays, users
from parkinglot.records.models import Payment, RevenueDay

from .conftest import keyed_sessions
from .factories import make_site

NY = ZoneInfo("America/New_York")
UTC = timezone.utc
RULES = {"schema": 1, "currency": "USD",
         "rates": {"std": {"bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "2.00"}]}},
         "week": {"mon-sun": "std"}}


@pytest.fixture
def w(session):
    site, entry, exit_ = make_site(session, code="NYC", timezone="America/New_York", currency="USD",
                                   plate_region="us")
    version = tariffs.create_version(session, site, code="STD", name="Standard", rules=RULES,
                                     effective_from=datetime(2025, 1, 1, tzinfo=UTC), make_default=True)
    fin = users.create_user(session, username="fin", password="harbour-lantern-test-9", role="finance")
    return {"site": site, "entry": entry, "exit": exit_, "version": version, "user": fin.id, "n": 0}


def _stay(session, w, at):
    w["n"] += 1
    return stays.open_stay(session, site_id=w["site"].id, plate=f"R{w['n']:04d}", entered_at=at,
                           entry_lane_id=w["entry"].id, tariff_version_id=w["version"].id)


def _pay(session, w, amount, at, s=None, lane=None, method="card"):
    w["n"] += 1
    return payments.record_payment(session, w["site"], amount_minor=amount, method=method, reference=f"p{w['n']}",
                                   stay=s, at=at, lane_id=lane)


def lane_split(session, w, first, last):
    rv = reports.revenue(session, w["site"], first, last, group_by="day", splits=("lane",))
    return {r.group: r.totals.takings_minor for r in rv.splits["lane"]}


def test_pay_station_payment_is_credited_to_the_exit_lane_once_the_stay_leaves(session, w):
    s = _stay(session, w, datetime(2025, 7, 1, 13, tzinfo=UTC))
    _pay(session, w, 600, datetime(2025, 7, 1, 15, tzinfo=UTC), s=s)           # pay station, no lane
    july = (date(2025, 7, 1), date(2025, 7, 2))
    assert lane_split(session, w, *july) == {None: 600}
    stays.close_stay(session, s, exited_at=datetime(2025, 7, 2, 3, 30, tzinfo=UTC), exit_lane_id=w["exit"].id)
    # paid on July 1st local time, left on the 2nd: the money stays on the 1st, now on the exit lane
    assert lane_split(session, w, *july) == {"NYC-OUT": 600}
    rv = reports.revenue(session, w["site"], *july, group_by="day", splits=())
    assert {r.group: r.totals.takings_minor for r in rv.rows} == {"2025-07-01": 600, "2025-07-02": 0}
    assert revenue_rollup.differences(session) == {}


def test_a_retried_payment_reference_is_counted_once(session, w):
    at = datetime(2025, 7, 1, 15, tzinfo=UTC)
    first = payments.record_payment(session, w["site"], amount_minor=500, method="cash", reference="till-9", at=at)
    again = payments.record_payment(session, w["site"], amount_minor=500, method="cash", reference="till-9", at=at)
    assert first.created and not again.created
    rv = reports.revenue(session, w["site"], date(2025, 7, 1), date(2025, 7, 1))
    assert (rv.totals.payments, rv.totals.takings_minor) == (1, 500)
    assert revenue_rollup.differences(session) == {}


def test_rolled_back_payment_leaves_no_trace_in_the_rollup(db):
    with db.sessions() as session:
        site, _, _ = make_site(session, code="RB", timezone="Europe/Berlin")
        session.commit()
        site_id = site.id
    with db.sessions() as session:
        site = session.get(type(site), site_id)
        payments.record_payment(session, site, amount_minor=700, method="card", reference="x-1")
        session.rollback()
    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(RevenueDay)) == 0
        assert session.scalar(select(func.count()).select_from(Payment)) == 0


def test_random_history_across_dst_matches_a_fresh_sum(session, w):
    """Payments with and without a lane, refunds, adjustments and exits in random order around
    both 2025 DST changes: the roll-up equals the payments, and so do the reports."""
    rng = random.Random(5)
    lo = datetime(2025, 3, 7, tzinfo=UTC)
    open_stays, paid = [], {}
    expected_by_day: dict[str, int] = {}
    for i in range(160):
        at = lo + timedelta(minutes=rng.randrange(0, 60 * 24 * 250, 7))
        action = rng.random()
        if action < 0.3 or not open_stays:
            open_stays.append(_stay(session, w, at - timedelta(hours=1)))
        elif action < 0.75:
            s = rng.choice(open_stays)
            amount = rng.randrange(100, 5000)
            lane = w["exit"].id if rng.random() < 0.4 else None
            _pay(session, w, amount, at, s=s, lane=lane, method=rng.choice(["cash", "card", "app"]))
            paid[s.id] = paid.get(s.id, 0) + amount
            d = at.astimezone(NY).date().isoformat()
            expected_by_day[d] = expected_by_day.get(d, 0) + amount
        elif action < 0.9:
            s = open_stays.pop(rng.randrange(len(open_stays)))
            stays.close_stay(session, s, exited_at=at, exit_lane_id=w["exit"].id if rng.random() < 0.8 else None)
        else:
            s = rng.choice(open_stays)
            if paid.get(s.id):
                w["n"] += 1
                payments.refund(session, w["site"], s, amount_minor=min(100, paid[s.id]), reason="goodwill",
                                reference=f"rf{w['n']}", user_id=w["user"])
                paid[s.id] -= min(100, paid[s.id])
            w["n"] += 1
            payments.adjust(session, w["site"], s, amount_minor=-50, reason="extra", reference=f"ad{w['n']}",
                            user_id=w["user"])
    assert revenue_rollup.differences(session) == {}
    first, last = date(2025, 3, 1), date(2025, 11, 30)
    rv = reports.revenue(session, w["site"], first, last, group_by="day", splits=("method", "lane", "tariff"))
    assert {r.group: r.totals.takings_minor for r in rv.rows if r.totals.takings_minor} == expected_by_day
    for name, rows in rv.splits.items():
        assert reports._sum(rows) == rv.totals, name
    raw = session.execute(select(Payment.kind, func.count(), func.sum(Payment.amount_minor))
                          .group_by(Payment.kind)).all()
    by_kind = {k: (int(n), int(a)) for k, n, a in raw}
    t = rv.totals
    assert (t.payments, t.takings_minor) == by_kind.get("payment", (0, 0))
    # refunds and adjustments are made "now": not in 2025, but in today's report
    today = datetime.now(NY).date()
    now = reports.revenue(session, w["site"], today - timedelta(days=1), today + timedelta(days=1)).totals
    assert (now.refunds, now.refunds_minor) == by_kind.get("refund", (0, 0))
    assert (now.adjustments, now.adjustments_minor) == by_kind.get("adjustment", (0, 0))


def test_rebuild_gives_the_rows_kept_in_step(session, w):
    s = _stay(session, w, datetime(2025, 11, 2, 4, tzinfo=UTC))
    _pay(session, w, 300, datetime(2025, 11, 2, 5, 30, tzinfo=UTC), s=s)   # the repeated hour in New York
    _pay(session, w, 200, datetime(2025, 11, 3, 4, 59, tzinfo=UTC), lane=w["entry"].id, method="cash")
    stays.close_stay(session, s, exited_at=datetime(2025, 11, 3, 6, tzinfo=UTC), exit_lane_id=w["exit"].id)
    kept = revenue_rollup.stored(session, w["site"].id)
    assert revenue_rollup.rebuild(session, w["site"].id) == len(kept) == 2
    assert revenue_rollup.stored(session, w["site"].id) == kept
    assert {k[0] for k in kept} == {date(2025, 11, 2)}     # 23:59 local on the 2nd is still the 2nd


def test_migration_backfills_the_rollup_from_existing_payments(empty_database):
    engine = make_engine(empty_database)
    migrate.upgrade(engine)
    factory = keyed_sessions(engine)
    with factory() as session:
        site, entry, exit_ = make_site(session, code="MG", timezone="Asia/Kolkata", currency="INR")
        s = stays.open_stay(session, site_id=site.id, plate="MG1", entered_at=datetime(2025, 1, 1, 18, tzinfo=UTC),
                            entry_lane_id=entry.id)
        for i, minute in enumerate((0, 29, 30, 31)):      # +05:30: local midnight is 18:30 UTC
            payments.record_payment(session, site, amount_minor=100 + i, method="card", reference=f"m{i}",
                                    stay=s, at=datetime(2025, 1, 1, 18, minute, tzinfo=UTC))
        stays.close_stay(session, s, exited_at=datetime(2025, 1, 2, tzinfo=UTC), exit_lane_id=exit_.id)
        session.commit()
        kept = revenue_rollup.stored(session, site.id)
    assert sorted((k[0], v) for k, v in kept.items()) == [(date(2025, 1, 1), [2, 201]), (date(2025, 1, 2), [2, 205])]
    migrate.downgrade(engine, "0003")
    migrate.upgrade(engine)
    with factory() as session:
        assert revenue_rollup.stored(session, site.id) == kept
    engine.dispose()


def test_verify_rollup_command_finds_a_tampered_row_and_rebuild_repairs_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PARKINGLOT_INSTANCE_PATH", str(tmp_path))
    monkeypatch.delenv("PARKINGLOT_DATABASE_URL", raising=False)

    def run(*args):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    assert run("db", "upgrade").exit_code == 0
    assert run("demo", "--stays", "40").exit_code == 0
    ok = run("reports", "verify-rollup")
    assert ok.exit_code == 0 and "matches the payments" in ok.output
    db = sqlite3.connect(tmp_path / "parkinglot.db")
    assert db.execute("SELECT count(*) FROM revenue_day").fetchone()[0] > 0
    db.execute("UPDATE revenue_day SET amount_minor = amount_minor + 1 "
               "WHERE rowid = (SELECT min(rowid) FROM revenue_day)")
    db.commit()
    db.close()
    bad = run("reports", "verify-rollup")
    assert bad.exit_code == 1 and "1 roll-up rows differ" in bad.output
    fixed = run("reports", "verify-rollup", "--rebuild")
    assert fixed.exit_code == 0 and "rebuilt" in fixed.output
    assert run("reports", "verify-rollup").exit_code == 0

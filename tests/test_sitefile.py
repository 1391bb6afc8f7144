"""Site files: every bad input named by file, line and key; apply as an idempotent, all-or-nothing diff;
export and apply again changes nothing; a tariff change is a new version from a given instant."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from parkinglot.billing import fees
from parkinglot.demo import DEMO_SITE_FILE
from parkinglot.records import audit, sites
from parkinglot.records.models import AuditEvent, Device, Lane, Site, TariffVersion
from parkinglot.sitefile import service, spec
from parkinglot.sitefile.spec import SiteFileError

from .conftest import missing_prerequisite
from .factories import make_site

DEMO = DEMO_SITE_FILE.read_text(encoding="utf-8")
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)

SMALL = """\
site:
  code: HQ
  name: Head office
  timezone: Europe/Paris
  currency: EUR
  plate_regions: [eu]
zones:
  - {code: A, name: Deck A}
lanes:
  - {code: HQ-IN, direction: entry, zone: A}
  - {code: HQ-OUT, direction: exit, zone: A}
devices:
  - {name: Gate box, lane: HQ-IN}
tariff:
  code: std
  name: Standard
  effective_from: "2026-01-01T00:00:00Z"
  rules:
    rates:
      hourly: {bands: [{from_min: 0, step_min: 60, price: "2.00"}]}
    week: {mon-sun: hourly}
"""


def problems(text: str, filename: str = "site.yaml") -> list[str]:
    with pytest.raises(SiteFileError) as info:
        spec.parse(text, filename)
    return [str(p) for p in info.value.problems]


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


# --- parsing: no database -----------------------------------------------------------------------

def test_the_demo_file_parses_and_its_dump_parses_to_the_same():
    sf = spec.parse(DEMO, "demo-site.yaml")
    assert [ln.code for ln in sf.lanes] == ["DT-IN-1", "DT-IN-2", "DT-OUT-1", "DT-OUT-2"]
    assert sf.site["visitors"] == "open" and sf.tariff.effective_from == datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert spec.parse(spec.dump(sf), "again.yaml") == sf


def test_defaults_fill_what_is_left_out():
    sf = spec.parse("site: {code: R1, name: Flats, timezone: UTC, currency: GBP, kind: residential}\n")
    assert sf.site["visitors"] == "attendant" and sf.site["plate_regions"] == ["us"]
    assert sf.site["lapsed_credential_days"] == 90 and sf.zones == () and sf.tariff is None


def test_unknown_key_is_refused_with_file_line_and_key():
    text = SMALL.replace("  currency: EUR\n", "  currency: EUR\n  colour: blue\n")
    [msg] = problems(text)
    assert msg.startswith(f"site.yaml:{line_of(text, 'colour')}: site.colour: unknown key 'colour'")
    assert "allowed: code, name" in msg


@pytest.mark.parametrize("where, before, after", [
    ("lanes[0].speed", "{code: HQ-IN, direction: entry, zone: A}", "{code: HQ-IN, direction: entry, zone: A, speed: 3}"),
    ("parking", "zones:\n", "parking:\n  x: 1\nzones:\n"),
    ("tariff.rules", "    week: {mon-sun: hourly}", "    week: {mon-sun: hourly}\n    discount: 5"),
])
def test_unknown_keys_anywhere(where, before, after):
    [msg] = problems(SMALL.replace(before, after))
    assert f": {where}" in msg and "unknown key" in msg


def test_a_tariff_with_a_gap_between_bands_is_refused():
    text = SMALL.replace('[{from_min: 0, step_min: 60, price: "2.00"}]',
                         '[{from_min: 0, to_min: 60, price: "2.00"}, {from_min: 90, step_min: 60, price: "3.00"}]')
    [msg] = problems(text)
    assert msg.startswith(f"site.yaml:{line_of(text, 'hourly: {bands')}: tariff.rules.rates['hourly'].bands[1]: gap")
    assert "nothing is priced from 60 to 90 min" in msg


def test_a_tariff_with_a_gap_in_the_day_is_refused():
    text = SMALL.replace("    week: {mon-sun: hourly}", "    week:\n      mon-sun:\n"
                         '        - {from: "00:00", to: "08:00", rate: hourly}\n'
                         '        - {from: "09:00", to: "24:00", rate: hourly}')
    [msg] = problems(text)
    assert f"site.yaml:{line_of(text, '09:00')}: tariff.rules.week['mon-sun'][1]: gap" in msg
    assert "nothing applies from 08:00 to 09:00" in msg


def test_a_week_with_a_missing_day_is_refused():
    [msg] = problems(SMALL.replace("mon-sun: hourly", "mon-fri: hourly"))
    assert "tariff.rules.week: no schedule for sat, sun" in msg


def test_a_lane_code_used_twice_is_refused():
    text = SMALL.replace("{code: HQ-OUT, direction: exit", "{code: HQ-IN, direction: exit")
    [msg] = problems(text)
    assert msg == (f"site.yaml:{line_of(text, 'direction: exit')}: lanes[1].code: lane code 'HQ-IN' is used twice "
                   f"(first on line {line_of(text, 'direction: entry')})")


@pytest.mark.parametrize("before, after, key, words", [
    ("timezone: Europe/Paris", "timezone: Europe/Pariss", "site.timezone", "unknown time zone 'Europe/Pariss'"),
    ("plate_regions: [eu]", "plate_regions: [eu, zz]", "site.plate_regions", "unknown plate region 'zz'"),
    ("plate_regions: [eu]", "plate_regions: eu", "site.plate_regions", "expected a list of plate regions"),
    ("currency: EUR", "currency: EURO", "site.currency", "unknown currency 'EURO'"),
    ("  name: Head office\n", "", "site", "the site needs 'name'"),
    ("plate_regions: [eu]", "plate_regions: [eu]\n  visitors: maybe", "site.visitors", "must be one of open"),
    ("plate_regions: [eu]", "plate_regions: [eu]\n  capacity: -4", "site.capacity", "must be at least 0"),
    ("plate_regions: [eu]", "plate_regions: [eu]\n  min_confidence: 1.5", "site.min_confidence", "from 0 to 1"),
    ("plate_regions: [eu]", "plate_regions: [eu]\n  issues_tickets: 'yes'", "site.issues_tickets", "true or false"),
    ("code: HQ\n", "code: H Q\n", "site.code", "not a valid code"),
    ("direction: exit", "direction: out", "lanes[1].direction", "must be one of entry, exit"),
    ("{code: HQ-OUT, direction: exit, zone: A}", "{code: HQ-OUT, direction: exit, zone: B}", "lanes[1].zone",
     "unknown zone 'B'"),
    ("{code: HQ-OUT, direction: exit, zone: A}", "{code: HQ-OUT, direction: exit, driver: http_relay}",
     "lanes[1].driver_config", "http_relay needs an http(s) url"),
    ("{name: Gate box, lane: HQ-IN}", "{name: Gate box, lane: HQ-XX}", "devices[0].lane", "unknown lane 'HQ-XX'"),
    ("{name: Gate box, lane: HQ-IN}", "{name: Gate box, kind: camera}", "devices[0].kind",
     "must be one of lane_controller, pay_station"),
    ("plate_regions: [eu]", "plate_regions: [eu]\n  visitor_pass_pricing: visitor_rate", "site.visitor_pass_pricing",
     "rates has none"),
    ("plate_regions: [eu]", "plate_regions: [eu]\n  visitor_pass_pricing: half", "site.visitor_pass_pricing",
     "must be one of tariff, free, visitor_rate"),
    ("{name: Gate box, lane: HQ-IN}", "{name: Gate box, key: pl_0123456789ab_secret}", "devices[0].key",
     "holds no device keys"),
    ('effective_from: "2026-01-01T00:00:00Z"', 'effective_from: "2026-01-01T00:00:00"', "tariff.effective_from",
     "needs a UTC offset"),
    ("tariff:\n", "holidays: [{day: 2026-13-01}]\ntariff:\n", "holidays[0].day", "expected a date such as"),
    ("tariff:\n", "holidays: [{day: 2026-12-25}, {day: 2026-12-25}]\ntariff:\n", "holidays[1].day",
     "holiday '2026-12-25' is used twice"),
    ('effective_from: "2026-01-01T00:00:00Z"', "effective_from: next week", "tariff.effective_from",
     "not an ISO 8601 instant"),
    ("    week:", "    currency: USD\n    week:", "tariff.rules.currency", "differs from the site's 'EUR'"),
    ('price: "2.00"', "price: 2.0", "tariff.rules.rates['hourly'].bands[0].price", "money must be a string"),
    ("tariff:\n", "version: 2\ntariff:\n", "version", "reads site file version 1"),
])
def test_each_bad_value_is_named(before, after, key, words):
    text = SMALL.replace(before, after)
    assert text != SMALL
    [msg] = problems(text)
    assert msg.startswith("site.yaml:") and f": {key}: " in msg and words in msg, msg


def test_every_problem_is_reported_at_once():
    text = SMALL.replace("timezone: Europe/Paris", "timezone: Nowhere").replace("direction: exit", "direction: up")
    found = problems(text)
    assert len(found) == 2 and "site.timezone" in found[0] and "lanes[1].direction" in found[1]


def test_yaml_traps_and_syntax():
    text = SMALL.replace("    week: {mon-sun: hourly}", "    week:\n      mon-sun:\n"
                         "        - {from: 00:00, to: 20:00, rate: hourly}\n"
                         "        - {from: 20:00, to: 24:00, rate: hourly}")
    sf = spec.parse(text)  # 20:00 is a time here, not YAML 1.1's base-60 integer 1200
    assert sf.tariff.rules["week"]["mon-sun"][1] == {"from": "20:00", "to": "24:00", "rate": "hourly"}
    [msg] = problems("site:\n  code: A\n  code: B\n")
    assert msg == "site.yaml:3: (file): key 'code' is written twice (first on line 2)"
    [msg] = problems("site: {code: A,\n")
    assert msg.startswith("site.yaml:") and "not valid YAML" in msg
    assert problems("") == ["site.yaml: (top level): expected a mapping (the site file), got nothing"]
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b]\n"
    [msg] = problems(bomb)  # aliases would expand without bound: refused
    assert msg.startswith("site.yaml:1: (file): the value written here is used again through a YAML alias")


# --- applying: both backends --------------------------------------------------------------------

def apply_text(db, text: str, **kw) -> service.Applied:
    with db.sessions() as s:
        applied = service.apply(s, spec.parse(text, "site.yaml"), now=kw.pop("now", NOW), **kw)
        s.commit()
    return applied


def test_apply_creates_then_changes_nothing(db):
    first = apply_text(db, SMALL)
    assert [str(c) for c in first.changes] == [
        "site HQ: created (Head office, Europe/Paris, EUR)", "zone A: created", "lane HQ-IN: created (entry)",
        "lane HQ-OUT: created (exit)", "device 'Gate box': created (lane_controller, bound to lane HQ-IN)",
        "tariff std: version 1 created (effective from 2026-01-01T00:00:00Z)"]
    [key] = first.keys
    assert key.name == "Gate box" and key.lane == "HQ-IN" and key.key.startswith("pl_")
    second = apply_text(db, SMALL)
    assert second.changes == () and second.keys == () and second.notes == ()
    with db.sessions() as s:
        site = sites.get_site(s, "HQ")
        assert site.plate_regions == ["eu"] and site.default_tariff_code == "std"
        device = sites.authenticate_device(s, key.key)
        assert device is not None and device.lane.code == "HQ-IN"
        actions = s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
        assert actions[:2] == ["site.created", "zone.created"] and "tariff.version_created" in actions
        assert audit.verify(s).ok


def test_export_then_apply_changes_nothing(db):
    apply_text(db, DEMO)
    with db.sessions() as s:
        text = spec.dump(service.export(s, "DT"))
    assert not re.search(r"pl_[0-9a-f]{12}_", text) and "key:" not in text  # no device keys
    assert apply_text(db, text).changes == ()
    again = spec.parse(text)
    assert again == spec.parse(DEMO)


def test_updates_are_applied_and_audited(db):
    apply_text(db, SMALL)
    edited = (SMALL.replace("name: Head office", "name: Head office (north)")
              .replace("{code: HQ-OUT, direction: exit, zone: A}", "{code: HQ-OUT, direction: exit, enabled: false}")
              .replace("{name: Gate box, lane: HQ-IN}", "{name: Gate box, lane: HQ-OUT}"))
    changed = [str(c) for c in apply_text(db, edited).changes]
    assert changed == ["site HQ: updated (name 'Head office' -> 'Head office (north)')",
                       "lane HQ-OUT: updated (zone 'A' -> None)",
                       "lane HQ-OUT: disabled", "device 'Gate box': rebound (to lane HQ-OUT)"]
    with db.sessions() as s:
        lane = sites.get_lane(s, "HQ-OUT")
        assert not lane.enabled and lane.zone_id is None
        actions = s.scalars(select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(4)).all()
        assert set(actions) == {"site.updated", "lane.updated", "lane.disabled", "device.bound"}


def test_a_tariff_change_is_a_new_version_from_the_given_instant(db):
    apply_text(db, SMALL)
    start = NOW + timedelta(days=1)
    changed = (SMALL.replace('price: "2.00"', 'price: "2.50"')
               .replace('"2026-01-01T00:00:00Z"', f'"{start.isoformat()}"'))
    assert [str(c) for c in apply_text(db, changed).changes] == [
        "tariff std: version 2 created (effective from 2026-12-03T12:00:00Z)"]
    assert apply_text(db, changed).changes == ()
    with db.sessions() as s:
        site = sites.get_site(s, "HQ")
        before = fees.current_tariff(s, site, start - timedelta(minutes=1))
        after = fees.current_tariff(s, site, start)
        assert (before.version, after.version) == (1, 2)
        assert before.rules["rates"]["hourly"]["bands"][0]["price"] == "2.00"  # the old version is untouched
        assert after.rules["rates"]["hourly"]["bands"][0]["price"] == "2.50"


def test_a_tariff_change_dated_in_the_past_is_refused(db):
    apply_text(db, SMALL)
    with pytest.raises(SiteFileError) as info:
        apply_text(db, SMALL.replace('price: "2.00"', 'price: "2.50"'))
    [p] = info.value.problems
    assert p.key == "tariff.effective_from" and p.line == line_of(SMALL, "effective_from") and "in the past" in p.message
    no_date = SMALL.replace('price: "2.00"', 'price: "2.50"').replace('  effective_from: "2026-01-01T00:00:00Z"\n', "")
    [c] = apply_text(db, no_date).changes
    assert str(c) == "tariff std: version 2 created (effective from 2026-12-02T12:00:00Z)"


def test_a_lane_code_of_another_site_is_refused_and_nothing_is_applied(db):
    with db.sessions() as s:
        make_site(s, code="XX")  # lanes XX-IN, XX-OUT
        s.commit()
    text = SMALL.replace("{code: HQ-OUT,", "{code: XX-OUT,")
    with pytest.raises(SiteFileError) as info:
        apply_text(db, text)
    assert str(info.value) == (f"site.yaml:{line_of(text, 'XX-OUT')}: lanes[1].code: lane code 'XX-OUT' is already "
                               "used by site XX (lane codes are unique across all sites)")
    with db.sessions() as s:
        assert s.scalar(select(Site.id).where(Site.code == "HQ")) is None
        assert s.scalar(select(func.count()).select_from(Device)) == 0


def test_the_currency_of_a_site_with_prices_cannot_change(db):
    apply_text(db, SMALL)
    with pytest.raises(SiteFileError) as info:
        apply_text(db, SMALL.replace("currency: EUR", "currency: CHF"))
    assert "site.currency: site HQ has prices in EUR" in str(info.value)


def test_prune_disables_lanes_and_revokes_keys_not_in_the_file(db):
    apply_text(db, SMALL)
    smaller = SMALL.replace("  - {code: HQ-OUT, direction: exit, zone: A}\n", "").replace(
        "devices:\n  - {name: Gate box, lane: HQ-IN}\n", "")
    kept = apply_text(db, smaller)
    assert kept.changes == () and kept.notes == (
        "device 'Gate box': not in the file, kept (--prune revokes its key)",
        "lane HQ-OUT: not in the file, kept (--prune disables it)")
    pruned = apply_text(db, smaller, prune=True)
    assert [str(c) for c in pruned.changes] == ["device 'Gate box': revoked (not in the site file)",
                                                "lane HQ-OUT: disabled (not in the site file)"]
    with db.sessions() as s:
        assert s.scalar(select(Device.revoked_at)) is not None
        assert not sites.get_lane(s, "HQ-OUT").enabled


def test_null_means_left_out_and_a_lane_without_a_zone_round_trips():
    text = "site: {code: N, name: N, timezone: UTC, currency: EUR, capacity: null, kind: null}\n" \
           "lanes: [{code: N-IN, direction: entry, zone: null}]\n"
    sf = spec.parse(text)
    assert sf.site["kind"] == "public" and sf.lanes[0].zone is None
    assert " zone:" not in spec.dump(sf) and spec.parse(spec.dump(sf)) == sf
    [msg] = problems("site: {code: null, name: N, timezone: UTC, currency: EUR}\n")
    assert "site.code: expected text, got nothing" in msg


def test_a_pay_station_bound_to_an_exit_is_its_payment_terminal_and_keeps_its_kind(db):
    text = SMALL.replace("  - {name: Gate box, lane: HQ-IN}\n",
                         "  - {name: Gate box, lane: HQ-IN}\n  - {name: Exit terminal, kind: pay_station, lane: HQ-OUT}\n")
    applied = apply_text(db, text)
    assert "device 'Exit terminal': created (pay_station, bound to lane HQ-OUT)" in [str(c) for c in applied.changes]
    assert [k.kind for k in applied.keys] == ["lane_controller", "pay_station"]
    with db.sessions() as s:
        exported = spec.dump(service.export(s, "HQ"))
    assert "kind: pay_station" in exported and apply_text(db, exported).changes == ()
    with pytest.raises(SiteFileError) as info:
        apply_text(db, text.replace("kind: pay_station", "kind: lane_controller"))
    assert "devices[1].kind: device 'Exit terminal' is a pay_station; a key keeps its kind" in str(info.value)


def test_the_documented_example_is_a_valid_site_file():
    docs = Path(__file__).resolve().parent.parent / "docs"
    if not docs.is_dir():  # benchmarks/mutation.py copies docs/ too
        missing_prerequisite("no docs/ folder beside tests/", needed_for="the documented site file")
    doc = (docs / "site-file.md").read_text(encoding="utf-8")
    example = re.search(r"```yaml\n(.*?)```", doc, re.S).group(1)
    sf = spec.parse(example, "docs/site-file.md")
    assert [d.kind for d in sf.devices] == ["lane_controller", "pay_station", "pay_station"]


def test_holidays_are_added_renamed_kept_and_pruned_only_from_today(db):
    from parkinglot.records.models import SiteHoliday
    from .factories import enter

    text = SMALL + "holidays:\n  - {day: 2026-12-25, name: Christmas}\n  - {day: 2026-01-01}\n"
    assert [str(c) for c in apply_text(db, text).changes if "holiday" in str(c)] == [
        "holiday 2026-01-01: added", "holiday 2026-12-25: added (Christmas)"]
    assert apply_text(db, text).changes == ()
    with db.sessions() as s:
        assert fees.holidays(s, sites.get_site(s, "HQ").id) == {date(2026, 1, 1), date(2026, 12, 25)}
        exported = spec.dump(service.export(s, "HQ"))
    assert "- day: '2026-12-25'\n  name: Christmas" in exported and apply_text(db, exported).changes == ()
    renamed = text.replace("Christmas", "Noel")
    assert [str(c) for c in apply_text(db, renamed).changes] == ["holiday 2026-12-25: renamed (Noel)"]
    without = SMALL
    assert apply_text(db, without).notes == ("holiday 2026-01-01: not in the file, kept (past holidays priced stays)",
                                             "holiday 2026-12-25: not in the file, kept (--prune removes holidays "
                                             "from today on)")
    assert [str(c) for c in apply_text(db, without, prune=True).changes] == ["holiday 2026-12-25: removed (Noel)"]
    with db.sessions() as s:  # once cars have parked, a holiday in the past would re-price them
        site = sites.get_site(s, "HQ")
        enter(s, site, sites.get_lane(s, "HQ-IN"), "AB123")
        s.commit()
    with pytest.raises(SiteFileError) as info:
        apply_text(db, SMALL + "holidays: [{day: 2026-05-01}]\n")
    assert "holidays[0].day: holiday 2026-05-01 is in the past" in str(info.value)
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(SiteHoliday)) == 1

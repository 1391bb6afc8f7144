"""Lookup: exact, prefix, time range and the confusion-aware fuzzy search."""
import pytest
from hypothesis import given, settings, strategies as st

from parkinglot import plates
from parkinglot.records import lookup, stays
from parkinglot.records.errors import InvalidInput

from .factories import T0, enter, later, make_site


@pytest.fixture
def populated(db, session):
    site, entry, exit_ = make_site(session)
    for i, plate in enumerate(["AB123", "AB124", "AB1234", "XY900", "B0S5", "ZZ1"]):
        stay = enter(session, site, entry, plate, later(i * 10))
        if plate == "XY900":
            stays.close_stay(session, stay, exited_at=later(100))
    enter(session, site, entry, "XY900", later(200))
    session.commit()
    return site


def test_exact(populated, session):
    rows = lookup.by_plate(session, populated.id, "xy-900")
    assert [r.plate for r in rows] == ["XY900", "XY900"]
    assert rows[0].entered_at > rows[1].entered_at  # newest first


def test_prefix_is_a_range_scan_not_like(populated, session):
    assert sorted({r.plate for r in lookup.by_prefix(session, populated.id, "AB12")}) == ["AB123", "AB1234", "AB124"]
    assert [r.plate for r in lookup.by_prefix(session, populated.id, "ZZ")] == ["ZZ1"]
    assert lookup.by_prefix(session, populated.id, "Q") == []


def test_time_range(populated, session):
    rows = lookup.by_time(session, populated.id, later(5), later(35))
    assert sorted(r.plate for r in rows) == ["AB1234", "AB124", "XY900"]
    with pytest.raises(InvalidInput):
        lookup.by_time(session, populated.id, later(5), later(5))


def test_fuzzy_ranks_lookalikes_first(populated, session):
    hits = lookup.fuzzy_plates(session, populated.id, "A8I23")  # B->8 and 1->I
    assert hits[0].plate == "AB123"
    assert hits[0].distance == pytest.approx(0.5)
    assert {h.plate for h in hits} >= {"AB123", "AB124", "AB1234"}
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)


def test_fuzzy_tolerates_one_missing_or_extra_character(populated, session):
    assert "XY900" in {h.plate for h in lookup.fuzzy_plates(session, populated.id, "XY90")}
    assert "XY900" in {h.plate for h in lookup.fuzzy_plates(session, populated.id, "XY9000")}
    assert "B0S5" in {h.plate for h in lookup.fuzzy_plates(session, populated.id, "8OS")}


def test_fuzzy_sessions_open_only(populated, session):
    found = lookup.fuzzy_sessions(session, populated.id, "XY9OO", open_only=True)
    assert [s.status for s, _ in found] == ["open"]


def test_fuzzy_is_per_site(populated, session):
    other, entry, _ = make_site(session, code="S2")
    assert lookup.fuzzy_plates(session, other.id, "AB123") == []


def test_bad_query_is_refused(populated, session):
    with pytest.raises(InvalidInput):
        lookup.fuzzy_plates(session, populated.id, "AB<script>")


plate_st = st.text(alphabet=plates.ALPHABET, min_size=2, max_size=8)


@settings(max_examples=300, deadline=None)
@given(plate_st, st.data())
def test_index_keys_find_every_single_edit(plate, data):
    """Property: one lookalike swap, insertion, deletion or substitution always shares a key."""
    i = data.draw(st.integers(0, len(plate) - 1))
    ch = data.draw(st.sampled_from(plates.ALPHABET))
    variants = [plate[:i] + plate[i + 1:], plate[:i] + ch + plate[i:], plate[:i] + ch + plate[i + 1:]]
    for v in variants:
        if v:
            assert plates.index_keys(plate) & plates.index_keys(v)
    assert plates.distance(plate, plate) == 0

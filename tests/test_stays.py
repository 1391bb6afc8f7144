"""Reads, stays and their database-enforced invariants."""
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from parkinglot.records import audit, reads, sites, stays
from parkinglot.records.errors import InvalidInput, NotFound
from parkinglot.records.models import Alert, ParkingSession, PlateRead

from .factories import T0, enter, later, make_read, make_site


def test_unknown_site_and_lane_raise_not_found(db, session):
    with pytest.raises(NotFound, match="unknown site"):
        sites.get_site(session, "NOPE")
    with pytest.raises(NotFound, match="unknown lane"):
        sites.get_lane(session, "NOPE")


def test_plate_with_illegal_characters_is_refused(db, session):
    _, entry, _ = make_site(session)
    with pytest.raises(InvalidInput, match="illegal characters"):
        make_read(session, entry, "AB$12")
    with pytest.raises(InvalidInput):
        make_read(session, entry, "ÄB12")


def test_read_keeps_capture_and_received_time(db, session):
    _, entry, _ = make_site(session)
    inp = reads.ReadInput(lane=entry, captured_at=T0, received_at=later(0.05), plate="AB123",
                          raw_text="AB-123", confidence=0.9, candidates=[{"text": "A8123", "confidence": 0.1}],
                          box=[[1, 2], [30, 2], [30, 12], [1, 12]])
    read = reads.store_read(session, inp)
    session.commit()
    got = session.get(PlateRead, read.id)
    assert got.captured_at == T0 and got.received_at == later(0.05)
    assert got.raw_text == "AB-123" and got.plate == "AB123"
    assert got.candidates[0]["text"] == "A8123" and got.box[1] == [30, 2]


def test_replayed_event_id_creates_nothing(db, session):
    _, entry, _ = make_site(session)
    make_read(session, entry, "AB123", event_id="ev-1")
    session.commit()
    with pytest.raises(reads.DuplicateEvent):
        make_read(session, entry, "AB123", event_id="ev-1")
    session.commit()  # the transaction is still usable after the refused insert
    assert session.scalar(select(func.count()).select_from(PlateRead)) == 1


def test_duplicate_read_within_window_is_found(db, session):
    _, entry, _ = make_site(session)
    first = make_read(session, entry, "AB123", at=T0)
    assert reads.find_recent_duplicate(session, entry, "AB123", later(0.3), 30).id == first.id
    assert reads.find_recent_duplicate(session, entry, "AB123", later(2), 30) is None
    assert reads.find_recent_duplicate(session, entry, "XY999", later(0.3), 30) is None


def test_one_open_stay_per_plate_and_site_is_enforced(db, session):
    site, entry, _ = make_site(session)
    enter(session, site, entry, "AB123")
    with pytest.raises(stays.AlreadyInside):
        enter(session, site, entry, "AB123", later(5))
    session.commit()
    other, o_entry, _ = make_site(session, code="S2")
    enter(session, other, o_entry, "AB123")  # another site is fine
    session.commit()
    assert session.scalar(select(func.count()).select_from(ParkingSession)) == 2


def test_close_and_reopen(db, session):
    site, entry, exit_ = make_site(session)
    stay = enter(session, site, entry, "AB123")
    stays.close_stay(session, stay, exited_at=later(60), exit_lane_id=exit_.id, fee_minor=350)
    session.commit()
    assert stay.status == "closed" and stay.exited_at == later(60) and stay.fee_minor == 350
    with pytest.raises(stays.AlreadyClosed):
        stays.close_stay(session, stay, exited_at=later(61))
    session.rollback()
    enter(session, site, entry, "AB123", later(90))
    session.commit()


@pytest.mark.parametrize("early", [timedelta(seconds=1), timedelta(minutes=5), timedelta(days=1)])
def test_a_stay_never_ends_before_it_began(db, session, early):
    """An exit time before the entry (a clock that jumped, a hand-entered time) ends the stay
    at its entry: a stay of zero length, never a negative one the database would refuse."""
    site, entry, exit_ = make_site(session)
    stay = enter(session, site, entry, "AB123", later(30))
    stays.close_stay(session, stay, exited_at=later(30) - early, exit_lane_id=exit_.id)
    session.commit()
    session.expire_all()
    stored = session.get(ParkingSession, stay.id)
    assert stored.status == "closed" and stored.exited_at == stored.entered_at == later(30)


def test_two_concurrent_exits_exactly_one_succeeds(db):
    with db.sessions() as s:
        site, entry, exit_ = make_site(s)
        stay_id = enter(s, site, entry, "AB123").id
        s.commit()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def exit_attempt():
        barrier.wait(timeout=10)
        with db.sessions() as s:
            stay = s.get(ParkingSession, stay_id)
            try:
                stays.close_stay(s, stay, exited_at=later(30))
                s.commit()
                outcomes.append("closed")
            except stays.AlreadyClosed:
                s.rollback()
                outcomes.append("refused")

    threads = [threading.Thread(target=exit_attempt) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["closed", "refused"]
    with db.sessions() as s:
        assert audit.verify(s).ok
        closes = [e for e in audit.history(s, "stay", stay_id) if e.action == "stay.closed"]
        assert len(closes) == 1


def test_expire_overdue_marks_and_alerts(db, session):
    site, entry, _ = make_site(session, max_stay_hours=24)
    old = enter(session, site, entry, "OLD1", T0)
    fresh = enter(session, site, entry, "NEW1", T0 + timedelta(hours=20))
    expired = stays.expire_overdue(session, site, now=T0 + timedelta(hours=25))
    session.commit()
    assert [s.id for s in expired] == [old.id]
    assert old.status == "expired" and fresh.status == "open"
    alert = session.scalar(select(Alert))
    assert alert.kind == "expired_stay" and alert.session_id == old.id
    assert stays.expire_overdue(session, site, now=T0 + timedelta(hours=26)) == []


def test_interrupted_transaction_leaves_no_half_record(db):
    """A failure after the read is flushed but before commit (say the database restarts)
    rolls everything back: no read, no stay, no audit event."""
    with db.sessions() as s:
        site, entry, _ = make_site(s)
        s.commit()
        before = audit.verify(s).checked
    with pytest.raises(RuntimeError):
        with db.sessions() as s:
            s.add(entry := s.get(type(entry), entry.id))
            read = make_read(s, entry, "AB123")
            stays.open_stay(s, site_id=site.id, plate="AB123", entered_at=T0, entry_read_id=read.id)
            raise RuntimeError("connection lost")
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(PlateRead)) == 0
        assert s.scalar(select(func.count()).select_from(ParkingSession)) == 0
        result = audit.verify(s)
        assert result.ok and result.checked == before


@pytest.mark.parametrize("how", ["transaction", "savepoint"])
def test_a_stay_opened_in_a_rolled_back_transaction_leaves_the_session(db, session, how):
    """open_stay attaches its object as loaded; a rollback must still take it away, or a
    retry (SQLite reuses the rolled-back id) would collide with it in the identity map."""
    site, _entry, _exit = make_site(session)
    session.commit()
    if how == "savepoint":
        nested = session.begin_nested()
        first = stays.open_stay(session, site_id=site.id, plate="RB123", entered_at=T0, savepoint=False)
        nested.rollback()
    else:
        first = stays.open_stay(session, site_id=site.id, plate="RB123", entered_at=T0, savepoint=False)
        session.rollback()
    assert first not in session
    again = stays.open_stay(session, site_id=site.id, plate="RB123", entered_at=T0, savepoint=False)
    session.commit()
    assert again in session and again is not first
    assert session.scalar(select(func.count()).select_from(ParkingSession)) == 1

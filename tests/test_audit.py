"""The audit trail is append-only and any tampering is found by verify()."""
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from parkinglot.records import audit
from parkinglot.records.models import AuditEvent


def _append_some(session, n=5):
    for i in range(n):
        audit.append(session, "test.event", "thing", i, {"i": i, "note": "é"})
    session.commit()


def test_chain_verifies(db, session):
    _append_some(session)
    result = audit.verify(session)
    assert result.ok and result.checked == 5


def test_each_event_links_to_previous(db, session):
    _append_some(session, 3)
    events = session.query(AuditEvent).order_by(AuditEvent.id).all()
    assert events[0].prev_hash == audit.GENESIS_HASH
    assert events[1].prev_hash == events[0].hash
    assert events[2].prev_hash == events[1].hash


def test_update_and_delete_are_refused_by_the_database(db, session):
    _append_some(session, 2)
    with pytest.raises(DBAPIError, match="append-only"):
        session.execute(text("UPDATE audit_event SET data = '{}' WHERE id = 1"))
    session.rollback()
    with pytest.raises(DBAPIError, match="append-only"):
        session.execute(text("DELETE FROM audit_event WHERE id = 2"))
    session.rollback()


@pytest.fixture
def unguarded(db):
    """An attacker with database access removes the append-only guard (restored afterwards)."""
    if db.backend == "sqlite":
        stmts = ["DROP TRIGGER audit_event_no_update", "DROP TRIGGER audit_event_no_delete"]
    else:
        stmts = ["DROP TRIGGER audit_event_append_only ON audit_event"]
    with db.engine.begin() as conn:
        for stmt in stmts:
            conn.execute(text(stmt))
    yield
    if db.backend == "postgresql":  # the SQLite file is per test; the PostgreSQL database is shared
        with db.engine.begin() as conn:
            conn.execute(text("CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event "
                              "FOR EACH ROW EXECUTE FUNCTION parkinglot_append_only()"))



def test_tampering_is_detected_at_the_first_broken_event(db, session, unguarded):
    """Someone with database access drops the guard and edits history: verify names the event."""
    _append_some(session, 6)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_event SET data = :d WHERE id = 4"), {"d": '{"i":99}'})
    result = audit.verify(session)
    assert not result.ok
    assert result.first_broken_id == 4
    assert "hash" in result.problem


def test_deleted_event_and_truncated_tail_are_detected(db, session, unguarded):
    _append_some(session, 6)
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_event WHERE id = 3"))
    result = audit.verify(session)
    session.rollback()
    assert not result.ok and result.first_broken_id == 3
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_event WHERE id >= 3"))
    result = audit.verify(session)
    assert not result.ok and result.first_broken_id == 3 and "head" in result.problem


def test_concurrent_appenders_never_fork_the_chain(db):
    errors = []

    def worker(n):
        try:
            for i in range(10):
                with db.sessions() as s:
                    audit.append(s, "race", "thing", f"{n}-{i}", {"n": n})
                    s.commit()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.sessions() as s:
        result = audit.verify(s)
    assert result.ok and result.checked == 40


def test_batches_chained_by_the_database_verify_in_python(db, session):
    """On PostgreSQL a transaction's events (up to 8) are chained in SQL; verify() recomputes
    every hash in Python, so any difference in the hashed text would break the chain here."""
    from datetime import datetime, timedelta, timezone

    awkward = [
        {"note": "Zoë – 駐車場 🚗", "nested": {"plates": ["AB123", "ÄÖ9"], "n": [1, 2.5, None]}},
        {},
        {"quote": "it's \"quoted\"\\ and \x1f separated", "big": "x" * 5000},
        {"when": datetime(2026, 3, 29, 1, 59, 59, 999999, tzinfo=timezone(timedelta(hours=2)))},
    ]
    at = datetime(2026, 10, 25, 0, 30, tzinfo=timezone(timedelta(hours=-5)))  # stored as UTC
    sizes = [1, 2, 3, 8, 9, 1, 2]  # 9: more than one statement takes, the Python path, mid-chain
    for n, size in enumerate(sizes):
        for i in range(size):
            audit.append(session, "batch.event", "thing", None if i % 3 == 0 else f"{n}-{i}", awkward[i % 4],
                         actor=audit.SYSTEM if i % 2 else audit.Actor.device(7), site_id=None if i % 2 else n,
                         at=at + timedelta(microseconds=i) if i % 4 == 1 else None)
        session.commit()
    result = audit.verify(session)
    assert result.ok, result
    assert result.checked == sum(sizes)
    head = session.get(audit.AuditHead, 1)
    last = session.get(AuditEvent, sum(sizes))
    assert (head.last_id, head.last_hash) == (last.id, last.hash)


def test_an_over_long_field_is_refused_never_cut_short(db, session):
    """A value longer than its column must fail the append (PostgreSQL) or be stored whole
    (SQLite has no length limit); never truncated under a hash taken of the full value."""
    audit.append(session, "ok.event", "thing", 1, {})
    session.commit()
    audit.append(session, "x" * 70, "thing", "y" * 70, {})
    try:
        session.commit()
    except DBAPIError:
        session.rollback()
        assert db.backend == "postgresql"
    result = audit.verify(session)
    assert result.ok, result


@pytest.mark.parametrize("forged_id", [1, 3, 5])
def test_a_rewritten_event_with_a_recomputed_hash_breaks_the_next_link(db, session, unguarded, forged_id):
    """The hash algorithm is public: someone who edits an event can recompute its own hash.
    The next event still carries the old hash, so verify() names the broken link there."""
    _append_some(session, 6)
    ev = session.get(AuditEvent, forged_id)
    forged = '{"i":42,"note":"rewritten"}'
    forged_hash = audit.event_hash(id=ev.id, prev_hash=ev.prev_hash, at=ev.at, site_id=ev.site_id,
                                   actor_type=ev.actor_type, actor_id=ev.actor_id, action=ev.action,
                                   entity_type=ev.entity_type, entity_id=ev.entity_id, data=forged)
    session.rollback()
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_event SET data = :d, hash = :h WHERE id = :id"),
                     {"d": forged, "h": forged_hash, "id": forged_id})
    session.expire_all()
    result = audit.verify(session)
    assert not result.ok and result.first_broken_id == forged_id + 1 and "link" in result.problem

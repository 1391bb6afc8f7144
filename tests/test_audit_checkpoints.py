"""Signed checkpoints make a rewrite of the whole trail show (issue 21, part 1).

Each attack is the one a hostile review ran with write access to the database: drop the
guards, rewrite, put the guards back. The hash chain alone says "intact" every time
(asserted below, as the proof that the attack is real); the checkpoints do not.
"""
from __future__ import annotations

import json
import os
import stat

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from parkinglot.evidence import checkpoint_log, signing
from parkinglot.evidence.chain import GENESIS_HASH, Checkpoint
from parkinglot.records import audit
from parkinglot.records.models import AuditCheckpoint, AuditEvent
from parkinglot.records.trail import checkpoints
from parkinglot.records.trail.verify import REQUIRED_TRIGGERS, missing_triggers, verify_trail

GUARDED = ("audit_event", "audit_head", "audit_checkpoint")


@pytest.fixture
def keys(tmp_path):
    return signing.load_or_create(tmp_path / "keys" / "audit_signing_key.pem")


@pytest.fixture
def trail(db, keys, tmp_path):
    policy = checkpoints.Policy(every_events=1000, every_minutes=60, log_path=tmp_path / "outside" / "checkpoints.log")
    return checkpoints.Checkpointer(db.sessions, lambda: keys, policy)


def _append(db, n, start=0):
    with db.sessions() as s:
        for i in range(start, start + n):
            audit.append(s, "test.event", "thing", i, {"i": i})
            s.commit()


def _report(db, trail, keys):
    with db.sessions() as s:
        return verify_trail(s, keys.public, log_path=trail.policy.log_path)


class Guards:
    """The attacker's tools: remove every guard trigger of the trail, and put them back afterwards."""

    def __init__(self, db):
        self.db = db
        self.saved: list[tuple[str, str, str]] = []

    def drop(self):
        with self.db.engine.begin() as conn:
            if self.db.backend == "sqlite":
                rows = conn.execute(text("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger' "
                                         "AND tbl_name IN ('audit_event', 'audit_head', 'audit_checkpoint')")).all()
                for name, _table, _sql in rows:
                    conn.execute(text(f"DROP TRIGGER {name}"))
            else:
                rows = conn.execute(text(
                    "SELECT tgname, tgrelid::regclass::text, pg_get_triggerdef(oid) FROM pg_trigger "
                    "WHERE NOT tgisinternal AND tgrelid IN ('audit_event'::regclass, 'audit_head'::regclass, "
                    "'audit_checkpoint'::regclass)")).all()
                for name, table, _sql in rows:
                    conn.execute(text(f"DROP TRIGGER {name} ON {table}"))
        self.saved.extend(tuple(r) for r in rows)

    def restore(self):
        with self.db.engine.begin() as conn:
            for _name, _table, sql in self.saved:
                conn.execute(text(sql))
        self.saved.clear()


@pytest.fixture
def guards(db):
    g = Guards(db)
    yield g
    if g.saved:
        g.restore()


# --- the key ---------------------------------------------------------------------------------------

def test_signing_key_is_made_once_owner_only_and_reloaded(tmp_path):
    path = tmp_path / "instance" / "audit_signing_key.pem"
    first = signing.load_or_create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = signing.load_or_create(path)
    assert again.key_id == first.key_id and first.key_id.startswith("ed25519:")
    assert signing.load_public_key(first.public_pem) is not None


def test_a_key_file_that_is_not_a_key_is_a_clear_error(tmp_path):
    bad = tmp_path / "key.pem"
    bad.write_text("not a key")
    with pytest.raises(signing.SigningKeyError, match="not an unencrypted PEM private key"):
        signing.load_or_create(bad)
    with pytest.raises(signing.SigningKeyError, match="not a PEM public key"):
        signing.load_public_key("nonsense")


# --- taking checkpoints ----------------------------------------------------------------------------

def test_checkpoint_on_demand_is_stored_logged_and_verifies(db, trail, keys):
    _append(db, 4)
    cp, new = trail.checkpoint()
    assert new and (cp.seq, cp.last_id, cp.count) == (1, 4, 4)
    again, new_again = trail.checkpoint()
    assert not new_again and again == cp  # nothing new: no second checkpoint
    _append(db, 2, start=4)
    cp2, _ = trail.checkpoint()
    assert (cp2.seq, cp2.count) == (2, 6)
    logged, problems = checkpoint_log.read(trail.policy.log_path)
    assert logged == [cp, cp2] and problems == []
    with db.sessions() as s:
        assert checkpoints.stored(s) == [cp, cp2]
        last = s.get(AuditEvent, 6)
        assert cp2.head_hash == last.hash
    report = _report(db, trail, keys)
    assert report.ok, report.problems
    assert report.events == 6 and report.checkpoints == 2


def test_checkpoints_are_taken_every_n_events_after_the_commit(db, keys, tmp_path):
    policy = checkpoints.Policy(every_events=5, every_minutes=60, log_path=tmp_path / "cp.log")
    trail = checkpoints.Checkpointer(db.sessions, lambda: keys, policy)
    trail.watch(db.sessions)
    _append(db, 12)
    with db.sessions() as s:
        taken = checkpoints.stored(s)
    assert [cp.last_id for cp in taken] == [5, 10]
    assert [cp.seq for cp in checkpoint_log.read(tmp_path / "cp.log")[0]] == [1, 2]


def test_after_m_minutes_the_next_commit_makes_a_checkpoint_in_the_background(db, keys, tmp_path):
    policy = checkpoints.Policy(every_events=1000, every_minutes=0, log_path=tmp_path / "cp.log")
    trail = checkpoints.Checkpointer(db.sessions, lambda: keys, policy, background=True)
    trail.watch(db.sessions)
    _append(db, 1)
    assert trail.drain()
    _append(db, 2, start=1)
    assert trail.drain()
    with db.sessions() as s:
        counts = [cp.count for cp in checkpoints.stored(s)]
    assert counts[0] == 1 and counts[-1] == 3 and counts == sorted(set(counts))


def test_the_background_thread_ends_when_idle_and_comes_back(db, keys, tmp_path, monkeypatch):
    import time

    monkeypatch.setattr(checkpoints, "IDLE_EXIT_S", 0.1)
    policy = checkpoints.Policy(every_events=2, every_minutes=60, log_path=tmp_path / "cp.log")
    trail = checkpoints.Checkpointer(db.sessions, lambda: keys, policy, background=True)
    trail.watch(db.sessions)
    _append(db, 2)
    assert trail.drain()
    for _ in range(100):  # a liveness wait, not a timing assertion
        if trail._thread is None:
            break
        time.sleep(0.05)
    assert trail._thread is None
    _append(db, 2, start=2)
    assert trail.drain()
    with db.sessions() as s:
        assert [cp.count for cp in checkpoints.stored(s)] == [2, 4]


def test_a_rolled_back_transaction_takes_no_checkpoint(db, keys, tmp_path):
    policy = checkpoints.Policy(every_events=1, every_minutes=60, log_path=tmp_path / "cp.log")
    trail = checkpoints.Checkpointer(db.sessions, lambda: keys, policy)
    trail.watch(db.sessions)
    with db.sessions() as s:
        audit.append(s, "test.event", "thing", 1, {})
        s.rollback()
    with db.sessions() as s:
        assert checkpoints.stored(s) == []


# --- the attacks -------------------------------------------------------------------------------------

def _rechain_from(db, first_id):
    """Rewrite event ``first_id`` and recompute every later hash and the head, as the review did."""
    with db.engine.begin() as conn:
        rows = conn.execute(select(AuditEvent.__table__).order_by(AuditEvent.id)).mappings().all()
        prev = GENESIS_HASH
        for row in rows:
            data = '{"i":42,"note":"rewritten"}' if row["id"] == first_id else row["data"]
            if row["id"] >= first_id:
                new_hash = audit.event_hash(id=row["id"], prev_hash=prev, at=row["at"], site_id=row["site_id"],
                                            actor_type=row["actor_type"], actor_id=row["actor_id"],
                                            action=row["action"], entity_type=row["entity_type"],
                                            entity_id=row["entity_id"], data=data)
                conn.execute(text("UPDATE audit_event SET data = :d, prev_hash = :p, hash = :h WHERE id = :id"),
                             {"d": data, "p": prev, "h": new_hash, "id": row["id"]})
                prev = new_hash
            else:
                prev = row["hash"]
        conn.execute(text("UPDATE audit_head SET last_hash = :h WHERE id = 1"), {"h": prev})


def test_a_rechained_trail_contradicts_the_checkpoint(db, trail, keys, guards):
    _append(db, 6)
    trail.checkpoint()
    _append(db, 3, start=6)
    trail.checkpoint()
    guards.drop()
    _rechain_from(db, 3)
    guards.restore()
    with db.sessions() as s:
        assert audit.verify(s).ok  # the chain alone is fooled
    report = _report(db, trail, keys)
    assert not report.ok
    assert report.first_contradicted is not None and report.first_contradicted.seq == 1
    assert any("RE-CHAINED" in p and "event 6" in p for p in report.problems), report.problems


def test_a_rechained_trail_whose_checkpoints_were_deleted_contradicts_the_log(db, trail, keys, guards):
    _append(db, 6)
    trail.checkpoint()
    guards.drop()
    _rechain_from(db, 2)
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_checkpoint"))
    guards.restore()
    report = _report(db, trail, keys)
    assert not report.ok and report.first_contradicted.seq == 1
    assert any("NO checkpoints" in p for p in report.problems)
    assert any("RE-CHAINED" in p for p in report.problems)


def test_a_truncated_trail_with_the_head_moved_back_contradicts_the_checkpoint(db, trail, keys, guards):
    _append(db, 10)
    trail.checkpoint()
    guards.drop()
    with db.engine.begin() as conn:
        h = conn.execute(text("SELECT hash FROM audit_event WHERE id = 7")).scalar_one()
        conn.execute(text("DELETE FROM audit_event WHERE id > 7"))
        conn.execute(text("UPDATE audit_head SET last_id = 7, last_hash = :h WHERE id = 1"), {"h": h})
    guards.restore()
    with db.sessions() as s:
        assert audit.verify(s).ok
    report = _report(db, trail, keys)
    assert not report.ok and report.first_contradicted.seq == 1
    assert any("TRUNCATED" in p and "covers 10 events" in p and "only 7" in p for p in report.problems)


def _as_attacker(db, guards, *statements, **params):
    """Drop the guards, run ``statements``, put the guards back (covering one's tracks)."""
    guards.drop()
    with db.engine.begin() as conn:
        for stmt in statements:
            conn.execute(text(stmt), params)
    guards.restore()


def test_an_emptied_trail_contradicts_the_log(db, trail, keys, guards):
    _append(db, 5)
    trail.checkpoint()
    _as_attacker(db, guards, "DELETE FROM audit_event", "DELETE FROM audit_checkpoint",
                 "UPDATE audit_head SET last_id = 0, last_hash = :h WHERE id = 1", h=GENESIS_HASH)
    with db.sessions() as s:
        assert audit.verify(s).ok
    report = _report(db, trail, keys)
    assert not report.ok and report.first_contradicted.seq == 1
    assert any("EMPTIED" in p for p in report.problems)


def test_dropped_triggers_fail_the_verification(db, trail, keys, guards):
    _append(db, 3)
    with db.sessions() as s:
        assert missing_triggers(s) == []
    guards.drop()
    report = _report(db, trail, keys)
    assert not report.ok
    assert any("MISSING" in p for p in report.problems)
    with db.sessions() as s:
        assert set(missing_triggers(s)) == set(REQUIRED_TRIGGERS[db.backend])


def test_a_checkpoint_forged_with_another_key_is_refused(db, trail, keys, tmp_path):
    _append(db, 3)
    other = signing.load_or_create(tmp_path / "attacker.pem")
    forger = checkpoints.Checkpointer(db.sessions, lambda: other, trail.policy)
    forger.checkpoint()
    report = _report(db, trail, keys)
    assert not report.ok and any("UNKNOWN key" in p for p in report.problems)


def test_after_a_key_rotation_old_checkpoints_verify_with_the_retired_public_key(db, trail, keys, tmp_path):
    _append(db, 3)
    trail.checkpoint()
    new_key = signing.load_or_create(tmp_path / "new.pem")
    rotated = checkpoints.Checkpointer(db.sessions, lambda: new_key, trail.policy)
    _append(db, 2, start=3)
    rotated.checkpoint()
    with db.sessions() as s:
        without = verify_trail(s, new_key.public, log_path=trail.policy.log_path)
        with_old = verify_trail(s, new_key.public, log_path=trail.policy.log_path, previous_keys=[keys.public])
    assert not without.ok and with_old.ok, with_old.problems


def test_an_altered_checkpoint_row_fails_its_signature(db, trail, keys, guards):
    _append(db, 3)
    trail.checkpoint()
    _as_attacker(db, guards, "UPDATE audit_checkpoint SET at = '2020-01-01T00:00:00.000000+00:00'")
    report = _report(db, trail, keys)
    assert not report.ok and any("INVALID signature" in p and "database" in p for p in report.problems)


def test_a_checkpoint_re_signed_in_the_database_disagrees_with_the_log(db, trail, keys, guards):
    """Someone holding the server's key re-signs a checkpoint row (another time): both signatures
    hold and the trail matches both, but the database no longer says what the log outside says."""
    from parkinglot.evidence.chain import checkpoint_message

    _append(db, 3)
    cp, _ = trail.checkpoint()
    at = "2020-01-01T00:00:00.000000+00:00"
    signature = keys.sign(checkpoint_message(cp.seq, cp.last_id, cp.head_hash, cp.count, at, keys.key_id))
    _as_attacker(db, guards, "UPDATE audit_checkpoint SET at = :at, signature = :sig", at=at, sig=signature)
    report = _report(db, trail, keys)
    assert not report.ok
    assert any("differs between the database and the checkpoint log" in p for p in report.problems), report.problems


def test_the_head_only_moves_forward_and_the_trail_refuses_truncate(db, trail):
    _append(db, 3)
    trail.checkpoint()
    for stmt in ("UPDATE audit_head SET last_id = 1 WHERE id = 1", "DELETE FROM audit_head",
                 "UPDATE audit_checkpoint SET count = 0", "DELETE FROM audit_checkpoint"):
        with pytest.raises(DBAPIError, match="forward|append-only"):
            with db.engine.begin() as conn:
                conn.execute(text(stmt))
    if db.backend == "postgresql":
        for table in GUARDED:
            with pytest.raises(DBAPIError, match="append-only"):
                with db.engine.begin() as conn:
                    conn.execute(text(f"TRUNCATE {table} CASCADE"))
    with db.sessions() as s:
        assert audit.verify(s).ok and s.scalar(select(AuditCheckpoint.count)) == 3


# --- the command line --------------------------------------------------------------------------------

def test_cli_checkpoint_public_key_and_verify_names_the_rewrite(db, tmp_path, monkeypatch, guards):
    from parkinglot.cli import main

    monkeypatch.setenv("PARKINGLOT_INSTANCE_PATH", str(tmp_path / "inst"))
    monkeypatch.setenv("PARKINGLOT_DATABASE_URL", db.url)

    def run(*args):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    _append(db, 4)
    out = run("audit", "checkpoint")
    assert out.exit_code == 0 and "checkpoint 1 signed: 4 events" in out.output
    assert stat.S_IMODE(os.stat(tmp_path / "inst" / "audit_signing_key.pem").st_mode) == 0o600
    pub = run("audit", "public-key", "-o", str(tmp_path / "pub.pem"))
    assert pub.exit_code == 0 and "BEGIN PUBLIC KEY" in pub.output
    ok = run("audit", "verify")
    assert ok.exit_code == 0 and "consistent with 1 signed checkpoint" in ok.output, ok.output
    line = json.loads((tmp_path / "inst" / "audit-checkpoints.log").read_text().splitlines()[0])
    assert Checkpoint.from_dict(line).count == 4
    guards.drop()
    _rechain_from(db, 1)
    guards.restore()
    bad = run("audit", "verify", "--public-key", str(tmp_path / "pub.pem"))
    assert bad.exit_code == 1
    assert "RE-CHAINED" in bad.output and "first contradicted checkpoint: 1" in bad.output


# --- the external witness ----------------------------------------------------------------------------

def test_the_witness_gets_every_checkpoint_by_webhook_and_syslog(keys):
    import socket

    cp = Checkpoint(7, 70, "a" * 64, 70, "2026-12-02T07:00:00.000000+00:00", keys.key_id, "c2ln")
    got = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(5)
        policy = checkpoints.Policy(witness_url="http://witness.invalid/hook",
                                    witness_syslog=f"127.0.0.1:{udp.getsockname()[1]}")
        checkpoints.send_to_witness(policy, cp, sender=lambda url, body, timeout_s: got.append((url, body)))
        line = udp.recv(65536).decode()
    assert got == [("http://witness.invalid/hook", {"event": "audit.checkpoint", "checkpoint": cp.to_dict()})]
    assert "parkinglot audit checkpoint" in line and '"seq": 7' in line


def test_a_dead_witness_never_stops_the_checkpoint(db, keys, tmp_path):
    def refuse(*_a, **_k):
        raise OSError("connection refused")

    policy = checkpoints.Policy(log_path=tmp_path / "cp.log", witness_url="http://127.0.0.1:9/none")
    checkpoints.send_to_witness(policy, Checkpoint(1, 0, GENESIS_HASH, 0, "x", keys.key_id, ""), sender=refuse)
    trail = checkpoints.Checkpointer(db.sessions, lambda: keys, policy)
    _append(db, 2)
    cp, new = trail.checkpoint()
    assert new and checkpoint_log.read(tmp_path / "cp.log")[0] == [cp]

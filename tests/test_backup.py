"""Backup and restore as an operator runs them, on SQLite and PostgreSQL.

The rule under test: a restore never leaves a database worse than it found it. Each
damaged backup is made to *match its manifest* (as it would if the source was already
damaged), so only the staging checks can catch it; afterwards the target must be exactly
as it was (every row of every table, and the evidence folder).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import sys
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url

from parkinglot.backup import BackupError, RestoreFailed, backup, restore, verify_backup
from parkinglot.backup import keys as backup_keys
from parkinglot.backup import pgtools
from parkinglot.backup.manifest import MANIFEST, sha256_file
from parkinglot.cli import main
from parkinglot.config import ensure_secret_key
from parkinglot.context import build_context
from parkinglot.demo import load_demo
from parkinglot.records import audit, migrate
from parkinglot.records.models import AuditEvent, Evidence, PlateRead

from .conftest import PG_ADMIN_URL, _pg_unavailable_reason, missing_prerequisite

HISTORY = 6


# --- fixtures: databases and instances of our own ------------------------------------------------

def _database_maker(backend: str, tmp_path: Path):
    """``new(name)`` -> the URL of a database nobody else uses (a file, or a scratch PostgreSQL database).

    PostgreSQL databases are dropped afterwards together with anything a restore renamed
    them to (``<name>_before_restore_..``) or staged beside them (``<name>_restore_..``).
    """
    created: list[str] = []
    admin = None
    if backend == "postgresql":
        reason = _pg_unavailable_reason()
        if reason:
            missing_prerequisite(reason, needed_for="the PostgreSQL run")
        for tool in ("pg_dump", "pg_restore"):  # backups of PostgreSQL are taken and restored with them
            try:
                pgtools.find_tool(tool)
            except BackupError as exc:
                missing_prerequisite(str(exc), needed_for="the PostgreSQL backup tests")
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")

    def new(name: str, *, create: bool = True, password: str | None = None) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / (name + '.db')}"
        db_name = f"pl_bk_{uuid.uuid4().hex[:8]}_{name}"[:40]
        created.append(db_name)
        if create:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{db_name}"'))
        return make_url(PG_ADMIN_URL).set(database=db_name, password=password).render_as_string(hide_password=False)

    def drop_all() -> None:
        if admin is None:
            return
        with admin.connect() as conn:
            for (db_name,) in list(conn.execute(text("SELECT datname FROM pg_database"))):
                if any(db_name.startswith(c) for c in created):
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        admin.dispose()

    new.backend = backend
    return new, drop_all


@pytest.fixture(params=["sqlite", "postgresql"])
def new_database(request, tmp_path):
    new, drop_all = _database_maker(request.param, tmp_path)
    yield new
    drop_all()


@pytest.fixture
def new_pg_database(tmp_path):
    new, drop_all = _database_maker("postgresql", tmp_path)
    yield new
    drop_all()


def instance(tmp_path: Path, name: str, url: str, *, keys_from: str | None = None):
    """A parkinglot instance folder of its own; ``keys_from`` copies another's key files (as an operator would)."""
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    if keys_from:
        for key_file in backup_keys.KEY_FILES.values():
            if (tmp_path / keys_from / key_file).exists():
                shutil.copy(tmp_path / keys_from / key_file, folder / key_file)
    return build_context({"DATABASE_URL": url, "EVIDENCE_DIR": str(folder / "evidence"), "INSTANCE_PATH": str(folder)})


def source(tmp_path, new_database, history: int = HISTORY):
    ctx = instance(tmp_path, "src", new_database("src"))
    migrate.upgrade(ctx.engine)
    load_demo(ctx, history=history)
    return ctx


def state(ctx) -> dict:
    """Everything a restore could have changed: every row of every table, and the evidence files."""
    url = make_url(ctx.settings["DATABASE_URL"])
    if url.get_backend_name() == "sqlite" and not Path(url.database).exists():
        return {"tables": "<no database file>", "evidence": _files(ctx)}
    engine = create_engine(ctx.settings["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1))
    rows = {}
    try:
        with engine.connect() as conn:
            for name in sorted(inspect(conn).get_table_names()):
                found = sorted(repr(tuple(r)) for r in conn.execute(text(f'SELECT * FROM "{name}"')))
                rows[name] = (len(found), hashlib.sha256("\n".join(found).encode()).hexdigest())
    except Exception as exc:  # noqa: BLE001 - "no database" is a state too
        rows = {"<unreadable>": type(exc).__name__}
    finally:
        engine.dispose()
    return {"tables": rows, "evidence": _files(ctx)}


def _files(ctx) -> list[tuple[str, str]]:
    root = Path(ctx.settings["EVIDENCE_DIR"])
    if not root.exists():
        return []
    return sorted((p.relative_to(root).as_posix(), sha256_file(p)) for p in root.rglob("*") if p.is_file())


def reads_count(ctx) -> int:
    with ctx.read_sessions() as s:
        return s.scalar(select(func.count()).select_from(PlateRead))


def rewrite_manifest(bk: Path, **changes) -> None:
    """Make the manifest match the files again (as if the damage was there when the backup was taken)."""
    m = json.loads((bk / MANIFEST).read_text())
    for entry in m["files"]:
        p = bk / entry["path"]
        entry["sha256"], entry["bytes"] = sha256_file(p), p.stat().st_size
    m.update(changes)
    (bk / MANIFEST).write_text(json.dumps(m))


def damage_database_file(bk: Path, backend: str) -> None:
    if backend == "sqlite":  # scribble over pages in the middle of the file, as a failing disk would
        path = bk / "database.sqlite"
        data = bytearray(path.read_bytes())
        page = 4096
        for n in range(3, len(data) // page - 1, 3):
            data[n * page + 100: n * page + 900] = os.urandom(800)
        path.write_bytes(bytes(data))
    else:  # a dump cut short, as a full disk or a killed pg_dump leaves it
        path = bk / "database.pgdump"
        data = path.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])
    rewrite_manifest(bk)


def staging_leftovers(ctx) -> list[str]:
    url = make_url(ctx.settings["DATABASE_URL"])
    if url.get_backend_name() == "sqlite":
        return [p.name for p in Path(url.database).parent.iterdir() if ".restoring-" in p.name]
    eng = create_engine(PG_ADMIN_URL)
    try:
        with eng.connect() as conn:
            return [r[0] for r in conn.execute(text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                                               {"p": f"{url.database[:40]}_restore_%"})]
    finally:
        eng.dispose()


# --- round trip ----------------------------------------------------------------------------------

def test_round_trip_onto_a_fresh_instance(new_database, tmp_path):
    src = source(tmp_path, new_database)
    before = state(src)
    result = backup(src, tmp_path / "bk")
    m = verify_backup(tmp_path / "bk")
    assert m["backend"] == new_database.backend and m["schema_revision"] == migrate.head_revision(src.engine)
    assert m["tables"]["plate_read"] == reads_count(src) > 0 and result.tables == m["tables"]
    assert m["audit_head"]["last_id"] > 0 and m["keys"]["fingerprints"]["AUDIT_PLATE_KEY"]
    assert m["keys"]["file"] is None  # no passphrase, no keys

    dst = instance(tmp_path, "dst", new_database("dst", create=False), keys_from="src")
    info = restore(dst, tmp_path / "bk")
    assert info.previous_kept is None and info.upgraded_to is None
    assert info.tables == m["tables"] and info.evidence_files == len(before["evidence"]) > 0
    after = state(dst)
    assert after["evidence"] == before["evidence"]
    changed = {t for t in before["tables"] if before["tables"][t] != after["tables"][t]}
    assert changed == {"audit_event", "audit_head"}  # only the restore's own audit entry was added
    with dst.read_sessions() as s:
        assert audit.verify(s).ok
        last = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
        ev = s.scalars(select(Evidence)).first()
    assert last.action == "backup.restored" and last.id == m["audit_head"]["last_id"] + 1
    assert dst.evidence.read(ev.sha256, ev.content_type)
    if new_database.backend == "sqlite":  # the restored database is its owner's only, as a new one is
        assert stat.S_IMODE(os.stat(make_url(dst.settings["DATABASE_URL"]).database).st_mode) == 0o600
    src.close()
    dst.close()


# --- a damaged database file that matches its manifest -------------------------------------------

def test_damaged_backup_matching_its_manifest_never_reaches_the_target(new_database, tmp_path):
    """SQLite: pages scribbled over; PostgreSQL: a dump cut short. Both re-hashed into the manifest."""
    src = source(tmp_path, new_database)
    backup(src, tmp_path / "bk")
    damage_database_file(tmp_path / "bk", new_database.backend)
    verify_backup(tmp_path / "bk")  # the checksums alone cannot tell

    # onto a fresh machine: refused at a staging step; no database, no photos appear
    fresh = instance(tmp_path, "fresh", new_database("fresh", create=False), keys_from="src")
    empty_state = state(fresh)
    with pytest.raises(RestoreFailed) as failed:
        restore(fresh, tmp_path / "bk")
    assert failed.value.step in ("integrity check", "restore into a staging copy", "compare with the manifest")
    assert failed.value.unchanged and "were not changed" in str(failed.value)
    assert state(fresh) == empty_state and not staging_leftovers(fresh)

    # with --force over a working instance: the working database stays exactly as it was
    before = state(src)
    reads = reads_count(src)
    with pytest.raises(RestoreFailed) as failed:
        restore(src, tmp_path / "bk", force=True)
    assert failed.value.step in ("integrity check", "restore into a staging copy", "compare with the manifest")
    assert state(src) == before and reads_count(src) == reads
    assert not staging_leftovers(src)
    with src.read_sessions() as s:
        assert audit.verify(s).ok
    src.close()
    fresh.close()


def test_damaged_source_gives_no_backup(tmp_path):
    ctx = instance(tmp_path, "src", f"sqlite:///{tmp_path / 'src.db'}")
    migrate.upgrade(ctx.engine)
    load_demo(ctx, history=HISTORY)
    ctx.close()
    data = bytearray((tmp_path / "src.db").read_bytes())
    for n in range(3, len(data) // 4096 - 1, 2):
        data[n * 4096 + 8: n * 4096 + 2000] = os.urandom(1992)
    (tmp_path / "src.db").write_bytes(bytes(data))
    with pytest.raises(BackupError, match="damaged|cannot be read"):
        backup(ctx, tmp_path / "bk")
    assert not (tmp_path / "bk").exists()  # no half backup that looks like a whole one


def test_failure_after_the_swap_is_undone(new_database, tmp_path, monkeypatch):
    """If a step after the swap fails (photos, keys, audit), the previous database and folder come back."""
    from parkinglot.backup import restoring as restore_mod

    src = source(tmp_path, new_database)
    backup(src, tmp_path / "bk")
    target = instance(tmp_path, "tgt", new_database("tgt"), keys_from="src")
    migrate.upgrade(target.engine)
    load_demo(target, history=2, seed=7)
    before = state(target)

    def fail(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(restore_mod, "_audit_restore", fail)
    with pytest.raises(RestoreFailed) as failed:
        restore(target, tmp_path / "bk", force=True)
    assert failed.value.step == "record the restore in the audit trail" and failed.value.unchanged
    assert "No space left" in str(failed.value)
    assert state(target) == before and not staging_leftovers(target)
    url = make_url(target.settings["DATABASE_URL"])
    if url.get_backend_name() == "sqlite":
        assert not [p for p in Path(url.database).parent.iterdir() if "before-restore" in p.name]
    src.close()
    target.close()


# --- schema revisions ----------------------------------------------------------------------------

def test_older_schema_is_restored_and_upgraded(new_database, tmp_path):
    src = source(tmp_path, new_database)
    # an older schema has no pay-station keys: the downgrade refuses while one exists (it would become a
    # lane controller's key), so the older backup is of a site without the demo's pay station
    with src.engine.begin() as conn:
        conn.execute(text("DELETE FROM device WHERE kind = 'pay_station'"))
    migrate.downgrade(src.engine, "0003")
    reads = reads_count(src)
    backup(src, tmp_path / "bk")
    assert verify_backup(tmp_path / "bk")["schema_revision"] == "0003"
    dst = instance(tmp_path, "dst", new_database("dst", create=False), keys_from="src")
    info = restore(dst, tmp_path / "bk")
    assert info.schema_revision == "0003" and info.upgraded_to == migrate.head_revision(dst.engine)
    assert migrate.current_revision(dst.engine) == migrate.head_revision(dst.engine)
    assert reads_count(dst) == reads
    with dst.read_sessions() as s:
        assert audit.verify(s).ok
    src.close()
    dst.close()


def test_newer_or_unknown_schema_is_refused(new_database, tmp_path):
    src = source(tmp_path, new_database)
    backup(src, tmp_path / "bk")
    bk = tmp_path / "bk"
    if new_database.backend == "sqlite":  # the database itself says so, and the manifest agrees
        con = sqlite3.connect(bk / "database.sqlite")
        con.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
        con.commit()
        con.close()
    rewrite_manifest(bk, schema_revision="0099_from_the_future")
    fresh = instance(tmp_path, "fresh", new_database("fresh", create=False), keys_from="src")
    empty = state(fresh)
    with pytest.raises(RestoreFailed, match="newer than, or unknown to") as failed:
        restore(fresh, bk)
    assert failed.value.step == "check the schema revision"
    assert state(fresh) == empty

    # a manifest that names the current head for a database at another revision is caught in staging
    if new_database.backend == "sqlite":
        rewrite_manifest(bk, schema_revision=migrate.head_revision(src.engine))
        with pytest.raises(RestoreFailed, match="0099_from_the_future") as failed:
            restore(fresh, bk)
        assert failed.value.step == "compare with the manifest" and state(fresh) == empty
    src.close()
    fresh.close()


# --- keys ----------------------------------------------------------------------------------------

def test_missing_key_is_refused_unless_ignored_or_carried(new_database, tmp_path, monkeypatch):
    src = source(tmp_path, new_database)
    ensure_secret_key(src.settings)  # as the web app does on first start
    plate = "KEYTEST1"
    src_digest = audit.plate_digest(plate, src.settings["AUDIT_PLATE_KEY"].encode())  # under the source's key
    backup(src, tmp_path / "plain")
    monkeypatch.setenv(backup_keys.PASSPHRASE_ENV, "correct horse battery staple")
    backup(src, tmp_path / "sealed", passphrase=backup_keys.read_passphrase(None))
    sealed = verify_backup(tmp_path / "sealed")
    assert sealed["keys"]["file"] == "keys.enc"
    raw = (tmp_path / "sealed" / "keys.enc").read_text()
    assert src.settings["AUDIT_PLATE_KEY"] not in raw and src.settings["SECRET_KEY"] not in raw

    # a fresh machine with a new key: refused, with the way out, and nothing touched
    other = instance(tmp_path, "other", new_database("other", create=False))
    empty = state(other)
    with pytest.raises(RestoreFailed, match="audit plate key") as failed:
        restore(other, tmp_path / "plain")
    assert failed.value.step == "check the keys" and "--ignore-key-mismatch" in str(failed.value)
    assert state(other) == empty
    with pytest.raises(RestoreFailed, match="wrong passphrase"):
        restore(other, tmp_path / "sealed", passphrase="not the passphrase at all")
    assert state(other) == empty

    # the passphrase brings the keys along: written into the instance, plates digest as before
    info = restore(other, tmp_path / "sealed", passphrase="correct horse battery staple")
    assert "keys restored" in info.keys
    key_file = tmp_path / "other" / "audit_plate_key"
    assert key_file.read_text().strip() == src.settings["AUDIT_PLATE_KEY"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with other.sessions() as s:  # the restored instance's sessions digest under the key it was given
        assert audit.plate_digest(plate, audit.plate_key(s)) == src_digest

    # or the operator accepts the mismatch explicitly, and the audit trail says so
    third = instance(tmp_path, "third", new_database("third", create=False))
    info = restore(third, tmp_path / "plain", ignore_key_mismatch=True)
    assert any("MISMATCH" in w for w in info.warnings)
    with third.read_sessions() as s:
        last = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
    assert last.action == "backup.restored" and json.loads(last.data)["key_mismatch_ignored"] is True
    for c in (src, other, third):
        c.close()


# --- the command line: sentences, not tracebacks; no password in the process list ------------------

def cli(args, instance_dir: Path, url: str, **env):
    environ = {"PARKINGLOT_INSTANCE_PATH": str(instance_dir), "PARKINGLOT_DATABASE_URL": url,
               "PARKINGLOT_EVIDENCE_DIR": str(instance_dir / "evidence"), **env}
    return CliRunner().invoke(main, args, env=environ)


def test_cli_errors_are_sentences(new_database, tmp_path):
    src = source(tmp_path, new_database)
    url = src.settings["DATABASE_URL"]
    out = cli(["backup", str(tmp_path / "bk")], tmp_path / "src", url)
    assert out.exit_code == 0, out.output
    assert "keys are NOT in this backup" in out.output
    bad = tmp_path / "bad"
    for content, expected in (("{}", "names no known database backend"), ("[]", "must hold a JSON object"),
                              ("not json", "not readable JSON"),
                              (json.dumps({"backend": "sqlite", "schema_revision": "0004", "files": [
                                  {"path": "../../etc/passwd", "sha256": "0" * 64}]}), "leaves the backup folder")):
        shutil.rmtree(bad, ignore_errors=True)
        bad.mkdir()
        (bad / MANIFEST).write_text(content)
        r = cli(["restore", str(bad)], tmp_path / "src", url)
        assert r.exit_code == 1 and expected in r.output and "Traceback" not in r.output, r.output
        assert r.exception is None or isinstance(r.exception, SystemExit)
    r = cli(["restore", str(tmp_path / "bk")], tmp_path / "src", url)
    assert r.exit_code == 1 and "already holds data; pass --force" in r.output and "Traceback" not in r.output
    r = cli(["backup", str(tmp_path / "bk")], tmp_path / "src", url)
    assert r.exit_code == 1 and "not an empty folder" in r.output
    src.close()  # the "server" stops before the restore
    r = cli(["restore", str(tmp_path / "bk"), "--force"], tmp_path / "src", url)
    assert r.exit_code == 0, r.output
    assert "audit trail intact" in r.output and "previous database is kept at" in r.output
    assert "retention run --apply" in r.output  # what retention purged since the backup is back
    src.close()


def _recording_shims(folder: Path, log: Path) -> None:
    """pg_dump / pg_restore stand-ins that record their command line and password file, then run the real tool."""
    from parkinglot.backup.pgtools import find_tool

    folder.mkdir()
    for tool in ("pg_dump", "pg_restore"):
        real = find_tool(tool)
        shim = folder / tool
        shim.write_text(f"""#!{sys.executable}
import json, os, sys
with open({str(log)!r}, "a") as fh:
    passfile = os.environ.get("PGPASSFILE")
    fh.write(json.dumps({{"tool": os.path.basename(sys.argv[0]),
                         "argv": open("/proc/self/cmdline", "rb").read().decode(errors="replace"),
                         "environ_password": os.environ.get("PGPASSWORD"),
                         "passfile": open(passfile).read() if passfile else None}}) + "\\n")
os.execv({real!r}, [{real!r}] + sys.argv[1:])
""")
        shim.chmod(0o755)


def test_password_stays_out_of_the_process_list_and_the_errors(new_pg_database, tmp_path, monkeypatch):
    password = "s3cret-" + uuid.uuid4().hex[:10]
    url = new_pg_database("pw", password=password)
    log = tmp_path / "calls.jsonl"
    _recording_shims(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("PGPASSWORD", "a-different-ambient-password")
    ctx = instance(tmp_path, "pw", url)
    migrate.upgrade(ctx.engine)
    load_demo(ctx, history=2)
    backup(ctx, tmp_path / "bk")
    restore(ctx, tmp_path / "bk", force=True, keep_previous=False)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert {c["tool"] for c in calls} == {"pg_dump", "pg_restore"}
    for call in calls:
        assert password not in call["argv"]
        assert call["environ_password"] is None  # the URL's password wins; an ambient one is not passed on
        assert call["passfile"] and password in call["passfile"]

    # a server that cannot be reached: a sentence, scrubbed, no traceback, no half backup
    broken = make_url(url).set(port=1).render_as_string(hide_password=False)
    r = cli(["--database-url", broken, "backup", str(tmp_path / "bk2")], tmp_path / "pw", broken)
    assert r.exit_code == 1 and "connect" in r.output.lower(), r.output
    assert "Traceback" not in r.output and password not in r.output and not (tmp_path / "bk2").exists()
    # and the tool's own error message when pg_dump itself fails
    with pytest.raises(BackupError) as failed:
        pgtools.run("pg_dump", [f"--dbname={pgtools.conninfo(make_url(broken))}"], make_url(broken))
    assert "pg_dump failed" in str(failed.value) and "pg_dump:" in str(failed.value)
    assert password not in str(failed.value) and "CalledProcessError" not in str(failed.value)
    ctx.close()


def test_postgresql_restore_refuses_while_others_are_connected(new_pg_database, tmp_path):
    url = new_pg_database("busy")
    ctx = instance(tmp_path, "busy", url)
    migrate.upgrade(ctx.engine)
    load_demo(ctx, history=2)
    backup(ctx, tmp_path / "bk")
    before = state(ctx)
    server = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with server.connect() as still_running:
        still_running.execute(text("SELECT 1"))
        with pytest.raises(RestoreFailed, match="other session") as failed:
            restore(ctx, tmp_path / "bk", force=True)
    server.dispose()
    assert failed.value.step == "swap the staging copy in"
    assert state(ctx) == before and not staging_leftovers(ctx)
    ctx.close()


def test_tampered_photo_is_refused(tmp_path):
    ctx = instance(tmp_path, "src", f"sqlite:///{tmp_path / 'a.db'}")
    migrate.upgrade(ctx.engine)
    load_demo(ctx, history=2)
    backup(ctx, tmp_path / "bk")
    victim = next((tmp_path / "bk" / "evidence").rglob("*.jpg"))
    victim.write_bytes(b"\xff\xd8\xff" + b"0" * 50)
    with pytest.raises(RestoreFailed, match="checksum mismatch") as failed:
        restore(ctx, tmp_path / "bk", force=True)
    assert failed.value.step == "check the files against the manifest"
    ctx.close()

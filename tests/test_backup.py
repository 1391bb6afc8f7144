"""Backup and restore round trips, SQLite (online backup API) and PostgreSQL (pg_dump/pg_restore)."""
import shutil

import pytest
from sqlalchemy import func, select

from parkinglot.backup import BackupError, backup, restore, verify_backup
from parkinglot.context import build_context
from parkinglot.demo import load_demo
from parkinglot.records import audit, migrate
from parkinglot.records.models import Evidence, PlateRead


def _counts(ctx):
    with ctx.read_sessions() as s:
        return (s.scalar(select(func.count()).select_from(PlateRead)),
                s.scalar(select(func.count()).select_from(Evidence)), audit.verify(s).checked)


def test_round_trip(db, tmp_path):
    if db.backend == "postgresql" and not (shutil.which("pg_dump") or list(__import__("pathlib").Path(
            "/usr/lib/postgresql").glob("*/bin/pg_dump"))):
        pytest.skip("pg_dump not installed")
    src = build_context({"DATABASE_URL": db.url, "EVIDENCE_DIR": str(tmp_path / "ev"),
                         "INSTANCE_PATH": str(tmp_path / "inst")})
    load_demo(src, history=8)
    before = _counts(src)
    result = backup(src, tmp_path / "bk")
    assert result.files >= 2 and verify_backup(tmp_path / "bk")["backend"] == db.backend

    if db.backend == "sqlite":
        target_url = f"sqlite:///{tmp_path / 'restored.db'}"
    else:  # a fresh database of our own on the same server
        from benchmarks.common import scratch_postgres

        cm = scratch_postgres()
        target_url = cm.__enter__()
    try:
        dst = build_context({"DATABASE_URL": target_url, "EVIDENCE_DIR": str(tmp_path / "ev2"),
                             "INSTANCE_PATH": str(tmp_path / "inst2")})
        restore(dst, tmp_path / "bk")
        dst2 = build_context({"DATABASE_URL": target_url, "EVIDENCE_DIR": str(tmp_path / "ev2"),
                              "INSTANCE_PATH": str(tmp_path / "inst2")})
        assert _counts(dst2) == before
        assert migrate.current_revision(dst2.engine) == migrate.head_revision(dst2.engine)
        with dst2.read_sessions() as s:
            assert audit.verify(s).ok
            ev = s.scalars(select(Evidence)).first()
        assert dst2.evidence.read(ev.sha256, ev.content_type)
        dst2.close()
    finally:
        if db.backend == "postgresql":
            cm.__exit__(None, None, None)
    src.close()


def test_tampered_backup_is_refused(tmp_path):
    ctx = build_context({"DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}", "EVIDENCE_DIR": str(tmp_path / "ev"),
                         "INSTANCE_PATH": str(tmp_path)})
    migrate.upgrade(ctx.engine)
    load_demo(ctx, history=2)
    backup(ctx, tmp_path / "bk")
    victim = next((tmp_path / "bk" / "evidence").rglob("*.jpg"))
    victim.write_bytes(b"\xff\xd8\xff" + b"0" * 50)
    with pytest.raises(BackupError, match="checksum mismatch"):
        restore(ctx, tmp_path / "bk", force=True)
    with pytest.raises(BackupError, match="not empty"):
        backup(ctx, tmp_path / "bk")
    ctx.close()

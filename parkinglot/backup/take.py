"""Taking a backup: a consistent snapshot of the database, the photos it points to, a manifest.

SQLite is copied with its online backup API; PostgreSQL with ``pg_dump -Fc`` run on a
snapshot exported from our own REPEATABLE READ transaction, so the row counts and the
audit head written into the manifest are those of exactly the data in the dump. Both
work while lanes keep sending events. The photos copied are the ones the snapshot
references (a photo written after it is not needed; one missing is named).
"""
from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from .. import __version__ as _version
from ..context import Context
from ..records.evidence import EvidenceStore
from . import census, keys, manifest, pgtools
from .errors import BackupError


@dataclass(frozen=True)
class BackupResult:
    path: Path
    files: int
    bytes: int
    backend: str
    keys_included: bool
    evidence_missing: int
    tables: dict[str, int]


def _sqlite_snapshot(db_path: Path, out: Path) -> tuple[census.Census, list[tuple[str, str]]]:
    if not db_path.is_file():
        raise BackupError(f"there is no database at {db_path}")
    src = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    dst = sqlite3.connect(out)
    try:
        with dst:
            src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        problems = [r[0] for r in dst.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"the database at {db_path} cannot be read: {exc}") from None
    finally:
        dst.close()
        src.close()
    if problems != ["ok"]:
        raise BackupError(f"the database at {db_path} is damaged ({'; '.join(problems[:3])}); no backup was "
                          "written. Restore the last good backup, or copy the file by hand for forensics")
    engine = create_engine(f"sqlite:///{out}")
    try:
        with engine.connect() as conn:
            return census.take(conn), _photos(conn)
    finally:
        engine.dispose()


def _photos(conn) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in conn.execute(
        text("SELECT sha256, content_type FROM evidence WHERE purged_at IS NULL ORDER BY sha256"))]


def _pg_snapshot(ctx: Context, out: Path) -> tuple[census.Census, list[tuple[str, str]]]:
    url = make_url(ctx.settings["DATABASE_URL"])
    with ctx.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            counted = census.take(conn)
            photos = _photos(conn)
            pgtools.run("pg_dump", ["--format=custom", "--no-owner", f"--snapshot={snapshot}", f"--file={out}",
                                    f"--dbname={pgtools.conninfo(url)}"], url)
    return counted, photos


def backup(ctx: Context, out_dir: Path, *, passphrase: Optional[str] = None) -> BackupResult:
    """Write a backup of the database and its evidence photos into ``out_dir`` (new or empty)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise BackupError(f"{out_dir} is not an empty folder; back up into a new one")
    url = make_url(ctx.settings["DATABASE_URL"])
    backend = url.get_backend_name()
    if backend not in manifest.DATABASE_FILES:
        raise BackupError(f"no backup method for {backend}")
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _write(ctx, out_dir, backend, passphrase)
    except SQLAlchemyError as exc:
        shutil.rmtree(out_dir, ignore_errors=True)
        orig = str(getattr(exc, "orig", exc)).strip()
        raise BackupError("cannot read the database: " + pgtools.scrub(orig, url)) from None
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)  # never leave a half backup that looks like a whole one
        raise


def _write(ctx: Context, out_dir: Path, backend: str, passphrase: Optional[str]) -> BackupResult:
    db_file = out_dir / manifest.DATABASE_FILES[backend]
    if backend == "sqlite":
        counted, photos = _sqlite_snapshot(Path(make_url(ctx.settings["DATABASE_URL"]).database), db_file)
    else:
        counted, photos = _pg_snapshot(ctx, db_file)
    if counted.revision is None:
        raise BackupError("the database has no schema revision; run `parkinglot db upgrade` first")
    store = EvidenceStore(ctx.settings["EVIDENCE_DIR"])
    backup_store = EvidenceStore(out_dir / "evidence")
    missing = []
    for sha, ctype in photos:
        src = store.path_for(sha, ctype)
        dst = backup_store.path_for(sha, ctype)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(src, dst)
        except FileNotFoundError:
            missing.append(sha)
    key_info: dict[str, Any] = {"fingerprints": keys.fingerprints(ctx.settings), "file": None,
                                "not_included": ["audit signing key (keep it with the instance's secrets)"]}
    if passphrase:
        (out_dir / keys.KEYS_FILE).write_bytes(
            keys.encrypt(keys.current(ctx.settings), passphrase))
        key_info["file"] = keys.KEYS_FILE
    else:
        key_info["not_included"] += [f"{name} (instance/{f})" for name, f in keys.KEY_FILES.items()]
    files = manifest.file_entries(out_dir)
    manifest.write(out_dir, {
        "format": manifest.FORMAT,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "parkinglot_version": _version,
        "backend": backend,
        **counted.as_manifest(),
        "keys": key_info,
        "evidence_missing": missing,
        "files": files,
    })
    return BackupResult(out_dir, len(files), sum(f["bytes"] for f in files), backend, bool(passphrase),
                        len(missing), counted.tables)

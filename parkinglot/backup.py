"""Backup and restore: the database and the evidence photos, with checksums.

SQLite is copied with its online backup API (consistent while the server runs);
PostgreSQL with ``pg_dump -Fc`` / ``pg_restore``. Every file gets a SHA-256 in
``manifest.json``; a restore refuses a backup whose files don't match it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from .context import Context
from .records import migrate

MANIFEST = "manifest.json"


class BackupError(RuntimeError):
    pass


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise BackupError(f"{name} not found; install the PostgreSQL client tools")


@dataclass(frozen=True)
class BackupResult:
    path: Path
    files: int
    bytes: int
    backend: str


def backup(ctx: Context, out_dir: Path) -> BackupResult:
    """Write a backup of the database and evidence into the new folder ``out_dir``."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise BackupError(f"{out_dir} is not empty")
    out_dir.mkdir(parents=True, exist_ok=True)
    url = make_url(ctx.settings["DATABASE_URL"])
    backend = url.get_backend_name()
    if backend == "sqlite":
        src = sqlite3.connect(url.database)
        dst = sqlite3.connect(out_dir / "database.sqlite")
        with dst:
            src.backup(dst)
        dst.close()
        src.close()
    elif backend == "postgresql":
        subprocess.run([_pg_tool("pg_dump"), "-Fc", "--no-owner", "-f", str(out_dir / "database.pgdump"),
                        _libpq_url(str(url.render_as_string(hide_password=False)))], check=True, capture_output=True)
    else:
        raise BackupError(f"no backup method for {backend}")
    evidence_root = Path(ctx.settings["EVIDENCE_DIR"])
    if evidence_root.exists():
        for src in evidence_root.rglob("*"):
            if src.is_file() and not src.name.startswith(".tmp-"):
                dst = out_dir / "evidence" / src.relative_to(evidence_root)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
    files = []
    total = 0
    for path in sorted(p for p in out_dir.rglob("*") if p.is_file()):
        size = path.stat().st_size
        total += size
        files.append({"path": str(path.relative_to(out_dir)), "sha256": _sha256(path), "bytes": size})
    manifest: dict[str, Any] = {
        "created_at": datetime.now(timezone.utc).isoformat(),
        "backend": backend,
        "schema_revision": migrate.current_revision(ctx.engine),
        "files": files,
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return BackupResult(out_dir, len(files), total, backend)


def verify_backup(backup_dir: Path) -> dict[str, Any]:
    """Check every file against the manifest; raise BackupError on the first mismatch."""
    backup_dir = Path(backup_dir)
    try:
        manifest = json.loads((backup_dir / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"no readable manifest in {backup_dir}: {exc}") from None
    for entry in manifest["files"]:
        path = backup_dir / entry["path"]
        if not path.is_file():
            raise BackupError(f"missing file {entry['path']}")
        if _sha256(path) != entry["sha256"]:
            raise BackupError(f"checksum mismatch for {entry['path']}")
    return manifest


def restore(ctx: Context, backup_dir: Path, *, force: bool = False) -> dict[str, Any]:
    """Restore a verified backup into the configured database and evidence folder."""
    backup_dir = Path(backup_dir)
    manifest = verify_backup(backup_dir)
    url = make_url(ctx.settings["DATABASE_URL"])
    backend = url.get_backend_name()
    if backend != manifest["backend"]:
        raise BackupError(f"backup is of a {manifest['backend']} database; the target is {backend}")
    ctx.engine.dispose()
    if backend == "sqlite":
        target = Path(url.database)
        if target.exists() and not force:
            raise BackupError(f"{target} exists; pass --force to replace it")
        for suffix in ("-wal", "-shm"):
            Path(str(target) + suffix).unlink(missing_ok=True)
        tmp = target.with_suffix(".restoring")
        shutil.copyfile(backup_dir / "database.sqlite", tmp)
        os.replace(tmp, target)
    else:
        cmd = [_pg_tool("pg_restore"), "--no-owner", "--exit-on-error", "-d",
               _libpq_url(url.render_as_string(hide_password=False))]
        if force:
            cmd[1:1] = ["--clean", "--if-exists"]
        subprocess.run(cmd + [str(backup_dir / "database.pgdump")], check=True, capture_output=True)
    evidence_root = Path(ctx.settings["EVIDENCE_DIR"])
    src_root = backup_dir / "evidence"
    restored = 0
    if src_root.exists():
        for src in src_root.rglob("*"):
            if src.is_file():
                dst = evidence_root / src.relative_to(src_root)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
                restored += 1
    return {"backend": backend, "evidence_files": restored, "schema_revision": manifest["schema_revision"]}

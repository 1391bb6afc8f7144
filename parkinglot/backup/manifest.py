"""``manifest.json``: what a backup holds, with a SHA-256 per file, checked before any restore.

The manifest is input like any other: a restore validates its shape (``{}`` or a
list is refused with a sentence, not a traceback) and never follows a path that
leaves the backup folder.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import BackupError

MANIFEST = "manifest.json"
FORMAT = 2  # 1: files, backend, schema_revision; 2: + table counts, audit head, key fingerprints
DATABASE_FILES = {"sqlite": "database.sqlite", "postgresql": "database.pgdump"}
_HEX64 = re.compile(r"[0-9a-f]{64}")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_entries(root: Path) -> list[dict[str, Any]]:
    """Path, SHA-256 and size of every file under ``root`` except the manifest, sorted."""
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST):
        out.append({"path": path.relative_to(root).as_posix(), "sha256": sha256_file(path),
                    "bytes": path.stat().st_size})
    return out


def write(root: Path, manifest: dict[str, Any]) -> None:
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def safe_relative(path: object) -> PurePosixPath:
    """A manifest path as a relative path that stays inside the backup folder, or BackupError."""
    if not isinstance(path, str) or not path or "\\" in path or "\x00" in path:
        raise BackupError(f"manifest names an invalid path {path!r}")
    p = PurePosixPath(path)
    if p.is_absolute() or any(part in ("..", "") for part in p.parts):
        raise BackupError(f"manifest path {path!r} leaves the backup folder")
    return p


def read(root: Path) -> dict[str, Any]:
    """The manifest of the backup in ``root``, with its shape checked (not yet the files)."""
    path = Path(root) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(f"{root} has no {MANIFEST}: is it a parkinglot backup folder?") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BackupError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BackupError(f"{path} must hold a JSON object, not {type(data).__name__}")
    backend = data.get("backend")
    if backend not in DATABASE_FILES:
        raise BackupError(f"{path} names no known database backend (got {backend!r}; expected sqlite or postgresql)")
    files = data.get("files")
    if not isinstance(files, list) or not files:
        raise BackupError(f"{path} lists no files")
    seen = set()
    for entry in files:
        if not isinstance(entry, dict):
            raise BackupError(f"{path}: every file entry must be an object with path, sha256 and bytes")
        rel = safe_relative(entry.get("path"))
        if not isinstance(entry.get("sha256"), str) or not _HEX64.fullmatch(entry["sha256"]):
            raise BackupError(f"{path}: the entry for {rel} has no valid sha256")
        seen.add(rel.as_posix())
    if DATABASE_FILES[backend] not in seen:
        raise BackupError(f"{path} does not list the database file {DATABASE_FILES[backend]}")
    rev = data.get("schema_revision")
    if not isinstance(rev, str) or not rev:
        raise BackupError(f"{path} records no schema revision; the backup cannot be checked against this version")
    for key, kind in (("tables", dict), ("audit_head", dict), ("keys", dict)):
        if key in data and not isinstance(data[key], kind):
            raise BackupError(f"{path}: '{key}' must be a JSON object")
    return data


def verify_files(root: Path, manifest: dict[str, Any]) -> None:
    """Every listed file present with its SHA-256; raise BackupError on the first that is not."""
    for entry in manifest["files"]:
        rel = safe_relative(entry["path"])
        path = Path(root) / rel
        if not path.is_file():
            raise BackupError(f"missing file {rel}")
        if sha256_file(path) != entry["sha256"]:
            raise BackupError(f"checksum mismatch for {rel}")


def evidence_entries(manifest: dict[str, Any]) -> list[tuple[PurePosixPath, str]]:
    """The evidence files the manifest lists (never what happens to lie in the folder)."""
    out = []
    for entry in manifest["files"]:
        rel = safe_relative(entry["path"])
        if rel.parts[0] == "evidence" and len(rel.parts) > 1:
            out.append((PurePosixPath(*rel.parts[1:]), entry["sha256"]))
    return out

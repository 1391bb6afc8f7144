"""Backup and restore: the database, the evidence photos it references, checksums and key fingerprints.

``backup`` writes a consistent snapshot (``take.py``); ``restore`` rebuilds it in a staging
copy, checks it and only then swaps it in (``restore.py``, ``staging.py``). What a backup
holds and what must be kept beside it is in ``docs/reliability.md``.
"""
from __future__ import annotations

from typing import Any

from pathlib import Path

from .errors import BackupError, RestoreFailed
from .manifest import MANIFEST
from .restoring import RestoreResult, restore
from .take import BackupResult, backup

__all__ = ["BackupError", "RestoreFailed", "BackupResult", "RestoreResult", "MANIFEST", "backup", "restore",
           "verify_backup"]


def verify_backup(backup_dir: Path) -> dict[str, Any]:
    """The manifest of a backup after checking its shape and every file's checksum (BackupError if not)."""
    from . import manifest

    data = manifest.read(Path(backup_dir))
    manifest.verify_files(Path(backup_dir), data)
    return data

"""The append-only checkpoint log outside the database: one JSON line per signed checkpoint.

Whoever can rewrite the database (drop the triggers, recompute every hash) can also
delete the checkpoint rows; the copies here, and at the witness, are what they cannot
reach if this file lives where the database administrator has no write access (another
host, a WORM share, ``chattr +a``). No database: the bundle verifier reads these too.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from .chain import Checkpoint


def append(path: str | os.PathLike[str], cp: Checkpoint) -> None:
    """Add one line, opened in append mode and flushed to disk before returning."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(cp.to_dict(), sort_keys=True, separators=(",", ":")) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Optional[str | os.PathLike[str]]) -> tuple[list[Checkpoint], list[str]]:
    """The checkpoints in the log (none if it does not exist), and a problem per unreadable line."""
    if not path or not Path(path).exists():
        return [], []
    found: list[Checkpoint] = []
    problems: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                found.append(Checkpoint.from_dict(json.loads(line)))
            except (ValueError, AttributeError) as exc:
                problems.append(f"checkpoint log {path} line {n} is unreadable: {exc}")
    return found, problems

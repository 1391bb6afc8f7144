"""Evidence images on disk, content-addressed by SHA-256.

The path is derived only from the digest of the bytes, never from anything a
caller supplies, and a file is complete on disk (temp file, fsync, rename)
before the row that points to it can be committed.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from sqlalchemy.orm import Session

from ..lpr.images import sniff
from .errors import EvidenceWriteError, InvalidInput, NotFound
from .models import Evidence

_HEX64 = re.compile(r"[0-9a-f]{64}")
CONTENT_TYPES = {"image/jpeg": ".jpg", "image/png": ".png"}


@dataclass(frozen=True)
class StoredImage:
    sha256: str
    content_type: str
    size_bytes: int
    path: Path


class EvidenceStore:
    """Files under ``root/ab/cd/<sha256><ext>``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path_for(self, sha256: str, content_type: str) -> Path:
        if not _HEX64.fullmatch(sha256 or ""):
            raise InvalidInput("evidence id must be 64 lowercase hex characters")
        ext = CONTENT_TYPES.get(content_type)
        if ext is None:
            raise InvalidInput(f"unsupported evidence type {content_type!r}")
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}{ext}"

    def write(self, data: bytes, content_type: Optional[str] = None) -> StoredImage:
        """Store ``data`` atomically; identical bytes are stored once."""
        ctype = content_type or sniff(data)
        if ctype not in CONTENT_TYPES:
            raise InvalidInput("evidence must be a JPEG or PNG image")
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_for(digest, ctype)
        if path.exists() and path.stat().st_size == len(data):
            return StoredImage(digest, ctype, len(data), path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
                raise
        except OSError as exc:
            raise EvidenceWriteError(f"could not store evidence image: {exc.strerror or exc}") from exc
        return StoredImage(digest, ctype, len(data), path)

    def read(self, sha256: str, content_type: str) -> bytes:
        path = self.path_for(sha256, content_type)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise NotFound("evidence image not found") from exc

    def delete(self, sha256: str, content_type: str) -> bool:
        """Remove a file (retention only). Returns whether it existed."""
        path = self.path_for(sha256, content_type)
        try:
            path.unlink()
            return True
        except FileNotFoundError:
            return False


def save_image(
    session: Session,
    store: EvidenceStore,
    data: bytes,
    *,
    content_type: Optional[str] = None,
    width: Optional[int] = None,
    height: Optional[int] = None,
) -> Evidence:
    """Write the file first, then add (or reuse) its row in the caller's transaction."""
    stored = store.write(data, content_type)
    row = session.get(Evidence, stored.sha256)
    if row is None:
        row = Evidence(
            sha256=stored.sha256,
            content_type=stored.content_type,
            size_bytes=stored.size_bytes,
            width=width,
            height=height,
        )
        session.add(row)
    elif row.purged_at is not None:
        row.purged_at = None
    return row

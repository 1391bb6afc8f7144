"""Evidence images: content-addressed, atomic, never at a caller-chosen path."""
import os

import cv2
import numpy as np
import pytest

from parkinglot.records.errors import EvidenceWriteError, InvalidInput
from parkinglot.records.evidence import EvidenceStore, save_image
from parkinglot.records.models import Evidence


def jpeg_bytes(seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def test_write_is_content_addressed_and_deduplicated(tmp_path):
    store = EvidenceStore(tmp_path)
    data = jpeg_bytes()
    a = store.write(data)
    b = store.write(data)
    assert a.sha256 == b.sha256 and a.path == b.path
    assert a.path.read_bytes() == data
    assert a.path.is_relative_to(tmp_path)
    assert not [p for p in tmp_path.rglob("*.part")]


def test_non_images_and_bad_ids_are_refused(tmp_path):
    store = EvidenceStore(tmp_path)
    with pytest.raises(InvalidInput):
        store.write(b"GIF89a not allowed")
    for bad in ("../../etc/passwd", "A" * 64, "0" * 63, "0" * 64 + "/x"):
        with pytest.raises(InvalidInput):
            store.path_for(bad, "image/jpeg")


def test_failed_write_leaves_no_row_and_no_partial_file(db, session, tmp_path):
    root = tmp_path / "ro"
    root.mkdir()
    os.chmod(root, 0o500)
    store = EvidenceStore(root)
    try:
        if os.access(root, os.W_OK):  # running as root: simulate a full disk instead
            store = EvidenceStore(tmp_path / "file-not-dir")
            (tmp_path / "file-not-dir").write_text("occupied")
        with pytest.raises(EvidenceWriteError):
            save_image(session, store, jpeg_bytes())
        session.commit()
        assert session.query(Evidence).count() == 0
    finally:
        os.chmod(root, 0o700)


def test_row_is_added_after_file(db, session, tmp_path):
    store = EvidenceStore(tmp_path)
    row = save_image(session, store, jpeg_bytes(1), width=60, height=40)
    session.commit()
    assert store.read(row.sha256, row.content_type) == jpeg_bytes(1)
    assert session.get(Evidence, row.sha256).width == 60

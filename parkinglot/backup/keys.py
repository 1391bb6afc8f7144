"""The instance keys a backup's records depend on, and how they travel (or don't).

* ``AUDIT_PLATE_KEY`` (``instance/audit_plate_key``): the audit trail holds plates only as
  HMAC digests under this key. Restored with another key, old entries can no longer be
  matched to a plate and a plate's digest changes at the restore point.
* ``SECRET_KEY`` (``instance/secret_key``): signs console sessions; losing it only logs
  people out.

Every backup records both keys' fingerprints (safe to show). The keys themselves go into
the backup only encrypted (``keys.enc``: scrypt + AES-256-GCM under a passphrase the
operator supplies through ``PARKINGLOT_BACKUP_PASSPHRASE`` or a file, never the command
line). Without a passphrase they are left out and must be kept beside the backups by
other means. The audit *signing* key (Ed25519, for checkpoints) is never put into a
backup: whoever holds a backup must not be able to sign checkpoints.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from ..config import write_private_file
from .errors import BackupError

KEYS_FILE = "keys.enc"
# setting name -> file under the instance folder (config.ensure_instance_secret's names)
KEY_FILES = {"AUDIT_PLATE_KEY": "audit_plate_key", "SECRET_KEY": "secret_key"}
PASSPHRASE_ENV = "PARKINGLOT_BACKUP_PASSPHRASE"
_SCRYPT = {"n": 2 ** 15, "r": 8, "p": 1}


def fingerprint(key: str) -> str:
    """A short public identifier of a key (SHA-256 of a labelled copy, 16 hex digits)."""
    return hashlib.sha256(b"parkinglot-key-fingerprint\x00" + key.encode("utf-8")).hexdigest()[:16]


def current(settings: Mapping[str, Any]) -> dict[str, str]:
    """The instance's keys: from the settings, else from their instance files (if any exist yet)."""
    out = {}
    for name, filename in KEY_FILES.items():
        value = str(settings.get(name) or "")
        if not value:
            path = Path(settings["INSTANCE_PATH"]) / filename
            value = path.read_text().strip() if path.is_file() else ""
        if value:
            out[name] = value
    return out


def fingerprints(settings: Mapping[str, Any]) -> dict[str, str]:
    return {name: fingerprint(value) for name, value in current(settings).items()}


def read_passphrase(passphrase_file: Optional[Path]) -> Optional[str]:
    """The backup passphrase from a file (first line) or ``$PARKINGLOT_BACKUP_PASSPHRASE``; None if neither."""
    if passphrase_file is not None:
        try:
            text = Path(passphrase_file).read_text().splitlines()
        except OSError as exc:
            raise BackupError(f"cannot read the passphrase file {passphrase_file}: {exc.strerror or exc}") from None
        value = text[0] if text else ""
    else:
        value = os.environ.get(PASSPHRASE_ENV, "")
    if not value:
        return None
    if len(value) < 12:
        raise BackupError("the backup passphrase must be at least 12 characters")
    return value


def _kdf(passphrase: str, salt: bytes, params: Mapping[str, int]) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=int(params["n"]), r=int(params["r"]), p=int(params["p"])).derive(
        passphrase.encode("utf-8"))


def encrypt(keys: Mapping[str, str], passphrase: str) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt, nonce = os.urandom(16), os.urandom(12)
    plain = json.dumps(dict(keys), sort_keys=True).encode("utf-8")
    sealed = AESGCM(_kdf(passphrase, salt, _SCRYPT)).encrypt(nonce, plain, b"parkinglot-backup-keys-v1")
    doc = {"format": 1, "kdf": "scrypt", **_SCRYPT, "cipher": "AES-256-GCM",
           "salt": base64.b64encode(salt).decode(), "nonce": base64.b64encode(nonce).decode(),
           "ciphertext": base64.b64encode(sealed).decode()}
    return (json.dumps(doc, indent=2) + "\n").encode()


def decrypt(blob: bytes, passphrase: str) -> dict[str, str]:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        doc = json.loads(blob)
        salt, nonce = base64.b64decode(doc["salt"]), base64.b64decode(doc["nonce"])
        sealed = base64.b64decode(doc["ciphertext"])
        key = _kdf(passphrase, salt, doc)
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{KEYS_FILE} is not a parkinglot key file: {exc}") from None
    try:
        plain = AESGCM(key).decrypt(nonce, sealed, b"parkinglot-backup-keys-v1")
    except InvalidTag:
        raise BackupError(f"wrong passphrase for {KEYS_FILE}") from None
    return json.loads(plain)


@dataclass(frozen=True)
class KeyPlan:
    """What a restore does about keys: install these (setting -> value), or nothing."""

    install: dict[str, str]
    mismatch_ignored: bool
    note: str


def _file_backed(settings: Mapping[str, Any], name: str) -> bool:
    """Whether the active key came from the instance file (so a restore may replace that file)."""
    value = str(settings.get(name) or "")
    if not value:
        return True  # nothing configured: the file is (or will be) the key
    path = Path(settings["INSTANCE_PATH"]) / KEY_FILES[name]
    try:
        return path.read_text().strip() == value
    except OSError:
        return False


def plan(settings: Mapping[str, Any], manifest: Mapping[str, Any], backup_dir: Path, *,
         passphrase: Optional[str], ignore_mismatch: bool) -> KeyPlan:
    """Compare the backup's audit plate key with this instance's; decide, or refuse with the way out."""
    recorded = (manifest.get("keys") or {}).get("fingerprints") or {}
    wanted = recorded.get("AUDIT_PLATE_KEY")
    have = fingerprint(str(settings["AUDIT_PLATE_KEY"]))
    carried = (manifest.get("keys") or {}).get("file") == KEYS_FILE
    if wanted is None:
        return KeyPlan({}, False, "the backup records no key fingerprint (written by an older version): "
                                  "make sure instance/audit_plate_key is the one it was made with")
    if carried and passphrase:
        keys = decrypt((backup_dir / KEYS_FILE).read_bytes(), passphrase)
        if fingerprint(keys.get("AUDIT_PLATE_KEY", "")) != wanted:
            raise BackupError(f"{KEYS_FILE} does not hold the key the manifest names")
        install = {name: value for name, value in keys.items()
                   if name in KEY_FILES and fingerprint(value) != fingerprint(current(settings).get(name, ""))}
        refused = [n for n in install if not _file_backed(settings, n)]
        if refused:
            raise BackupError(
                f"{', '.join(refused)} is set in this instance's configuration (not in its instance file), so the "
                f"backup's key cannot be installed; set it to the backup's key (fingerprint {wanted}) and run again")
        return KeyPlan(install, False, "keys restored from keys.enc" if install else "keys match")
    if wanted == have:
        return KeyPlan({}, False, "audit plate key matches")
    if ignore_mismatch:
        return KeyPlan({}, True, f"audit plate key MISMATCH ignored (backup {wanted}, instance {have}): "
                                 "audit entries from before the restore can no longer be matched to a plate")
    how = (f"give the backup passphrase (${PASSPHRASE_ENV} or --passphrase-file) to restore the keys from "
           f"{KEYS_FILE}, or " if carried else "")
    raise BackupError(
        f"the backup was made with audit plate key {wanted}, this instance has {have}. Put the original key in "
        f"{Path(settings['INSTANCE_PATH']) / KEY_FILES['AUDIT_PLATE_KEY']} (or AUDIT_PLATE_KEY), {how}or pass "
        "--ignore-key-mismatch to restore anyway (old audit entries then no longer match their plates)")


def install(settings: dict[str, Any], keys: Mapping[str, str]) -> dict[str, Optional[bytes]]:
    """Write ``keys`` into the instance files (0600, atomically); returns the previous contents for undo."""
    previous: dict[str, Optional[bytes]] = {}
    instance = Path(settings["INSTANCE_PATH"])
    instance.mkdir(parents=True, exist_ok=True)
    for name, value in keys.items():
        path = instance / KEY_FILES[name]
        previous[name] = path.read_bytes() if path.exists() else None
        write_private_file(path, value.encode("utf-8"))
        settings[name] = value
    return previous


def undo_install(settings: dict[str, Any], previous: Mapping[str, Optional[bytes]]) -> None:
    instance = Path(settings["INSTANCE_PATH"])
    for name, content in previous.items():
        path = instance / KEY_FILES[name]
        if content is None:
            path.unlink(missing_ok=True)
        else:
            write_private_file(path, content)
            settings[name] = content.decode("utf-8").strip()



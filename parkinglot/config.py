"""Settings: defaults, then the instance file or the environment, then test overrides.

One place decides where the database and the evidence live, so the CLI, gunicorn
and the tests can never disagree about it.
"""
from __future__ import annotations

import os
import runpy
import tempfile
from pathlib import Path
from typing import Any, Mapping

ENV_PREFIX = "PARKINGLOT_"

DEFAULTS: dict[str, Any] = {
    # Database: empty means sqlite:///<instance>/parkinglot.db
    "DATABASE_URL": "",
    "EVIDENCE_DIR": "",  # empty means <instance>/evidence
    "SECRET_KEY": "",  # empty means a key generated once into <instance>/secret_key
    "LPR_REGION": "us",
    "LPR_READER": "auto",  # auto (tuned model if present, else stock) | stock | tuned
    "LPR_MAX_FRAMES": 5,
    "LPR_MAX_PIXELS": 40_000_000,
    "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
    "CAPTURE_SKEW_FUTURE_S": 300,  # capture times further ahead than this are refused
    "CAPTURE_SKEW_PAST_S": 7 * 24 * 3600,
    # A controller's retry of an event id gets the stored reply only within this many seconds
    # of the first request; later, the same id is a new request under a used id (409).
    "EVENT_REPLAY_WINDOW_S": 600,
    "REPORT_MAX_DAYS": 400,
    "WEBHOOK_URL": "",
    "WEBHOOK_TIMEOUT_S": 2.0,
    "LOGIN_MAX_FAILURES": 5,
    "LOGIN_LOCKOUT_S": 300,
    "API_KEY_MAX_FAILURES": 20,
    "API_KEY_LOCKOUT_S": 60,
    "SESSION_COOKIE_SECURE": False,  # set True behind TLS; the demo serves plain HTTP on loopback
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "PERMANENT_SESSION_LIFETIME": 12 * 3600,
    "WARM_RECOGNIZER": True,
    "RETENTION_DAYS": 90,
    "AUDIT_PLATE_KEY": "",  # empty means a key generated once into <instance>/audit_plate_key
    # Signed checkpoints of the audit trail (docs/reliability.md, "Threat model of the audit trail")
    "AUDIT_SIGNING_KEY_FILE": "",  # empty means <instance>/audit_signing_key.pem (Ed25519, 0600, made on first use)
    "AUDIT_CHECKPOINT_LOG": "",  # empty means <instance>/audit-checkpoints.log; keep it where the DBA cannot write
    "AUDIT_CHECKPOINT_EVERY": 1000,  # events between automatic checkpoints
    "AUDIT_CHECKPOINT_MINUTES": 60,  # or this long since the last one, at the next audited commit
    "AUDIT_WITNESS_URL": "",  # optional webhook that receives every checkpoint (JSON POST)
    "AUDIT_PREVIOUS_PUBLIC_KEYS": "",  # PEM files of retired signing keys, separated by ':' (key rotation)
    "AUDIT_WITNESS_SYSLOG": "",  # optional syslog target: /dev/log or host:port (UDP)
}

_BOOL_TRUE = {"1", "true", "yes", "on"}


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it and says what was wrong."""


def _coerce(value: str, like: Any, name: str = "") -> Any:
    if isinstance(like, bool):
        return value.strip().lower() in _BOOL_TRUE
    try:
        if isinstance(like, int):
            return int(value)
        if isinstance(like, float):
            return float(value)
    except ValueError:
        kind = "a whole number" if isinstance(like, int) else "a number"
        raise ConfigError(f"{name or 'a setting'} must be {kind}, not {value!r}") from None
    return value


def default_instance_path() -> Path:
    """The instance folder: $PARKINGLOT_INSTANCE_PATH, else ./instance next to the checkout."""
    env = os.environ.get(ENV_PREFIX + "INSTANCE_PATH")
    if env:
        return Path(env).resolve()
    return (Path(__file__).resolve().parent.parent / "instance").resolve()


def load_settings(
    instance_path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Merge defaults, ``<instance>/config.py``, ``PARKINGLOT_*`` variables and overrides."""
    environ = os.environ if environ is None else environ
    instance = Path(instance_path) if instance_path else default_instance_path()
    settings: dict[str, Any] = dict(DEFAULTS)
    cfg_file = instance / "config.py"
    if cfg_file.is_file():
        values = runpy.run_path(str(cfg_file))
        settings.update({k: v for k, v in values.items() if k.isupper()})
    for key, raw in environ.items():
        if key.startswith(ENV_PREFIX) and key != ENV_PREFIX + "INSTANCE_PATH":
            name = key[len(ENV_PREFIX):]
            settings[name] = _coerce(raw, DEFAULTS.get(name, ""), key)
    if overrides:
        settings.update(overrides)
    settings["INSTANCE_PATH"] = str(instance)
    if not settings["DATABASE_URL"]:
        settings["DATABASE_URL"] = f"sqlite:///{instance / 'parkinglot.db'}"
    if not settings["EVIDENCE_DIR"]:
        settings["EVIDENCE_DIR"] = str(instance / "evidence")
    if not settings["AUDIT_SIGNING_KEY_FILE"]:
        settings["AUDIT_SIGNING_KEY_FILE"] = str(instance / "audit_signing_key.pem")
    if not settings["AUDIT_CHECKPOINT_LOG"]:
        settings["AUDIT_CHECKPOINT_LOG"] = str(instance / "audit-checkpoints.log")
    return settings


def _private_temp(path: Path, content: bytes) -> str:
    """A temporary file beside ``path`` holding ``content``: 0600, and on disk before it is linked or renamed."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def create_private_file(path: Path, content: bytes) -> None:
    """Write ``content`` to a new file readable by the owner only (0600), complete before it appears.

    Never replaces a file that exists: when two processes start at once, the first one's
    key wins and both use it.
    """
    tmp = _private_temp(path, content)
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)


def write_private_file(path: Path | str, content: bytes) -> Path:
    """Replace ``path`` atomically with ``content``, readable by its owner only (0600)."""
    path = Path(path)
    tmp = _private_temp(path, content)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def make_private_dir(path: Path | str) -> Path:
    """Create ``path`` (and missing parents) if it does not exist; the folder itself is made
    readable by its owner only (0700), whatever the umask. An existing folder is left alone.

    The instance folder holds the SQLite database, keys and the demo logins.
    """
    path = Path(path)
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    return path


def write_private_text(path: Path | str, text: str) -> Path:
    """Replace ``path`` atomically with ``text``, readable by its owner only (0600)."""
    return write_private_file(path, text.encode("utf-8"))


def ensure_instance_secret(settings: dict[str, Any], name: str, filename: str) -> str:
    """The configured secret ``name``, else a random one created once in ``<instance>/<filename>``."""
    if settings.get(name):
        return str(settings[name])
    instance = make_private_dir(settings["INSTANCE_PATH"])
    key_file = instance / filename
    if not key_file.exists():
        import secrets

        create_private_file(key_file, secrets.token_hex(32).encode("ascii"))
    settings[name] = key_file.read_text().strip()
    return settings[name]


def ensure_secret_key(settings: dict[str, Any]) -> str:
    """Flask's session signing key."""
    return ensure_instance_secret(settings, "SECRET_KEY", "secret_key")

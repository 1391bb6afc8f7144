"""Running ``pg_dump`` / ``pg_restore`` without putting the password where others can read it.

The command line of a process is world-readable (``ps``, ``/proc/*/cmdline``), so
the tools get a libpq connection string *without* the password, and the password
through a temporary password file (mode 0600, deleted afterwards) named by
``PGPASSFILE``. A failing tool's own message is shown, never a Python traceback,
and the password is scrubbed from anything we print.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

from sqlalchemy.engine import URL, make_url

from .errors import BackupError

# libpq keywords we pass through from the URL's query string (the rest are driver options)
_LIBPQ_KEYS = {"sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl", "sslpassword", "connect_timeout",
               "options", "application_name", "target_session_attrs", "gssencmode", "host", "port", "service"}


def find_tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise BackupError(f"{name} not found; install the PostgreSQL client tools (e.g. apt install postgresql-client)")


def _quote(value: object) -> str:
    text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def password_of(url: URL) -> Optional[str]:
    if url.password:
        return str(url.password)
    q = url.query.get("password")
    return (q[-1] if isinstance(q, tuple) else q) or None


def conninfo(url: URL | str, database: Optional[str] = None) -> str:
    """A libpq ``key=value`` connection string for ``url`` with no password in it."""
    url = make_url(url) if isinstance(url, str) else url
    parts: dict[str, object] = {}
    for key, value in url.query.items():
        if key in _LIBPQ_KEYS:
            parts[key] = value[-1] if isinstance(value, tuple) else value
    if url.host:
        parts["host"] = url.host
    if url.port:
        parts["port"] = url.port
    if url.username:
        parts["user"] = url.username
    parts["dbname"] = database or url.database or ""
    return " ".join(f"{k}={_quote(v)}" for k, v in parts.items() if v not in (None, ""))


def _passfile_line(password: str) -> str:
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    return f"*:*:*:*:{escaped}\n"


@contextmanager
def libpq_env(url: URL) -> Iterator[dict[str, str]]:
    """The environment for a client tool: the password in a private, temporary PGPASSFILE."""
    env = dict(os.environ)
    password = password_of(url)
    if not password:
        yield env
        return
    env.pop("PGPASSWORD", None)  # it would win over the file; the URL's password is the one meant
    folder = tempfile.mkdtemp(prefix="parkinglot-pg-")
    path = Path(folder) / "pgpass"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(_passfile_line(password))
        env["PGPASSFILE"] = str(path)
        yield env
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def scrub(text: str, url: URL) -> str:
    password = password_of(url)
    return text.replace(password, "***") if password else text


def run(tool: str, args: Sequence[str], url: URL) -> str:
    """Run a PostgreSQL client tool for ``url``; BackupError with the tool's own message on failure."""
    exe = find_tool(tool)
    with libpq_env(url) as env:
        try:
            proc = subprocess.run([exe, *args], env=env, capture_output=True, text=True)
        except OSError as exc:
            raise BackupError(f"could not run {tool}: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        message = scrub((proc.stderr or proc.stdout or "").strip(), url)
        lines = message.splitlines()
        if len(lines) > 12:
            lines = lines[:4] + [f"... ({len(lines) - 8} more lines)"] + lines[-4:]
        raise BackupError(f"{tool} failed (exit {proc.returncode}): " + ("\n".join(lines) or "no message"))
    return proc.stdout

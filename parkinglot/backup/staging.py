"""Staging copies: a restore is built and checked beside the target, then swapped in whole.

SQLite: a temporary file in the target's folder, swapped in with a rename. The previous
file (with its ``-wal`` / ``-shm``, so nothing uncheckpointed is lost, even if it is
damaged) is renamed aside first and renamed back if anything after fails.

PostgreSQL: a scratch database on the same server, loaded by ``pg_restore`` in a single
transaction (a truncated dump leaves nothing half-loaded), swapped in with two
``ALTER DATABASE .. RENAME`` (the previous database is kept under a new name). The
role needs CREATEDB and must own the target database.
"""
from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from ..config import create_private_file, make_private_dir
from . import census, pgtools
from .errors import BackupError

_SIDE_FILES = ("-wal", "-shm", "-journal")


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _move_with_sidecars(src: Path, dst: Path) -> None:
    os.replace(src, dst)
    for suffix in _SIDE_FILES:
        side = Path(str(src) + suffix)
        if side.exists():
            os.replace(side, Path(str(dst) + suffix))


def _unlink_with_sidecars(path: Path) -> None:
    for p in [path, *(Path(str(path) + s) for s in _SIDE_FILES)]:
        p.unlink(missing_ok=True)


class SqliteStage:
    """A staging file next to the SQLite target."""

    def __init__(self, target: Path) -> None:
        self.target = Path(target).resolve()
        self.file = self.target.parent / f".{self.target.name}.restoring-{secrets.token_hex(4)}"
        self.previous: Optional[Path] = None
        self.target_existed = False

    @property
    def url(self) -> str:
        return f"sqlite:///{self.file}"

    def describe_target(self) -> str:
        return str(self.target)

    def census_of_target(self) -> Optional[census.Census]:
        """What the target holds now; None if there is no target file. Raises if it is unreadable."""
        if not self.target.exists():
            return None
        engine = create_engine(f"sqlite:///file:{self.target}?mode=ro&uri=true")
        try:
            with engine.connect() as conn:
                return census.take(conn)
        finally:
            engine.dispose()

    def load(self, dump: Path) -> None:
        make_private_dir(self.target.parent)
        create_private_file(self.file, b"")  # as the database the app creates: its owner's only, from the start
        shutil.copyfile(dump, self.file)  # (copyfile keeps the mode of a file that exists)

    def integrity(self) -> None:
        con = sqlite3.connect(self.file)
        try:
            problems = [r[0] for r in con.execute("PRAGMA integrity_check").fetchall()]
            if problems != ["ok"]:
                raise BackupError("SQLite integrity check failed: " + "; ".join(problems[:5]))
            orphans = con.execute("PRAGMA foreign_key_check").fetchmany(5)
            if orphans:
                raise BackupError(f"foreign keys broken, e.g. {orphans[0][0]} row {orphans[0][1]} "
                                  f"points to a missing {orphans[0][2]}")
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"SQLite cannot read the backup's database: {exc}") from None
        finally:
            con.close()

    def _settle(self) -> None:
        """Fold the staging file's WAL into it, so the file alone is the database."""
        con = sqlite3.connect(self.file)
        try:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            con.execute("PRAGMA journal_mode=DELETE")
        finally:
            con.close()
        for suffix in _SIDE_FILES:
            Path(str(self.file) + suffix).unlink(missing_ok=True)

    def _refuse_if_in_use(self) -> None:
        try:
            con = sqlite3.connect(self.target, timeout=1)
            try:
                busy = con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            finally:
                con.close()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise BackupError(f"{self.target} is in use (is the server still running?); stop it first") from None
            return  # a damaged target is what a restore is for
        except sqlite3.DatabaseError:
            return
        if busy and busy[0]:
            raise BackupError(f"{self.target} is in use (is the server still running?); stop it first")

    def swap(self) -> None:
        self._settle()
        self.target_existed = self.target.exists()
        if self.target_existed:
            self._refuse_if_in_use()
            self.previous = self.target.with_name(f"{self.target.name}.before-restore-{_stamp()}")
            _move_with_sidecars(self.target, self.previous)
        else:
            _unlink_with_sidecars(self.target)  # stray -wal/-shm of a deleted file would be applied to ours
        try:
            os.replace(self.file, self.target)
        except BaseException:
            self.undo_swap()
            raise

    def undo_swap(self) -> None:
        if self.target.exists() and not self.file.exists():
            _move_with_sidecars(self.target, self.file)  # keep the restored copy out of the way, then drop it
        _unlink_with_sidecars(self.file)
        if self.previous is not None and self.previous.exists():
            _move_with_sidecars(self.previous, self.target)
            self.previous = None

    def finish(self, keep_previous: bool) -> Optional[str]:
        if self.previous is None:
            return None
        if keep_previous:
            return str(self.previous)
        _unlink_with_sidecars(self.previous)
        return None

    def discard(self) -> None:
        _unlink_with_sidecars(self.file)

    def close(self) -> None:
        """Nothing held open (the PostgreSQL stage holds a maintenance connection)."""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgresStage:
    """A scratch database next to the PostgreSQL target, on the same server."""

    def __init__(self, target_url: str) -> None:
        url = make_url(target_url)
        self.target_url: URL = url.set(drivername="postgresql+psycopg") if url.drivername == "postgresql" else url
        self.target = self.target_url.database or ""
        if not self.target:
            raise BackupError("the PostgreSQL URL names no database")
        self.name = f"{self.target[:40]}_restore_{secrets.token_hex(4)}"
        self.previous: Optional[str] = None
        self.created = False
        self._admin = None

    @property
    def url(self) -> str:
        return self.target_url.set(database=self.name).render_as_string(hide_password=False)

    def describe_target(self) -> str:
        return f"database {self.target} on {self.target_url.host or 'localhost'}"

    def admin(self):
        """An autocommit connection to a maintenance database (never the target itself)."""
        if self._admin is None:
            last: Exception | None = None
            for db in [d for d in ("postgres", "template1") if d != self.target]:  # never the one we rename
                engine = create_engine(self.target_url.set(database=db), isolation_level="AUTOCOMMIT",
                                       connect_args={"connect_timeout": 5})
                try:
                    with engine.connect() as conn:
                        conn.execute(text("SELECT 1"))
                    self._admin = engine
                    break
                except SQLAlchemyError as exc:
                    engine.dispose()
                    last = exc
            if self._admin is None:
                raise BackupError("cannot reach the PostgreSQL server's maintenance database: "
                                  + pgtools.scrub(str(getattr(last, "orig", last)).strip(), self.target_url))
        return self._admin

    def _exists(self, name: str) -> bool:
        with self.admin().connect() as conn:
            return conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is not None

    def _other_sessions(self, name: str) -> int:
        with self.admin().connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = :n "
                                         "AND pid <> pg_backend_pid()"), {"n": name}).scalar_one())

    def census_of_target(self) -> Optional[census.Census]:
        if not self._exists(self.target):
            return None
        engine = create_engine(self.target_url, connect_args={"connect_timeout": 5})
        try:
            with engine.connect() as conn:
                return census.take(conn)
        finally:
            engine.dispose()

    def _sql(self, statement: str) -> None:
        try:
            with self.admin().connect() as conn:
                conn.execute(text(statement))
        except SQLAlchemyError as exc:
            raise BackupError(pgtools.scrub(str(getattr(exc, "orig", exc)).strip(), self.target_url)) from None

    def load(self, dump: Path) -> None:
        self._sql(f"CREATE DATABASE {_ident(self.name)} TEMPLATE template0")
        self.created = True
        pgtools.run("pg_restore", ["--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges",
                                   f"--dbname={pgtools.conninfo(self.target_url, self.name)}", str(dump)],
                    self.target_url)

    def integrity(self) -> None:
        """pg_restore ran in one transaction; the census comparison that follows checks the content."""

    def swap(self) -> None:
        if self._exists(self.target):
            others = self._other_sessions(self.target)
            if others:
                raise BackupError(f"{others} other session(s) are connected to {self.target} (is the server still "
                                  "running?); stop them first")
            self.previous = f"{self.target[:36]}_before_restore_{_stamp()}".lower()
            self._sql(f"ALTER DATABASE {_ident(self.target)} RENAME TO {_ident(self.previous)}")
        try:
            self._sql(f"ALTER DATABASE {_ident(self.name)} RENAME TO {_ident(self.target)}")
        except BaseException:
            if self.previous is not None:
                self._sql(f"ALTER DATABASE {_ident(self.previous)} RENAME TO {_ident(self.target)}")
                self.previous = None
            raise
        self.created = False

    def undo_swap(self) -> None:
        if self._exists(self.target):
            self._sql(f"ALTER DATABASE {_ident(self.target)} RENAME TO {_ident(self.name)}")
            self.created = True
        if self.previous is not None:
            self._sql(f"ALTER DATABASE {_ident(self.previous)} RENAME TO {_ident(self.target)}")
            self.previous = None
        self.discard()

    def finish(self, keep_previous: bool) -> Optional[str]:
        try:
            if self.previous is None:
                return None
            if keep_previous:
                return f"database {self.previous}"
            self._sql(f"DROP DATABASE IF EXISTS {_ident(self.previous)} WITH (FORCE)")
            return None
        finally:
            self.close()

    def discard(self) -> None:
        if self.created:
            self._sql(f"DROP DATABASE IF EXISTS {_ident(self.name)} WITH (FORCE)")
            self.created = False
        self.close()

    def close(self) -> None:
        if self._admin is not None:
            self._admin.dispose()
            self._admin = None

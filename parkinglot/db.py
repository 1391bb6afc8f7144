"""Engine and session factory. Nothing is bound at import time: the app factory,
the CLI and the tests each build their own from settings.

SQLite is tuned for several gunicorn workers sharing one file: WAL, a busy
timeout, foreign keys on, and ``BEGIN IMMEDIATE`` for transactions that may
write, so two writers queue instead of failing on a stale snapshot. Read-only
work (reports, console pages) uses a deferred transaction and never blocks lanes.

PostgreSQL connections are checked before use only when they have sat idle in the
pool (``_ping_when_idle``): under load a lane event reuses a connection returned
milliseconds earlier, and a ping per request was one round trip in twelve. A
connection that dies while in use is caught by SQLAlchemy's disconnect detection
(the pool is invalidated) and the lane path retries once on a fresh connection.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from .config import create_private_file, make_private_dir

READ_ONLY = "parkinglot_read_only"
IDLE_PING_S = 1.0  # a pooled connection idle longer than this is pinged before use
_idle_clock = time.monotonic  # the clock idleness is measured by (tests move it on instead of sleeping)


def _setup_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def _ping_when_idle(engine: Engine, idle_s: float) -> None:
    """``pool_pre_ping``, but only for connections that have been idle for ``idle_s``.

    A failed ping raises ``DisconnectionError`` in the checkout event, which makes the
    pool discard that connection and connect afresh (SQLAlchemy's documented
    pessimistic-handling hook); a database that is down still fails the checkout.
    """
    @event.listens_for(engine, "checkin")
    def _stamp(_dbapi_conn, record) -> None:
        record.info["idle_since"] = _idle_clock()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn, record, _proxy) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or _idle_clock() - idle_since < idle_s:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as e:
            raise exc.DisconnectionError(f"pooled connection failed its ping: {e}") from e
        if not alive:
            raise exc.DisconnectionError("pooled connection failed its ping")


# libpq's words for a connection whose protocol state can no longer be trusted: seen when the
# server ends the backend (pg_terminate_backend, a restart) while a query is being sent, which
# SQLAlchemy's own disconnect list does not name
_OUT_OF_SYNC = ("another command is already in progress",)


def is_lost_connection(original: BaseException, dbapi_connection: Any = None) -> bool:
    """Whether a PostgreSQL error means the connection itself is gone or unusable (so the pool
    must drop it and the lane path may retry once), beyond what SQLAlchemy already detects."""
    if getattr(dbapi_connection, "broken", False) or getattr(dbapi_connection, "closed", False):
        return True
    return type(original).__name__ == "OperationalError" and any(m in str(original) for m in _OUT_OF_SYNC)


def _detect_lost_connections(engine: Engine) -> None:
    @event.listens_for(engine, "handle_error")
    def _classify(context) -> None:
        if context.is_disconnect or context.original_exception is None:
            return
        try:
            raw = context.connection.connection.dbapi_connection if context.connection is not None else None
        except Exception:  # an invalidated connection has no DBAPI connection left to ask
            raw = None
        if is_lost_connection(context.original_exception, raw):
            context.is_disconnect = True


def make_engine(url: str, *, echo: bool = False, busy_timeout_ms: int = 10_000) -> Engine:
    """Create the engine for ``url`` with the per-dialect settings above."""
    parsed = make_url(url)
    kwargs: dict = {"echo": echo, "future": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            # created here, before SQLite does, so the file is the owner's only (0600); SQLite gives
            # the -wal and -shm files it creates next to it the same permissions
            make_private_dir(Path(parsed.database).parent)
            if not Path(parsed.database).exists():
                create_private_file(Path(parsed.database), b"")  # an empty file is an empty database
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": busy_timeout_ms / 1000}
        engine = create_engine(url, **kwargs)
        _setup_sqlite(engine, busy_timeout_ms)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            url = str(parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
        kwargs.update(pool_size=5, max_overflow=10, pool_timeout=5)
        kwargs["connect_args"] = {"connect_timeout": 5}
        engine = create_engine(url, **kwargs)
        _ping_when_idle(engine, IDLE_PING_S)
        _detect_lost_connections(engine)
        return engine
    return create_engine(url, **kwargs)


def make_session_factory(engine: Engine, *, info: Optional[Mapping[str, Any]] = None) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (views render after it).

    ``info`` is copied into every session's ``Session.info``: the instance's audit plate
    key travels there (``audit.session_info``), so each instance digests under its own.
    """
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True, info=dict(info or {}))


def read_only_engine(engine: Engine) -> Engine:
    """A view of ``engine`` whose transactions begin deferred on SQLite."""
    return engine.execution_options(**{READ_ONLY: True})


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work outside a request (CLI, jobs): commit on success, else roll back."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_sqlite(engine_or_session) -> bool:
    bind = getattr(engine_or_session, "bind", engine_or_session)
    return bind.dialect.name == "sqlite"

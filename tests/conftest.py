"""Shared fixtures. Database tests run on SQLite and on PostgreSQL.

PostgreSQL: $PARKINGLOT_TEST_PG_URL or postgresql://postgres@127.0.0.1:5432/test is used
only to create (and finally drop) a database of this run's own. If the server is
unreachable the PostgreSQL half is skipped with the reason, unless CI=true, in
which case it fails.

The same holds for every prerequisite a test needs from the machine (PostgreSQL, its
client tools, fonts, the shipped model, chromium): ``missing_prerequisite`` skips with
the reason on a developer's machine and fails under CI=true, so CI never passes by
skipping.
"""
from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NoReturn

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from parkinglot.db import make_engine, make_session_factory
from parkinglot.records import migrate
from parkinglot.records import audit
from parkinglot.records.audit import GENESIS_HASH
from parkinglot.records.models import Base

PG_ADMIN_URL = os.environ.get("PARKINGLOT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_prerequisite(reason: str, *, needed_for: str) -> NoReturn:
    """Skip (with ``reason``) a test whose prerequisite this machine lacks; under CI=true, fail."""
    if IN_CI:
        pytest.fail(f"CI=true requires {needed_for}: {reason}")
    pytest.skip(reason)
BACKENDS = ["sqlite", "postgresql"]
# the audit plate key of the tests' own sessions, and of the ``app`` fixture's, so that the
# digests a test computes match the ones its app wrote
TEST_PLATE_KEY = b"parkinglot-test-audit-plate-key"
# For tests of PostgreSQL behaviour (a server that ends connections, ...): the ``db`` fixture,
# and everything built on it, on PostgreSQL alone; like every PostgreSQL half it is skipped
# without a server, and fails under CI=true.
postgresql_only = pytest.mark.parametrize("db", ["postgresql"], indirect=True)


def keyed_sessions(engine: Engine) -> sessionmaker[Session]:
    """A session factory as an instance has one: its sessions carry the tests' audit plate key."""
    return make_session_factory(engine, info=audit.session_info(TEST_PLATE_KEY))


@dataclass
class Database:
    backend: str
    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    def session(self) -> Session:
        return self.sessions()


def _pg_unavailable_reason() -> str | None:
    try:
        eng = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with eng.connect() as conn:
            conn.execute(text("SELECT 1"))
        eng.dispose()
        return None
    except Exception as exc:  # noqa: BLE001
        return f"PostgreSQL not reachable at {make_url(PG_ADMIN_URL).render_as_string()}: {type(exc).__name__}: {exc}".splitlines()[0]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


@contextmanager
def _scratch_pg_database(upgrade: bool = True) -> Iterator[str]:
    """A PostgreSQL database of its own (dropped afterwards); fails under CI=true without PostgreSQL."""
    reason = _pg_unavailable_reason()
    if reason:
        missing_prerequisite(reason, needed_for="the PostgreSQL run")
    name = f"parkinglot_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    if upgrade:
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    with _scratch_pg_database() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def empty_database(request, tmp_path) -> Iterator[str]:
    """The URL of a database with no schema, on each backend: for migration tests."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
    else:
        with _scratch_pg_database(upgrade=False) as url:
            yield url


@pytest.fixture(scope="session")
def pg_engine(pg_database) -> Iterator[Engine]:
    engine = make_engine(pg_database)
    yield engine
    engine.dispose()


def _reset_pg(engine: Engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables if t.name != "audit_head")
    with engine.begin() as conn:
        # the trail refuses TRUNCATE and a head moving back; a replica session fires no triggers
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(text("UPDATE audit_head SET last_id = 0, last_hash = :h WHERE id = 1"), {"h": GENESIS_HASH})


@pytest.fixture(params=BACKENDS)
def db(request, tmp_path) -> Iterator[Database]:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
        engine = make_engine(url)
        yield Database("sqlite", url, engine, keyed_sessions(engine))
        engine.dispose()
    else:
        engine = request.getfixturevalue("pg_engine")
        _reset_pg(engine)
        url = request.getfixturevalue("pg_database")
        yield Database("postgresql", url, engine, keyed_sessions(engine))


@pytest.fixture
def session(db) -> Iterator[Session]:
    s = db.session()
    yield s
    s.rollback()
    s.close()


# --- the web app -------------------------------------------------------------------------

class FakePipeline:
    """Stands in for the LPR pipeline in API tests: returns whatever the test sets."""

    def __init__(self, text: str = "AB123", confidence: float = 0.95) -> None:
        self.text = text
        self.confidence = confidence
        self.calls = 0

    def recognize(self, frames, region="us"):
        from parkinglot.lpr.pipeline import PlateResult

        self.calls += 1
        self.regions = (region,) if isinstance(region, str) else tuple(region)
        region = self.regions[0]
        box = ((10.0, 10.0), (110.0, 10.0), (110.0, 40.0), (10.0, 40.0))
        if not self.text:
            return PlateResult("", 0.0, None, (), {"total_ms": 1.0}, "no_plate_found", region=region)
        return PlateResult(self.text, self.confidence, box, (("A8123", 0.2),), {"total_ms": 1.0}, None, 0,
                           self.text, region, (box,))


@pytest.fixture
def fake_pipeline() -> FakePipeline:
    return FakePipeline()


@pytest.fixture
def app(db, tmp_path, fake_pipeline):
    from parkinglot.web import create_app

    application = create_app({
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": db.url,
        "EVIDENCE_DIR": str(tmp_path / "evidence"),
        "SECRET_KEY": "test-secret",
        "AUDIT_PLATE_KEY": TEST_PLATE_KEY.decode(),
        "TESTING": True,
        "LPR_PIPELINE": fake_pipeline,
    })
    yield application
    dispatcher = application.extensions.get("parkinglot_dispatcher")
    if dispatcher is not None:
        dispatcher.drain()
    application.extensions["parkinglot"].close()


@pytest.fixture
def client(app):
    return app.test_client()

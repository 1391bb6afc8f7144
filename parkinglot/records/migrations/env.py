"""Alembic environment: the engine comes from the caller (``records.migrate``)."""
from __future__ import annotations

from alembic import context

from parkinglot.records.models import Base
from parkinglot.records.types import UTCDateTime

target_metadata = Base.metadata


def render_item(type_, obj, autogen_context):
    """Render project column types as plain SQLAlchemy types, so migrations never import models."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_online() -> None:
    engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds a table (copy, drop, rename). With foreign keys enforced, dropping a
            # table that other rows point to fails, so they are off while migrating (SQLite ignores
            # the pragma inside a transaction: set it before) and every reference is checked after.
            # the pragma goes to the driver's connection: SQLAlchemy would wrap it in BEGIN IMMEDIATE
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=sqlite,
            render_item=render_item,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
        if sqlite:
            raw = connection.connection.driver_connection
            broken = raw.execute("PRAGMA foreign_key_check").fetchall()
            raw.execute("PRAGMA foreign_keys=ON")
            if broken:
                raise RuntimeError(f"the migration left {len(broken)} broken foreign keys, e.g. {broken[0]}")


if context.is_offline_mode():  # pragma: no cover
    raise SystemExit("offline migrations are not supported; run `parkinglot db upgrade`")
run_migrations_online()

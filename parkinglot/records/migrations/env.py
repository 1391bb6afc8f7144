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
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            render_item=render_item,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():  # pragma: no cover
    raise SystemExit("offline migrations are not supported; run `parkinglot db upgrade`")
run_migrations_online()

"""The migrations and the models describe the same schema, on both backends."""
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from parkinglot.records import migrate
from parkinglot.records.models import Base


def test_migrations_match_models(db):
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
        assert compare_metadata(ctx, Base.metadata) == []


def test_database_is_at_head(db):
    assert migrate.current_revision(db.engine) == migrate.head_revision(db.engine)


def test_downgrade_to_base_and_back(empty_database):
    from parkinglot.db import make_engine

    engine = make_engine(empty_database)
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision(engine)
    engine.dispose()

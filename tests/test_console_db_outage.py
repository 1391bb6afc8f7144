"""The console during a database outage: a clear 503 page in the console's layout, never a
500, and the pages work again once the database is back. Runs on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
from sqlalchemy import event

from .test_console import as_role, world  # noqa: F401  (fixtures)


@pytest.fixture
def outage(app):
    """Every new database connection fails, as while PostgreSQL restarts; lifted on exit.

    The read-only sessions use a view of the same engine, so they share its pool."""
    engine = app.extensions["parkinglot"].engine
    state = {"down": False}

    def refuse(dialect, *_args, **_kwargs):
        if state["down"]:  # what the driver itself raises when the server refuses connections
            raise dialect.loaded_dbapi.OperationalError("connection refused: the database is restarting")

    event.listen(engine, "do_connect", refuse)

    def down() -> None:
        state["down"] = True
        engine.dispose()  # the pooled connections died with the server

    def up() -> None:
        state["down"] = False

    yield down, up
    up()
    event.remove(engine, "do_connect", refuse)


@pytest.mark.parametrize("path", ["/dashboard", "/stays", "/alerts", "/lanes", "/live.json"])
def test_pages_answer_503_while_the_database_is_down_and_recover(as_role, outage, path):  # noqa: F811
    down, up = outage
    client = as_role("supervisor")
    assert client.get(path).status_code == 200
    down()
    r = client.get(path)
    assert r.status_code == 503, (r.status_code, r.text[:300])
    if path != "/live.json":
        assert "database is unavailable" in r.text and "Parkinglot console" in r.text
    assert "Traceback" not in r.text
    up()
    assert client.get(path).status_code == 200  # the same login session works again

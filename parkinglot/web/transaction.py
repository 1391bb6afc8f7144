"""One transaction per request.

A view gets its Session from ``db()``; the request layer commits when the view
returned a success, rolls back on any error or error response, and closes the
session in teardown. Services only ``flush()``.
"""
from __future__ import annotations

from typing import Optional

from flask import Flask, Response, current_app, g
from sqlalchemy.orm import Session

from ..context import Context


def context() -> Context:
    return current_app.extensions["parkinglot"]


def db() -> Session:
    """The request's read-write session (created on first use)."""
    session: Optional[Session] = g.get("_db")
    if session is None:
        session = context().sessions()
        g._db = session
    return session


def read_db() -> Session:
    """A read-only session for pages and reports: never holds the SQLite write lock.

    On PostgreSQL reads don't block writers, so the request's one session is reused.
    """
    if context().engine.dialect.name != "sqlite":
        return db()
    session: Optional[Session] = g.get("_read_db")
    if session is None:
        session = context().read_sessions()
        g._read_db = session
    return session


def _commit(response: Response) -> Response:
    session: Optional[Session] = g.get("_db")
    if session is not None:
        if response.status_code < 400 and not g.get("_db_rollback_only"):
            session.commit()  # a failure here becomes an error response, never a false success
        else:
            session.rollback()
    return response


def rollback_only() -> None:
    """Mark the request's transaction to be rolled back even on a success response."""
    g._db_rollback_only = True


def _close(_exc: Optional[BaseException]) -> None:
    for name in ("_db", "_read_db"):
        session: Optional[Session] = g.pop(name, None)
        if session is not None:
            try:
                session.rollback()
            finally:
                session.close()


def init_app(app: Flask) -> None:
    app.after_request(_commit)
    app.teardown_appcontext(_close)

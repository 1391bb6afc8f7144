"""What a database holds, in numbers a restore can compare: rows per table, the audit head, the revision.

Generic over the tables that exist (reflected, not a fixed list), so a table another
change adds is counted without an edit here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from sqlalchemy import Connection, inspect, text

# Rows that a freshly migrated, never used database already has.
_BOOKKEEPING = {"alembic_version", "audit_head"}


@dataclass(frozen=True)
class Census:
    revision: Optional[str]
    tables: dict[str, int]
    audit_head: Optional[dict[str, Any]]

    def as_manifest(self) -> dict[str, Any]:
        return {"schema_revision": self.revision, "tables": self.tables, "audit_head": self.audit_head}

    @property
    def holds_data(self) -> bool:
        if any(n for t, n in self.tables.items() if t not in _BOOKKEEPING):
            return True
        return bool(self.audit_head and self.audit_head.get("last_id"))


def _quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def take(conn: Connection) -> Census:
    """Count every table of the connection's schema (inside the caller's transaction/snapshot)."""
    names = sorted(inspect(conn).get_table_names())
    tables = {name: int(conn.execute(text(f"SELECT count(*) FROM {_quote(conn, name)}")).scalar_one())
              for name in names}
    revision = None
    if "alembic_version" in tables:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    head = None
    if "audit_head" in tables:
        row = conn.execute(text("SELECT last_id, last_hash FROM audit_head WHERE id = 1")).first()
        if row is not None:
            head = {"last_id": int(row[0]), "last_hash": row[1]}
    return Census(revision, tables, head)


def differences(staged: Census, recorded: dict[str, Any]) -> list[str]:
    """Where a staged copy disagrees with what the manifest recorded at backup time (sentences)."""
    problems = []
    if recorded.get("schema_revision") and staged.revision != recorded["schema_revision"]:
        problems.append(f"the database is at schema {staged.revision!r}, the manifest says "
                        f"{recorded['schema_revision']!r}")
    for name, count in sorted((recorded.get("tables") or {}).items()):
        have = staged.tables.get(name)
        if have is None:
            problems.append(f"table {name} is missing")
        elif have != count:
            problems.append(f"table {name} has {have} rows, the backup recorded {count}")
    want_head = recorded.get("audit_head")
    if want_head and staged.audit_head != want_head:
        problems.append(f"audit head is {staged.audit_head}, the backup recorded {want_head}")
    return problems

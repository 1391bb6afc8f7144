"""Forgetting a value everywhere: whole-word redaction in text and JSON, and a sweep over every table.

Retention blanks the plate columns of the rows it purges by id (reads, stays, decisions,
alerts). This module handles what is left: the same plate or ticket written into free
text (an alert's message, a dispute's reason, a note) and JSON (a decision's reply), and,
through ``sweep``, in every other table's text and JSON columns, including tables and
columns added later (it walks the ORM metadata and skips only the columns it was told about,
not a fixed list of tables to visit).
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Optional

from sqlalchemy import JSON, String, Table, Text, or_, select, update
from sqlalchemy.orm import Session

from ..models import Base

MIN_LEN = 3  # shorter values cannot be told apart from ordinary words in free text
FREE_TEXT_MIN_LEN = 120  # String columns at least this long hold prose; shorter ones are codes and keys

# Never swept: the immutable audit trail (digests only; its hashes and signatures must still verify)
# and bookkeeping.
NOT_SWEPT = frozenset({"audit_event", "audit_head", "audit_checkpoint", "alembic_version"})

# Columns that could hold text but were reviewed and are left alone here: the event tables'
# columns that retention redacts row by row through their ids, and configuration that names no
# vehicle. Only these: a column added later, to one of these tables or in a new one, is swept
# (``swept_columns``) without anyone having to remember this list.
REVIEWED: dict[str, frozenset[str]] = {name: frozenset(cols) for name, cols in {
    "plate_read": ("box", "candidates", "no_plate_reason", "plate", "ticket", "timings"),
    "parking_session": ("plate", "ticket"),
    "decision": ("message", "response"),
    "alert": ("acknowledge_note", "message", "plate", "resolve_note"),
    "payment": ("reason",),
    "barrier_command": ("error",),
    "app_user": ("display_name", "password_hash"),
    "site": ("kpi_targets", "name", "plate_regions"),
    "zone": ("name",), "lane": ("driver_config", "name"), "device": ("name",),
    "site_holiday": ("name",), "tariff_version": ("name", "rules"),
}.items()}

# Short columns named for a vehicle's identity are swept like plates (codes and states are not).
_PLATE_NAMES = ("plate", "ticket", "registration", "vrm", "licen", "vehicle")


# JSON keys that hold a plate (or what the reader took for one) wherever they occur: emptied outright.
EMPTIED: dict[str, Any] = {"plate": "", "raw_text": "", "ticket": None, "candidates": [], "alternatives": []}


class Redactor:
    """Replaces whole-word occurrences of some values (plates, tickets) in text and JSON."""

    def __init__(self, values: Iterable[str]) -> None:
        self.values = sorted({v for v in values if v and len(v) >= MIN_LEN}, key=len, reverse=True)
        self._pattern: Optional[re.Pattern[str]] = None
        if self.values:
            self._pattern = re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, self.values))
                                       + r")(?![A-Za-z0-9])")

    def __bool__(self) -> bool:
        return bool(self.values)

    def text(self, value: Optional[str], *, keep_length: bool = False) -> Optional[str]:
        if not value or self._pattern is None:
            return value
        return self._pattern.sub(lambda m: "#" * len(m.group(0)) if keep_length else "[purged]", value)

    def json(self, value: Any, *, empty_keys: bool = True) -> Any:
        """``value`` with our values redacted from its strings and (``empty_keys``, for a record about
        the purged vehicle itself) its plate-bearing keys emptied."""
        if isinstance(value, dict):
            return {k: (EMPTIED[k] if empty_keys and k in EMPTIED and value.get(k) else
                        self.json(v, empty_keys=empty_keys)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(v, empty_keys=empty_keys) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value


def swept_columns(table: Table) -> list[tuple[Any, str]]:
    """(column, kind) for the columns of ``table`` the sweep redacts: kind text|json|plate.

    Free text (Text, long String) and JSON anywhere, and short columns named for a plate, a
    ticket or a registration; other short columns are codes, states and keys, left alone. Not
    the audit trail (``NOT_SWEPT``), nor the columns in ``REVIEWED``.
    """
    if table.name in NOT_SWEPT:
        return []
    reviewed = REVIEWED.get(table.name, frozenset())
    out = []
    for col in table.columns:
        if col.primary_key or col.foreign_keys or col.name in reviewed:
            continue
        t = col.type
        if isinstance(t, JSON) or isinstance(getattr(t, "impl", None), JSON):
            out.append((col, "json"))
        elif isinstance(t, Text) or (isinstance(t, String) and (t.length or 10 ** 6) >= FREE_TEXT_MIN_LEN):
            out.append((col, "text"))
        elif isinstance(t, String) and any(word in col.name.lower() for word in _PLATE_NAMES):
            out.append((col, "plate"))
    return out


def sweep(session: Session, values: Iterable[str], *, batch: int = 200) -> int:
    """Redact ``values`` from the columns ``swept_columns`` names, in every table of the ORM; rows changed.

    A LIKE pre-filter (one column and ``batch`` values per query: SQLite limits an expression's
    depth) finds the candidate rows, the exact whole-word replacement happens here; plate
    columns keep their length (their limit, and any uniqueness).
    """
    values = sorted({v for v in values if v and len(v) >= MIN_LEN})
    changed: set[tuple[str, tuple]] = set()
    for table in Base.metadata.sorted_tables:
        pk = list(table.primary_key.columns)
        if not pk:
            continue
        for col, kind in swept_columns(table):
            probe = col.cast(Text) if kind == "json" else col
            for i in range(0, len(values), batch):
                chunk = values[i:i + batch]
                redact = Redactor(chunk)
                rows = session.execute(select(*pk, col).where(or_(*[probe.like(f"%{v}%") for v in chunk]))).all()
                for row in rows:
                    old = row[-1]
                    fixed = (redact.json(old, empty_keys=False) if kind == "json"
                             else redact.text(old, keep_length=kind == "plate"))
                    if fixed != old:
                        key = tuple(row[:-1])
                        session.execute(update(table).where(*[c == v for c, v in zip(pk, key)])
                                        .values({col.name: fixed}))
                        changed.add((table.name, key))
    return len(changed)

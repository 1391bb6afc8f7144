"""CSV imports (permits, hotlist) with a row-level error report.

Parsing is strict and pure: UTF-8 only (a BOM is fine), the header must name
exactly the expected columns, and every row is checked. Importing runs each row
in a savepoint so every bad row is reported; the caller keeps the import only if
there are no errors, so a file is never half-imported.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from sqlalchemy.orm import Session

from .. import plates
from . import permits, vehicles
from .errors import InvalidInput, ParkingError
from .models import HotlistEntry, Permit, Site
from .wallclock import day_end, day_start, parse_date

MAX_ROWS = 5000
MAX_FIELD = 1000

PERMIT_COLUMNS = ("number", "holder", "plates", "valid_from", "valid_to")
PERMIT_OPTIONAL = ("hours", "rate")
HOTLIST_COLUMNS = ("plate", "reason")
HOTLIST_OPTIONAL = ("source",)
# Columns stored as they are: a longer value is a row error here, where the file comes in,
# instead of a database error (PostgreSQL refuses it) that would fail the whole file.
PERMIT_MAX = {"number": Permit.__table__.c.number.type.length, "holder": Permit.__table__.c.holder.type.length,
              "rate": Permit.__table__.c.rate.type.length}
HOTLIST_MAX = {"reason": HotlistEntry.__table__.c.reason.type.length,
               "source": HotlistEntry.__table__.c.source.type.length}


class CsvFormatError(InvalidInput):
    """The file as a whole cannot be read (encoding, header, size): nothing was imported."""


@dataclass(frozen=True)
class RowError:
    line: int
    message: str


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _header_key(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def read_rows(data: bytes, required: Sequence[str], optional: Sequence[str] = (), *,
              max_rows: int = MAX_ROWS) -> list[tuple[int, dict[str, str]]]:
    """``(line number, {column: text})`` for every non-empty row; CsvFormatError for a bad file."""
    if b"\x00" in data:
        raise CsvFormatError("this is not a text CSV file (it contains binary data)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvFormatError(f"the file is not UTF-8 text (byte {exc.start + 1} cannot be read); "
                             "save it as 'CSV UTF-8' and upload it again") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise CsvFormatError(f"the file is empty; the first line must name the columns: {', '.join(required)}")
        columns = [_header_key(h) for h in header]
        expected = list(required) + list(optional)
        missing = [c for c in required if c not in columns]
        unknown = [h for h, c in zip(header, columns) if c not in expected]
        if missing or unknown or len(set(columns)) != len(columns):
            parts = []
            if missing:
                parts.append(f"missing column(s): {', '.join(missing)}")
            if unknown:
                parts.append(f"unknown column(s): {', '.join(repr(u) for u in unknown)}")
            if len(set(columns)) != len(columns):
                parts.append("a column is named twice")
            wanted = ", ".join(expected) + (f" ({', '.join(optional)} optional)" if optional else "")
            raise CsvFormatError(f"{'; '.join(parts)}. Expected columns: {wanted}")
        rows = []
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            line = reader.line_num
            if len(rows) >= max_rows:
                raise CsvFormatError(f"too many rows: at most {max_rows} per file")
            if any(len(v) > MAX_FIELD for v in values):
                rows.append((line, {"__error__": f"a value is longer than {MAX_FIELD} characters"}))
                continue
            if len(values) != len(columns):
                rows.append((line, {"__error__": f"expected {len(columns)} values, found {len(values)}"}))
                continue
            rows.append((line, {c: v.strip() for c, v in zip(columns, values)}))
    except csv.Error as exc:
        raise CsvFormatError(f"line {reader.line_num}: the CSV cannot be read ({exc})") from None
    return rows


def _too_long(row: dict[str, str], limits: dict[str, int]) -> Optional[str]:
    over = [f"{column} has {len(row[column])} characters (at most {limit})"
            for column, limit in limits.items() if len(row.get(column) or "") > limit]
    return "; ".join(over) or None


def _run(session: Session, rows: list[tuple[int, dict[str, str]]], one: Callable[[dict[str, str]], Any],
         limits: dict[str, int]) -> ImportReport:
    report = ImportReport(rows=len(rows))
    for line, row in rows:
        error = row.get("__error__") or _too_long(row, limits)
        if error:
            report.errors.append(RowError(line, error))
            continue
        try:
            with session.begin_nested():
                one(row)
        except ParkingError as exc:
            report.errors.append(RowError(line, exc.message))
            continue
        report.imported += 1
    return report


def parse_hours(text: str) -> Optional[list[dict[str, str]]]:
    """``mon-fri 07:00-19:00; sat 08:00-12:00`` -> the permit hours format; empty -> all hours."""
    text = (text or "").strip()
    if not text:
        return None
    out = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        days, _, span = part.rpartition(" ")
        start, sep, end = span.partition("-")
        if not days.strip() or not sep:
            raise InvalidInput(f"hours {part!r}: write them like 'mon-fri 07:00-19:00'")
        out.append({"days": days.strip().replace(" ", ""), "from": start.strip(), "to": end.strip()})
    return permits.validate_hours(out)


def format_hours(hours: Optional[Sequence[dict[str, Any]]]) -> str:
    return "; ".join(f"{h['days']} {h['from']}-{h['to']}" for h in hours or ())


def split_plates(text: str) -> list[str]:
    """Plates separated by spaces, commas or semicolons."""
    return [p for p in text.replace(";", " ").replace(",", " ").split() if p]


def import_permits(session: Session, site: Site, data: bytes, *, user_id: Optional[int],
                   rate_names: Sequence[str] = ()) -> ImportReport:
    """Create one permit per row (``hours`` like ``mon-fri 07:00-19:00``; dates in the site's zone)."""
    rows = read_rows(data, PERMIT_COLUMNS, PERMIT_OPTIONAL)

    def one(row: dict[str, str]) -> None:
        first, last = parse_date(row["valid_from"]), parse_date(row["valid_to"])
        if last < first:
            raise InvalidInput("valid_to is before valid_from")
        rate = row.get("rate") or None
        if rate and rate_names and rate not in rate_names:
            raise InvalidInput(f"unknown rate {rate!r} (the site's tariff has: {', '.join(rate_names)})")
        if not row["holder"]:
            raise InvalidInput("holder is empty")
        permits.create_permit(session, site, number=row["number"], holder=row["holder"],
                              vehicles=split_plates(row["plates"]), valid_from=day_start(first, site.timezone),
                              valid_to=day_end(last, site.timezone), hours=parse_hours(row.get("hours", "")),
                              rate=rate, user_id=user_id)

    return _run(session, rows, one, PERMIT_MAX)


def import_hotlist(session: Session, data: bytes, *, site_id: Optional[int], user_id: Optional[int]) -> ImportReport:
    """Add one hotlist entry per row (for ``site_id``, or every site when None)."""
    rows = read_rows(data, HOTLIST_COLUMNS, HOTLIST_OPTIONAL)

    def one(row: dict[str, str]) -> None:
        try:
            plate = plates.validate(row["plate"])
        except plates.PlateError as exc:
            raise InvalidInput(str(exc)) from None
        if not row["reason"]:
            raise InvalidInput("reason is empty")
        if vehicles.hotlist_hit(session, site_id or 0, plate) is not None:
            raise InvalidInput(f"{plate} is already on the hotlist")
        vehicles.add_to_hotlist(session, plate=plate, reason=row["reason"], site_id=site_id,
                                source=row.get("source") or "csv import", user_id=user_id)

    return _run(session, rows, one, HOTLIST_MAX)

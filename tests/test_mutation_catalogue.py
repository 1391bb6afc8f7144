"""The mutation catalogue cannot go stale silently, and the runner never touches the working tree.

The full mutation run (``python benchmarks/mutation.py``) takes minutes and lives in
``benchmarks/``; this is the cheap check that runs with the suite: every catalogue entry
still names a real snippet of today's code (exactly once), its mutated file still parses,
its tests exist, and applying then reverting a mutant in a temporary copy leaves the copy
byte-identical and the working tree untouched.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from benchmarks import mutation

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = mutation.load_catalogue()


def test_catalogue_is_large_and_its_ids_unique():
    ids = [m.id for m in CATALOGUE]
    assert len(ids) == len(set(ids)) and len(ids) >= 40


@pytest.mark.parametrize("mutant", CATALOGUE, ids=lambda m: m.id)
def test_anchor_occurs_exactly_once_and_the_mutant_parses(mutant):
    text = (ROOT / mutant.file).read_text(encoding="utf-8")
    assert text.count(mutant.anchor) == 1, (
        f"{mutant.id}: the anchor occurs {text.count(mutant.anchor)} times in {mutant.file}; the code changed, "
        f"so update (or retire) this entry in benchmarks/mutants.yaml")
    mutation.check(mutant)  # the mutated file parses, the mapped tests exist and are not the plate reader's


def test_a_stale_anchor_is_refused(tmp_path):
    m = CATALOGUE[0]
    stale = dataclasses.replace(m, anchor=m.anchor + "  # not in the code")
    with pytest.raises(mutation.CatalogueError, match="occurs 0 times"):
        mutation.check(stale)
    twice = dataclasses.replace(m, anchor="\n")  # any file has many newlines
    with pytest.raises(mutation.CatalogueError, match="must be once"):
        twice.mutate((ROOT / m.file).read_text(encoding="utf-8"))
    slow = dataclasses.replace(m, tests=("tests/test_ocr.py",))
    with pytest.raises(mutation.CatalogueError, match="plate-reader or browser test"):
        mutation.check(slow)


def test_malformed_entries_are_refused(tmp_path):
    good = ("- {id: a, rule: r, source: s, file: parkinglot/plates.py, anchor: 'LOOKALIKE_COST = 0.25',\n"
            "   replace: 'LOOKALIKE_COST = 0.0', tests: [tests/test_lookup.py]}\n")
    path = tmp_path / "m.yaml"
    path.write_text("mutants:\n" + good)
    assert [m.id for m in mutation.load_catalogue(path)] == ["a"]
    for bad, match in ((good + good, "duplicate id"),
                       (good.replace("tests: [tests/test_lookup.py]", "tests: []"), "non-empty list"),
                       (good.replace("'LOOKALIKE_COST = 0.0'", "'LOOKALIKE_COST = 0.25'"), "differs"),
                       (good.replace("rule: r, ", ""), "missing"),
                       (good.replace("rule: r, ", "rule: r, colour: red, "), "unknown")):
        path.write_text("mutants:\n" + bad)
        with pytest.raises(mutation.CatalogueError, match=match):
            mutation.load_catalogue(path)


def test_an_equivalent_mutant_says_why_and_is_left_out_of_the_score(tmp_path):
    entry = ("- {id: a, rule: r, source: s, file: parkinglot/plates.py, anchor: 'LOOKALIKE_COST = 0.25',\n"
             "   replace: 'LOOKALIKE_COST = 0.0', tests: [tests/test_lookup.py]%s}\n")
    path = tmp_path / "m.yaml"
    path.write_text("mutants:\n" + entry % ", equivalent: 'the cost is never read'")
    assert mutation.load_catalogue(path)[0].equivalent == "the cost is never read"
    path.write_text("mutants:\n" + entry % ", equivalent: ''")
    with pytest.raises(mutation.CatalogueError, match="say why"):
        mutation.load_catalogue(path)
    path.write_text("mutants:\n" + entry % ", backend: postgresql")
    assert mutation.load_catalogue(path)[0].backend == "postgresql"
    path.write_text("mutants:\n" + entry % ", backend: oracle")
    with pytest.raises(mutation.CatalogueError, match="'backend' must be one of"):
        mutation.load_catalogue(path)
    results = [{"file": "a.py", "status": s, "seconds": 1.0} for s in ("killed", "killed", "survived", "equivalent")]
    results.append({"file": "b.py", "status": "equivalent", "seconds": 0.0})
    rows = mutation.by_file(results)
    assert rows["a.py"] == {"mutants": 4, "killed": 2, "survived": 1, "equivalent": 1, "error": 0, "seconds": 4.0,
                            "score": round(2 / 3, 4)}
    assert rows["b.py"]["score"] is None  # nothing to judge


def test_a_mutant_is_applied_and_reverted_in_the_copy_only(tmp_path):
    mutant = next(m for m in CATALOGUE if m.file == "parkinglot/barrier/decide.py")
    tree_file = ROOT / mutant.file
    before = tree_file.read_bytes()
    copy = mutation.make_copy(tmp_path / "copy")
    copied = copy / mutant.file
    assert copied.read_bytes() == before
    assert not list(copy.rglob("__pycache__"))  # no bytecode that could outlive a mutant
    with mutation.applied(copy, mutant) as path:
        assert path == copied
        text = path.read_text(encoding="utf-8")
        assert mutant.replace in text and text.count(mutant.anchor) == 0
        assert tree_file.read_bytes() == before  # the working tree is never touched
    assert copied.read_bytes() == before


def test_a_mutant_is_reverted_even_when_the_run_fails(tmp_path):
    mutant = CATALOGUE[-1]
    copy = mutation.make_copy(tmp_path / "copy")
    before = (copy / mutant.file).read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with mutation.applied(copy, mutant):
            raise RuntimeError("boom")
    assert (copy / mutant.file).read_bytes() == before


def test_the_copy_is_what_the_tests_import(tmp_path):
    copy = mutation.make_copy(tmp_path / "copy")
    assert copy.resolve() in mutation.package_location(copy).parents

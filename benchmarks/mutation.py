"""Mutation testing of the domain rules: does the suite notice when a rule is broken?

    python benchmarks/mutation.py [--only ID[,ID]] [--json OUT] [--timeout S] [--list]

A review broke the project's rules on purpose, one line at a time, and half of those
breaks left the suite green. This runner keeps that review going: ``mutants.yaml``
beside it is a catalogue of hand-written, meaningful one-line rule breaks (a hotlisted
car let in, a refund larger than the payment, an audit link left unchecked ...), each
with the rule it breaks, the file, an exact anchor snippet and its replacement, and the
test files that should catch it.

For each mutant the runner edits a *temporary copy* of the package (``parkinglot/``,
``tests/``, ``docs/``, ``pyproject.toml``; the working tree is never touched, so it can run while
others work), runs the mapped tests there on SQLite (``-k "not postgresql" -x -q
-p no:cacheprovider``; on PostgreSQL for a mutant marked ``backend: postgresql``, whose code
runs there only), ``PYTHONPATH`` and the working directory pointing at the copy,
no bytecode written), puts the file back and checks it is byte-identical again.

A mutant is *killed* when a mapped test fails (or the run exceeds ``--timeout``), and
*survives* when they all pass. Before any mutant, the union of the mapped tests runs
once on the unmutated copy: if that baseline fails, nothing is judged (exit 2).
Survivors that an open issue is about to deal with carry ``awaits: issue N`` in the
catalogue and are listed apart in the report; they still count as survivors. A mutant
shown to be *equivalent* (no input tells it from the original) carries ``equivalent:
<why>``; it is listed with its reason and not run, and the score leaves it out:
score = killed / (mutants - equivalent).

Why a hand-written catalogue and not mutmut or cosmic-ray: see docs/testing.md. In short,
those tools flip operators everywhere (thousands of mutants in these modules, most of them
in logging, messages and formatting), re-run a fixed test command per mutant and have no
notion of "this test file guards that rule"; here each mutant is a rule break someone could
plausibly commit, mapped to the tests that state the rule, so the whole catalogue runs on
two cores in 13-25 minutes and every survivor names a rule.

Exit code: 0 every mutant killed, 1 at least one survived, 2 the run could not judge
(baseline red, a stale anchor, pytest could not collect the mapped tests).

Output (``--json``): ``{"benchmark": "mutation", "mutants", "killed", "survived",
"equivalent", "kill_rate", "score", "seconds", "by_file": {file: {...}},
"results": [{"id", "status", "seconds", ...}], "survivors": [...]}``.
"""
from __future__ import annotations

import argparse
import ast
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import write_json  # noqa: E402

CATALOGUE = Path(__file__).resolve().parent / "mutants.yaml"
COPIED = ("parkinglot", "tests", "docs", "pyproject.toml")  # what a test run needs; models/ is linked, read-only
PYTEST_ARGS = ("-x", "-q", "-p", "no:cacheprovider")
# which half of the backend-parametrised tests a mutant is judged on: SQLite, unless its code
# runs on PostgreSQL only (``backend: postgresql`` in the catalogue, e.g. the audit trail's SQL)
BACKENDS = {"sqlite": ("-k", "not postgresql"), "postgresql": ("-k", "postgresql")}
# pytest plugins whose import is most of a short run's start-up (hypothesis alone ~2 s of CPU);
# left out of a run whose test files do not use them
HEAVY_PLUGINS = {"hypothesis": "hypothesispytest", "schemathesis": "schemathesis"}
FIELDS = {"id", "rule", "source", "file", "anchor", "replace", "tests"}
# The plate reader's tests (numba kernels, easyocr, synthetic frames) are slow and judge lpr/ only;
# a test file is one of them when it imports the reader (browser tests are slow too).
LPR_MARKERS = ("parkinglot.lpr", "parkinglot import lpr", "lpr_synth_frames")
OPTIONAL = {"awaits", "equivalent", "backend"}


class CatalogueError(ValueError):
    """The catalogue is malformed, or an anchor no longer occurs exactly once."""


@dataclass(frozen=True)
class Mutant:
    id: str
    rule: str  # the rule it breaks, one sentence
    source: str  # where the rule is written: DESIGN.md's domain rules or an issue
    file: str  # relative to the repository root
    anchor: str  # exact text, must occur exactly once in ``file``
    replace: str
    tests: tuple[str, ...]  # test files (or node ids) that should catch it
    awaits: Optional[str] = None  # an open issue that changes this rule (survivors listed apart)
    equivalent: Optional[str] = None  # why no input tells this mutant from the original (not run)
    backend: str = "sqlite"  # the backend its tests run on (postgresql for code that runs there only)

    def mutate(self, text: str) -> str:
        """``text`` with the anchor replaced; ``CatalogueError`` unless the anchor occurs exactly once."""
        n = text.count(self.anchor)
        if n != 1:
            raise CatalogueError(f"mutant {self.id}: the anchor occurs {n} times in {self.file} (must be once); "
                                 f"update its entry in {CATALOGUE.name}")
        return text.replace(self.anchor, self.replace, 1)


def load_catalogue(path: Path = CATALOGUE) -> list[Mutant]:
    """Read and check the catalogue's shape (ids unique, fields present, replacement differs)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    entries = data.get("mutants") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise CatalogueError(f"{path}: expected a top-level 'mutants:' list")
    out: list[Mutant] = []
    seen: set[str] = set()
    for i, e in enumerate(entries):
        where = f"{path.name} entry {i} ({e.get('id', '?') if isinstance(e, dict) else '?'})"
        if not isinstance(e, dict):
            raise CatalogueError(f"{where}: not a mapping")
        missing, unknown = FIELDS - set(e), set(e) - FIELDS - OPTIONAL
        if missing or unknown:
            raise CatalogueError(f"{where}: missing {sorted(missing)}, unknown {sorted(unknown)}")
        if e["id"] in seen:
            raise CatalogueError(f"{where}: duplicate id")
        seen.add(e["id"])
        tests = e["tests"]
        if not isinstance(tests, list) or not tests or not all(isinstance(t, str) and t for t in tests):
            raise CatalogueError(f"{where}: 'tests' must be a non-empty list of paths")
        if not all(isinstance(e[k], str) and e[k] for k in ("rule", "source", "file", "anchor")):
            raise CatalogueError(f"{where}: rule, source, file and anchor must be non-empty strings")
        if not isinstance(e["replace"], str) or e["replace"] == e["anchor"]:
            raise CatalogueError(f"{where}: 'replace' must be a string that differs from the anchor")
        if e.get("backend", "sqlite") not in BACKENDS:
            raise CatalogueError(f"{where}: 'backend' must be one of {', '.join(BACKENDS)}")
        if "equivalent" in e and not (isinstance(e["equivalent"], str) and e["equivalent"].strip()):
            raise CatalogueError(f"{where}: 'equivalent' must say why no input tells the mutant apart")
        out.append(Mutant(e["id"], e["rule"].strip(), e["source"].strip(), e["file"], e["anchor"], e["replace"],
                          tuple(tests), e.get("awaits"), (e.get("equivalent") or "").strip() or None,
                          e.get("backend", "sqlite")))
    return out


def _slow_test(path: Path) -> bool:
    if "browser" in path.parts:
        return True
    text = path.read_text(encoding="utf-8")
    return any(marker in text for marker in LPR_MARKERS)


def check(mutant: Mutant, root: Path = ROOT) -> None:
    """The anchor occurs exactly once and the mutated file still parses (a rule break, not a typo)."""
    path = root / mutant.file
    if not path.is_file():
        raise CatalogueError(f"mutant {mutant.id}: no file {mutant.file}")
    mutated = mutant.mutate(path.read_text(encoding="utf-8"))
    try:
        ast.parse(mutated, filename=str(path))
    except SyntaxError as exc:
        raise CatalogueError(f"mutant {mutant.id}: the mutated {mutant.file} does not parse: {exc}") from None
    for t in mutant.tests:
        if not (root / t.split("::", 1)[0]).is_file():
            raise CatalogueError(f"mutant {mutant.id}: no test file {t}")
        if _slow_test(root / t.split("::", 1)[0]) and not mutant.file.startswith("parkinglot/lpr/"):
            raise CatalogueError(f"mutant {mutant.id}: {t} is a plate-reader or browser test; "
                                 f"map it only to mutants of lpr/")


# --- the temporary copy -------------------------------------------------------------------------

def make_copy(dest: Path, root: Path = ROOT) -> Path:
    """Copy what a test run needs into ``dest`` (no bytecode, no caches) and return it."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc", ".pytest_cache")
    for name in COPIED:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)
    if (root / "models").is_dir():
        (dest / "models").symlink_to(root / "models", target_is_directory=True)
    return dest


@contextmanager
def applied(copy: Path, mutant: Mutant) -> Iterator[Path]:
    """Apply ``mutant`` to the copy; on exit put the original bytes back and check they are."""
    path = copy / mutant.file
    original = path.read_bytes()
    mutated = mutant.mutate(original.decode("utf-8"))
    path.write_bytes(mutated.encode("utf-8"))
    try:
        yield path
    finally:
        path.write_bytes(original)
        if path.read_bytes() != original:  # pragma: no cover - a disk that lies
            raise RuntimeError(f"could not restore {path} after mutant {mutant.id}")


def _env(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a reverted file must never meet its mutant's bytecode
    return env


def package_location(copy: Path) -> Path:
    """Where ``import parkinglot`` resolves with the runner's environment (must be the copy)."""
    out = subprocess.run([sys.executable, "-c", "import parkinglot; print(parkinglot.__file__)"], cwd=copy,
                         env=_env(copy), capture_output=True, text=True, check=True)
    return Path(out.stdout.strip()).resolve()


@dataclass
class TestRun:
    status: str  # passed | failed | timeout | error
    seconds: float
    returncode: Optional[int]
    failures: list[str] = field(default_factory=list)
    tail: str = ""


def _unused_plugins(copy: Path, tests: Sequence[str]) -> list[str]:
    texts = [(copy / t.split("::", 1)[0]).read_text(encoding="utf-8") for t in tests]
    texts.append((copy / "tests" / "conftest.py").read_text(encoding="utf-8"))
    out = []
    for module, plugin in HEAVY_PLUGINS.items():
        if not any(module in text for text in texts):
            out += ["-p", f"no:{plugin}"]
    return out


_SUMMARY_LINE = re.compile(r"(FAILED|ERROR) tests/\S+")  # pytest's short summary, not a captured log line


def run_tests(copy: Path, tests: Sequence[str], timeout: float, backend: str = "sqlite") -> TestRun:
    """pytest on the copy, one backend (SQLite unless told), stop at the first failure."""
    cmd = [sys.executable, "-m", "pytest", *PYTEST_ARGS, *BACKENDS[backend], *_unused_plugins(copy, tests), *tests]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=copy, env=_env(copy), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return TestRun("timeout", time.perf_counter() - t0, None, [], out[-2000:])
    seconds = time.perf_counter() - t0
    failures = [ln.split(" - ")[0] for ln in out.splitlines() if _SUMMARY_LINE.match(ln)]
    # pytest: 0 all passed, 1 tests failed, 2 interrupted (-x, or a collection error); 4/5 usage / nothing collected
    if proc.returncode == 0:
        status = "passed"
    elif proc.returncode in (1, 2) and (failures or "error" in out.lower()):
        status = "failed"
    else:
        status = "error"
    return TestRun(status, seconds, proc.returncode, failures, out[-2000:])


# --- the run --------------------------------------------------------------------------------------

def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _git_head() -> Optional[str]:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def run(mutants: Sequence[Mutant], timeout: float) -> tuple[dict, int]:
    """Judge every mutant; returns the JSON report and the exit code."""
    t_start = time.perf_counter()
    commit = _git_head()  # what the copy is taken from (HEAD may move while the run goes on)
    for m in mutants:
        check(m)
    unions = {b: sorted({t for m in mutants if not m.equivalent and m.backend == b for t in m.tests})
              for b in BACKENDS}
    with tempfile.TemporaryDirectory(prefix="parkinglot-mutants-") as tmp:
        copy = make_copy(Path(tmp))
        where = package_location(copy)
        if copy.resolve() not in where.parents:
            raise SystemExit(f"import parkinglot resolves to {where}, not to the copy in {copy}")
        base_seconds = 0.0
        for backend, union in unions.items():
            if not union:
                continue
            _say(f"[mutation] baseline: {len(union)} test files on the unmutated copy ({backend}) ...")
            base = run_tests(copy, union, timeout * 3, backend)
            if base.status != "passed":
                _say(base.tail)
                report = {"benchmark": "mutation", "error": "baseline failed", "baseline": base.status,
                          "backend": backend, "failures": base.failures}
                return report, 2
            base_seconds += base.seconds
            _say(f"[mutation] baseline passed in {base.seconds:.0f} s")
        results = []
        for i, m in enumerate(mutants, 1):
            if m.equivalent:
                results.append({"id": m.id, "status": "equivalent", "seconds": 0.0, "file": m.file, "rule": m.rule,
                                "tests": list(m.tests), "equivalent": m.equivalent})
                _say(f"[mutation] {i:>3}/{len(mutants)} EQUIVALENT          {m.id}: {m.equivalent}")
                continue
            with applied(copy, m):
                r = run_tests(copy, m.tests, timeout, m.backend)
            status = {"passed": "survived", "failed": "killed", "timeout": "killed", "error": "error"}[r.status]
            row = {"id": m.id, "status": status, "seconds": round(r.seconds, 1), "file": m.file, "rule": m.rule,
                   "tests": list(m.tests), "backend": m.backend, "caught_by": r.failures[:3],
                   "timed_out": r.status == "timeout"}
            if m.awaits:
                row["awaits"] = m.awaits
            if status == "error":
                row["pytest_exit"] = r.returncode
                row["tail"] = r.tail
            results.append(row)
            note = f" ({m.awaits})" if m.awaits and status == "survived" else ""
            caught = f" <- {r.failures[0]}" if r.failures else ""
            _say(f"[mutation] {i:>3}/{len(mutants)} {status.upper():8} {r.seconds:6.1f} s  {m.id}{note}{caught}")
    killed = sum(r["status"] == "killed" for r in results)
    survived = [r for r in results if r["status"] == "survived"]
    errors = [r for r in results if r["status"] == "error"]
    judged = killed + len(survived)
    equivalent = [r for r in results if r["status"] == "equivalent"]
    report = {
        "benchmark": "mutation", "commit": commit, "python": platform.python_version(),
        "catalogue": str(CATALOGUE.relative_to(ROOT)), "pytest_args": list(PYTEST_ARGS), "backends": {b: list(k) for b, k in BACKENDS.items()},
        "mutants": len(results), "killed": killed, "survived": len(survived), "errors": len(errors),
        "equivalent": len(equivalent),
        "kill_rate": round(killed / judged, 4) if judged else None,
        "score": round(killed / (len(results) - len(equivalent)), 4) if len(results) > len(equivalent) else None,
        "seconds": round(time.perf_counter() - t_start, 1), "baseline_seconds": round(base_seconds, 1),
        "survivors": [{"id": r["id"], "file": r["file"], "rule": r["rule"], **({"awaits": r["awaits"]}
                       if "awaits" in r else {})} for r in survived],
        "equivalents": [{"id": r["id"], "file": r["file"], "why": r["equivalent"]} for r in equivalent],
        "by_file": by_file(results),
        "results": results,
    }
    return report, 2 if errors else (1 if survived else 0)


def by_file(results: Sequence[dict]) -> dict[str, dict]:
    """Per mutated file: mutants, killed, survived, equivalent, errors, score and seconds."""
    out: dict[str, dict] = {}
    for r in results:
        row = out.setdefault(r["file"], {"mutants": 0, "killed": 0, "survived": 0, "equivalent": 0, "error": 0,
                                         "seconds": 0.0})
        row["mutants"] += 1
        row[r["status"]] += 1
        row["seconds"] = round(row["seconds"] + r["seconds"], 1)
    for row in out.values():
        judged = row["mutants"] - row["equivalent"]
        row["score"] = round(row["killed"] / judged, 4) if judged else None
    return dict(sorted(out.items()))


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", help="mutant id(s), comma-separated; repeatable")
    ap.add_argument("--json", help="also write the report to this file")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per mutant before it counts as killed")
    ap.add_argument("--list", action="store_true", help="list the catalogue and exit")
    args = ap.parse_args(argv)
    mutants = load_catalogue()
    if args.only:
        wanted = [x.strip() for arg in args.only for x in arg.split(",") if x.strip()]
        known = {m.id for m in mutants}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise SystemExit(f"unknown mutant id(s): {', '.join(unknown)}")
        mutants = [m for m in mutants if m.id in wanted]
    if args.list:
        for m in mutants:
            print(f"{m.id:45} {m.file:32} {m.rule}")
        return
    try:
        report, code = run(mutants, args.timeout)
    except CatalogueError as exc:
        raise SystemExit(str(exc)) from None
    if "kill_rate" in report and report["kill_rate"] is not None:
        _say(f"[mutation] {report['killed']}/{report['mutants']} killed, {report['survived']} survived, "
             f"{report['equivalent']} equivalent, {report['errors']} errors; score {report['score']:.1%} "
             f"(killed / non-equivalent), {report['seconds']:.0f} s")
        for name, row in report["by_file"].items():
            _say(f"[mutation]   {name:42} {row['killed']:>3} killed {row['survived']:>2} survived "
                 f"{row['equivalent']:>2} equivalent  score {row['score']:.0%}  {row['seconds']:6.0f} s")
        for s in report["survivors"]:
            _say(f"[mutation]   survived: {s['id']}" + (f" ({s['awaits']})" if "awaits" in s else ""))
    write_json(args.json, report)
    sys.exit(code)


if __name__ == "__main__":
    main()

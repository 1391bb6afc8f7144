"""Restoring a backup so that a failure at any step leaves the target exactly as it was.

Order: read and check the manifest and every file's checksum; check the schema revision
(a newer or unknown one is refused; an older one is upgraded in staging) and the audit
plate key; check the target (one holding data is replaced only with ``force``); load
the backup into a staging copy; check it (SQLite integrity and foreign keys, row counts
and audit head against the manifest, ``audit verify``, the revenue roll-up); only then
swap it in, keeping the previous database aside. Keys and photos are installed after
the swap and undone with it if anything fails; the restore itself is audited.
"""
from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, Optional, Union

from sqlalchemy.engine import make_url

from ..context import Context
from ..operator import operator_actor, operator_name
from ..db import make_engine, make_session_factory
from ..records import audit, migrate, revenue_rollup
from . import census, keys, manifest as manifest_mod
from .errors import BackupError, RestoreFailed
from .staging import PostgresStage, SqliteStage

Stage = Union[SqliteStage, PostgresStage]


@dataclass
class RestoreResult:
    backend: str
    backup_created_at: str
    schema_revision: str
    upgraded_to: Optional[str]
    tables: dict[str, int]
    audit_events: int
    evidence_files: int
    evidence_already_present: int
    previous_kept: Optional[str]
    keys: str
    steps: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _Steps:
    """Runs named steps; any error inside one becomes a RestoreFailed that names it."""

    def __init__(self, progress: Optional[Callable[[str], None]]) -> None:
        self.progress = progress
        self.done: list[str] = []
        self.unchanged = True

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.progress:
            self.progress(name)
        try:
            yield
        except RestoreFailed:
            raise
        except BackupError as exc:
            raise RestoreFailed(name, str(exc), unchanged=self.unchanged) from None
        except (sqlite3.Error, OSError) as exc:
            raise RestoreFailed(name, f"{exc.__class__.__name__}: {exc}", unchanged=self.unchanged) from None
        except Exception as exc:  # noqa: BLE001 - an operator gets the step and the error, not a traceback
            orig = getattr(exc, "orig", None) or exc
            first_line = (str(orig).strip().splitlines() or [""])[0]
            raise RestoreFailed(name, f"{orig.__class__.__name__}: {first_line}", unchanged=self.unchanged) from None
        self.done.append(name)


def known_revisions() -> tuple[set[str], str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config(None))  # type: ignore[arg-type]
    return {r.revision for r in script.walk_revisions()}, script.get_current_head()


def _schema_plan(revision: str) -> Optional[str]:
    """The revision to upgrade a staged copy to, None if it is current; refuses newer or unknown ones."""
    known, head = known_revisions()
    if revision not in known:
        raise BackupError(
            f"the backup's schema revision {revision!r} is newer than, or unknown to, this version of parkinglot "
            f"(newest known: {head}). Restore it with the parkinglot version that wrote it, or upgrade parkinglot")
    return None if revision == head else head


class _EvidenceCopy:
    """Copies the manifest's photos into the evidence folder; can undo exactly what it did."""

    def __init__(self, backup_dir: Path, root: Path) -> None:
        self.backup_dir = backup_dir
        self.root = root
        self.added: list[Path] = []
        self.replaced: list[tuple[Path, Path]] = []
        self.made_dirs: list[Path] = []
        self.present = 0

    def _mkdirs(self, folder: Path) -> None:
        missing = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for d in reversed(missing):
            d.mkdir()
            self.made_dirs.append(d)

    def run(self, entries: list[tuple[PurePosixPath, str]]) -> None:
        token = secrets.token_hex(4)
        for rel, sha in entries:
            src = self.backup_dir / "evidence" / rel
            dst = self.root / rel
            if dst.exists() and manifest_mod.sha256_file(dst) == sha:
                self.present += 1
                continue
            self._mkdirs(dst.parent)
            tmp = dst.parent / f".tmp-restore-{token}-{dst.name}"
            shutil.copyfile(src, tmp)
            if dst.exists():  # a damaged copy of the same photo: keep it aside until we are done
                aside = dst.parent / f".tmp-replaced-{token}-{dst.name}"
                os.replace(dst, aside)
                self.replaced.append((dst, aside))
            os.replace(tmp, dst)
            self.added.append(dst)

    def undo(self) -> None:
        for path in self.added:
            path.unlink(missing_ok=True)
        for dst, aside in self.replaced:
            os.replace(aside, dst)
        for d in reversed(self.made_dirs):
            try:
                d.rmdir()
            except OSError:
                pass

    def commit(self) -> None:
        for _dst, aside in self.replaced:
            aside.unlink(missing_ok=True)


def _stage_for(ctx: Context) -> Stage:
    url = make_url(ctx.settings["DATABASE_URL"])
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise BackupError("the target SQLite URL names no file")
        return SqliteStage(Path(url.database))
    return PostgresStage(ctx.settings["DATABASE_URL"])


def _check_staged(stage: Stage, recorded: dict[str, Any], upgrade_to: Optional[str], steps: _Steps) -> tuple[
        census.Census, int]:
    engine = make_engine(stage.url)
    try:
        with steps("compare with the manifest"):
            with engine.connect() as conn:
                staged = census.take(conn)
            problems = census.differences(staged, recorded)
            if problems:
                raise BackupError("; ".join(problems[:5]))
        if upgrade_to:
            with steps(f"upgrade the schema from {staged.revision} to {upgrade_to}"):
                migrate.upgrade(engine)
        with steps("audit verify"):
            with make_session_factory(engine)() as session:
                result = audit.verify(session)
            if not result.ok:
                raise BackupError(f"the audit trail is broken at event {result.first_broken_id}: {result.problem}")
        with steps("revenue roll-up"):
            with engine.connect() as conn:
                bad = revenue_rollup.differences(conn)
            if bad:
                raise BackupError(f"the revenue roll-up disagrees with the payments at {sum(map(len, bad.values()))} "
                                  f"rows (sites {sorted(bad)}); `parkinglot reports verify-rollup` shows them")
        return staged, result.checked
    finally:
        engine.dispose()


def restore(ctx: Context, backup_dir: Path, *, force: bool = False, passphrase: Optional[str] = None,
            ignore_key_mismatch: bool = False, keep_previous: Optional[bool] = None,
            progress: Optional[Callable[[str], None]] = None) -> RestoreResult:
    """Restore the backup in ``backup_dir`` into the context's database and evidence folder.

    ``keep_previous`` (default: when the target held data) keeps the replaced database
    beside it (``<file>.before-restore-<time>`` / ``<db>_before_restore_<time>``).
    Raises ``BackupError`` (``RestoreFailed`` naming the step) with the target unchanged.
    """
    backup_dir = Path(backup_dir)
    steps = _Steps(progress)
    with steps("read the manifest"):
        recorded = manifest_mod.read(backup_dir)
    with steps("check the files against the manifest"):
        manifest_mod.verify_files(backup_dir, recorded)
    backend = make_url(ctx.settings["DATABASE_URL"]).get_backend_name()
    with steps("check the backend"):
        if backend != recorded["backend"]:
            raise BackupError(f"the backup is of a {recorded['backend']} database; the target is {backend}")
    with steps("check the schema revision"):
        upgrade_to = _schema_plan(recorded["schema_revision"])
    with steps("check the keys"):
        key_plan = keys.plan(ctx.settings, recorded, backup_dir, passphrase=passphrase,
                             ignore_mismatch=ignore_key_mismatch)
    ctx.engine.dispose()
    with steps("locate the target"):
        stage = _stage_for(ctx)
    try:
        return _restore_into(ctx, stage, steps, backup_dir, recorded, backend, upgrade_to, key_plan, force,
                             keep_previous)
    finally:
        stage.close()


def _restore_into(ctx: Context, stage: Stage, steps: _Steps, backup_dir: Path, recorded: dict[str, Any],
                  backend: str, upgrade_to: Optional[str], key_plan: keys.KeyPlan, force: bool,
                  keep_previous: Optional[bool]) -> RestoreResult:
    with steps("check the target"):
        try:
            before = stage.census_of_target()
            holds_data = before is not None and before.holds_data
        except Exception as exc:  # noqa: BLE001 - an unreadable target is one that holds something
            holds_data, before = True, None
            if not force:
                raise BackupError(f"{stage.describe_target()} exists but cannot be read ({exc.__class__.__name__}); "
                                  "pass --force to replace it (it is kept aside, not deleted)") from None
        if holds_data and not force:
            raise BackupError(f"{stage.describe_target()} already holds data; pass --force to replace it "
                              "(the current database is kept aside until the restore has succeeded)")
    result = RestoreResult(backend, str(recorded.get("created_at", "")), recorded["schema_revision"], upgrade_to, {},
                           0, 0, 0, None, key_plan.note, steps.done)
    if key_plan.mismatch_ignored or not (recorded.get("keys") or {}).get("fingerprints"):
        result.warnings.append(key_plan.note)
    if recorded.get("evidence_missing"):
        result.warnings.append(f"{len(recorded['evidence_missing'])} photos were already missing when the backup "
                               "was taken (listed in its manifest)")
    swapped = False
    try:
        with steps("restore into a staging copy"):
            stage.load(backup_dir / manifest_mod.DATABASE_FILES[backend])
        with steps("integrity check"):
            stage.integrity()
        staged, result.audit_events = _check_staged(stage, recorded, upgrade_to, steps)
        result.tables = staged.tables
        with steps("swap the staging copy in"):
            stage.swap()
            swapped = True
    except BaseException:
        if not swapped:
            stage.discard()
        raise
    # From here on the target has changed: every later failure undoes it before reporting.
    copy = _EvidenceCopy(backup_dir, Path(ctx.settings["EVIDENCE_DIR"]))
    previous_keys: dict[str, Optional[bytes]] = {}
    try:
        with steps("install the keys"):
            if key_plan.install:
                previous_keys = keys.install(ctx.settings, key_plan.install)
                if "AUDIT_PLATE_KEY" in key_plan.install:
                    ctx.use_plate_key(str(ctx.settings["AUDIT_PLATE_KEY"]))
        with steps("copy the evidence photos"):
            copy.run(manifest_mod.evidence_entries(recorded))
        with steps("record the restore in the audit trail"):
            _audit_restore(ctx, recorded, result, key_plan)
    except BaseException as exc:
        try:
            copy.undo()
            if previous_keys:
                keys.undo_install(ctx.settings, previous_keys)
                ctx.use_plate_key(str(ctx.settings["AUDIT_PLATE_KEY"]))
            ctx.engine.dispose()
            stage.undo_swap()
        except Exception as undo_exc:  # noqa: BLE001 - say so plainly: this is the one case needing a human
            step = exc.step if isinstance(exc, RestoreFailed) else "undo"
            raise RestoreFailed(step, f"{getattr(exc, 'detail', exc)}; undoing the swap failed too "
                                f"({undo_exc.__class__.__name__}: {undo_exc}); the previous database is at "
                                f"{stage.previous}", unchanged=False) from None
        raise
    copy.commit()
    result.evidence_files, result.evidence_already_present = len(copy.added), copy.present
    result.previous_kept = stage.finish(holds_data if keep_previous is None else keep_previous)
    return result


def _audit_restore(ctx: Context, recorded: dict[str, Any], result: RestoreResult, key_plan: keys.KeyPlan) -> None:
    ctx.engine.dispose()
    with ctx.sessions() as session:
        audit.append(session, "backup.restored", "backup", recorded.get("created_at"), {
            "backup_created_at": recorded.get("created_at"),
            "backup_revision": recorded["schema_revision"],
            "upgraded_to": result.upgraded_to,
            "audit_head": recorded.get("audit_head"),
            "key_mismatch_ignored": key_plan.mismatch_ignored,
            "keys_installed": sorted(key_plan.install),
            "operator": operator_name(),
        }, actor=operator_actor())
        session.commit()
    ctx.engine.dispose()

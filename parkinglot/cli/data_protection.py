"""Data protection: retention, data-subject exports, backup and restore."""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import click

from ..context import Context
from .root import ctx_of, main


@contextmanager
def database_errors(ctx: Context) -> Iterator[None]:
    """A database that cannot be used, as a sentence: the driver's first line (password scrubbed),
    and what to run when the schema is not this version's (``db upgrade`` forgotten)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from ..backup.pgtools import scrub
    from ..records import migrate

    try:
        yield
    except SQLAlchemyError as exc:
        url = make_url(ctx.settings["DATABASE_URL"])
        first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["unknown error"])[0]
        hint = ""
        try:
            have, want = migrate.current_revision(ctx.engine), migrate.head_revision(ctx.engine)
            if have != want:
                hint = (f"; the database is at schema revision {have or 'none'}, this version needs {want}: "
                        "run `parkinglot db upgrade` first")
        except SQLAlchemyError:
            pass
        raise click.ClickException(f"cannot use the database: {scrub(first, url)}{hint}") from None


@main.group()
def retention() -> None:
    """Purge visitors' plates and photos after the retention period."""


@retention.command("run")
@click.option("--days", type=int, default=None,
              help="Keep this many days, at least 1 (default: the RETENTION_DAYS setting).")
@click.option("--apply", "apply_", is_flag=True, help="Really purge. Without it, only report (dry run).")
@click.pass_obj
def retention_run(obj: dict, days: Optional[int], apply_: bool) -> None:
    """Report (default) or purge what is past retention. Both are audited."""
    from ..db import transaction
    from ..records.errors import ParkingError
    from ..records.privacy import retention as retention_mod

    ctx = ctx_of(obj)
    try:
        period = retention_mod.check_days(days if days is not None else ctx.settings["RETENTION_DAYS"])
        with database_errors(ctx), transaction(ctx.sessions) as session:
            report = retention_mod.run(session, ctx.evidence, days=period, dry_run=not apply_)
    except ParkingError as exc:
        option = "--days" if days is not None else "the RETENTION_DAYS setting"
        raise click.ClickException(f"{option}: {exc.message}") from None
    click.echo(report.summary() + ("" if apply_ else "  (dry run: pass --apply to purge)"))


@main.command("export-plate")
@click.argument("plate")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--requested-by", required=True,
              help="Who asked and on whose behalf, e.g. 'the keeper, J. Doe, letter of 2026-11-30' (audited).")
@click.option("--operator", default=None, help="Who runs the export (default: your login name; audited).")
@click.pass_obj
def export_plate(obj: dict, plate: str, out_dir: Path, requested_by: str, operator: Optional[str]) -> None:
    """Export every record and photo of PLATE (a data-subject request) into OUT_DIR (new or empty)."""
    from ..db import transaction
    from ..operator import operator_actor, operator_name
    from ..records.errors import ParkingError
    from ..records.privacy.subject_export import write_folder

    ctx = ctx_of(obj)
    who = operator or operator_name()
    try:
        with database_errors(ctx), transaction(ctx.sessions) as session:
            counts = write_folder(session, ctx.evidence, plate, out_dir, requested_by=requested_by, operator=who,
                                  actor=operator_actor(who))
    except ParkingError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(json.dumps(counts))


_PASSPHRASE_HELP = ("A file whose first line is the passphrase that encrypts the instance keys in the backup "
                    "(or set $PARKINGLOT_BACKUP_PASSPHRASE). Never given on the command line.")


@main.command("backup")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--passphrase-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=_PASSPHRASE_HELP)
@click.pass_obj
def backup_cmd(obj: dict, out_dir: Path, passphrase_file: Optional[Path]) -> None:
    """Back up the database and evidence photos (with SHA-256 checksums) into OUT_DIR (new or empty)."""
    from ..backup import BackupError, backup
    from ..backup.keys import PASSPHRASE_ENV, read_passphrase

    try:
        result = backup(ctx_of(obj), out_dir, passphrase=read_passphrase(passphrase_file))
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backup of {result.backend} written to {result.path}: {result.files} files, {result.bytes} bytes, "
               f"{sum(result.tables.values())} rows in {len(result.tables)} tables")
    if result.evidence_missing:
        click.echo(f"warning: {result.evidence_missing} photos referenced by the database were missing "
                   "(listed in the manifest)", err=True)
    if not result.keys_included:
        click.echo("NOTE: the instance keys are NOT in this backup. Keep instance/audit_plate_key and "
                   "instance/secret_key (or your AUDIT_PLATE_KEY / SECRET_KEY settings) with your backups, or set "
                   f"${PASSPHRASE_ENV} to include them encrypted. Without the audit plate key, audit entries can "
                   "no longer be matched to plates after a restore.", err=True)


@main.command("restore")
@click.argument("backup_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace a database that holds data (it is kept aside, not deleted).")
@click.option("--passphrase-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=_PASSPHRASE_HELP)
@click.option("--ignore-key-mismatch", is_flag=True,
              help="Restore although the backup was made under another audit plate key (recorded in the audit).")
@click.pass_obj
def restore_cmd(obj: dict, backup_dir: Path, force: bool, passphrase_file: Optional[Path],
                ignore_key_mismatch: bool) -> None:
    """Check a backup, restore it into a staging copy, check that, and only then swap it in.

    Any failure leaves the current database and evidence folder as they were and names
    the step that failed. Stop the server before restoring.
    """
    from ..backup import BackupError, restore
    from ..backup.keys import read_passphrase

    ctx = ctx_of(obj)
    try:
        info = restore(ctx, backup_dir, force=force, passphrase=read_passphrase(passphrase_file),
                       ignore_key_mismatch=ignore_key_mismatch, progress=lambda step: click.echo(f"... {step}"))
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    upgraded = f", upgraded to {info.upgraded_to}" if info.upgraded_to else ""
    click.echo(f"restored {info.backend} backup of {info.backup_created_at} (schema {info.schema_revision}{upgraded}): "
               f"{sum(info.tables.values())} rows in {len(info.tables)} tables, audit trail intact over "
               f"{info.audit_events} events; {info.evidence_files} photos copied, "
               f"{info.evidence_already_present} already present; {info.keys}")
    for warning in info.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo("next: run `parkinglot retention run --apply`: the backup still holds what retention has purged "
               "since it was taken")
    if info.previous_kept:
        click.echo(f"the previous database is kept at {info.previous_kept}: delete it once you are satisfied "
                   "(it holds personal data the retention policy no longer covers)")

"""Data protection: retention, data-subject exports, backup and restore."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import click

from .root import ctx_of, main


@main.group()
def retention() -> None:
    """Purge visitors' plates and photos after the retention period."""


@retention.command("run")
@click.option("--days", type=int, default=None, help="Keep this many days (default: RETENTION_DAYS setting).")
@click.option("--apply", "apply_", is_flag=True, help="Really purge. Without it, only report (dry run).")
@click.pass_obj
def retention_run(obj: dict, days: Optional[int], apply_: bool) -> None:
    """Report (default) or purge what is past retention. Both are audited."""
    from ..db import transaction
    from ..records import retention as retention_mod

    ctx = ctx_of(obj)
    with transaction(ctx.sessions) as session:
        report = retention_mod.run(session, ctx.evidence, days=days or int(ctx.settings["RETENTION_DAYS"]),
                                   dry_run=not apply_)
    click.echo(report.summary() + ("" if apply_ else "  (dry run: pass --apply to purge)"))


@main.command("export-plate")
@click.argument("plate")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.pass_obj
def export_plate(obj: dict, plate: str, out_dir: Path) -> None:
    """Export every record and photo of PLATE (a data-subject request) into OUT_DIR."""
    from ..db import transaction
    from ..records.errors import ParkingError
    from ..records.subject_export import export_plate as run

    ctx = ctx_of(obj)
    try:
        with transaction(ctx.sessions) as session:
            counts = run(session, ctx.evidence, plate, out_dir)
    except ParkingError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(json.dumps(counts))


@main.command("backup")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.pass_obj
def backup_cmd(obj: dict, out_dir: Path) -> None:
    """Back up the database and evidence photos (with SHA-256 checksums) into OUT_DIR."""
    from ..backup import BackupError, backup

    try:
        result = backup(ctx_of(obj), out_dir)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backup of {result.backend} written to {result.path}: {result.files} files, {result.bytes} bytes")


@main.command("restore")
@click.argument("backup_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace an existing database.")
@click.pass_obj
def restore_cmd(obj: dict, backup_dir: Path, force: bool) -> None:
    """Verify a backup's checksums and restore it, then verify the audit trail."""
    from ..backup import BackupError, restore
    from ..records import audit as audit_mod

    ctx = ctx_of(obj)
    try:
        info = restore(ctx, backup_dir, force=force)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    with ctx.read_sessions() as session:
        result = audit_mod.verify(session)
    click.echo(f"restored {info['backend']} database (schema {info['schema_revision']}) and "
               f"{info['evidence_files']} evidence files; audit trail "
               + ("intact" if result.ok else f"BROKEN at event {result.first_broken_id}"))
    if not result.ok:
        sys.exit(1)

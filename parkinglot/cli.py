"""The ``parkinglot`` command: database, demo data, serving, audit, and operations."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import click

from .context import Context, build_context


def _ctx(obj: dict) -> Context:
    if "ctx" not in obj:
        obj["ctx"] = build_context()
    return obj["ctx"]


@click.group()
@click.option("--database-url", envvar="PARKINGLOT_DATABASE_URL", default=None,
              help="Overrides the instance configuration (same as $PARKINGLOT_DATABASE_URL).")
@click.pass_context
def main(click_ctx: click.Context, database_url: Optional[str]) -> None:
    """Parking lot and vehicle management."""
    click_ctx.ensure_object(dict)
    if database_url:
        click_ctx.obj["ctx"] = build_context({"DATABASE_URL": database_url})


# --- database ---------------------------------------------------------------------

@main.group()
def db() -> None:
    """Schema migrations (Alembic)."""


@db.command("upgrade")
@click.argument("revision", default="head")
@click.pass_obj
def db_upgrade(obj: dict, revision: str) -> None:
    """Migrate the database to REVISION (default: the latest)."""
    from .records import migrate

    ctx = _ctx(obj)
    migrate.upgrade(ctx.engine, revision)
    click.echo(f"database at revision {migrate.current_revision(ctx.engine)}")


@db.command("downgrade")
@click.argument("revision")
@click.pass_obj
def db_downgrade(obj: dict, revision: str) -> None:
    from .records import migrate

    ctx = _ctx(obj)
    migrate.downgrade(ctx.engine, revision)
    click.echo(f"database at revision {migrate.current_revision(ctx.engine)}")


@db.command("current")
@click.pass_obj
def db_current(obj: dict) -> None:
    from .records import migrate

    ctx = _ctx(obj)
    click.echo(f"current: {migrate.current_revision(ctx.engine)}  head: {migrate.head_revision(ctx.engine)}")


# --- demo -------------------------------------------------------------------------

@main.command()
@click.option("--if-empty", is_flag=True, help="Do nothing when a site already exists.")
@click.option("--stays", default=300, show_default=True, help="Historic stays to generate.")
@click.pass_obj
def demo(obj: dict, if_empty: bool, stays: int) -> None:
    """Load a demo site: lanes, a tariff, permits, users, devices and some history."""
    from .demo import load_demo

    ctx = _ctx(obj)
    summary = load_demo(ctx, history=stays, if_empty=if_empty)
    click.echo(summary)


# --- serving ----------------------------------------------------------------------

@main.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True)
@click.option("--workers", default=2, show_default=True, type=int)
def serve(bind: str, workers: int) -> None:
    """Serve the app with gunicorn (workers load the recogniser once, after fork)."""
    conf = Path(__file__).resolve().parent / "web" / "gunicorn_conf.py"
    args = [sys.executable, "-m", "gunicorn", "-c", str(conf), "--bind", bind, "--workers", str(workers),
            "parkinglot.web:create_app()"]
    os.execv(sys.executable, args)


# --- audit ------------------------------------------------------------------------

@main.group()
def audit() -> None:
    """The tamper-evident audit trail."""


@audit.command("verify")
@click.pass_obj
def audit_verify(obj: dict) -> None:
    """Check every link of the hash chain; exit 1 and name the first broken event."""
    from .records import audit as audit_mod

    ctx = _ctx(obj)
    with ctx.read_sessions() as session:
        result = audit_mod.verify(session)
    if result.ok:
        click.echo(f"audit trail intact: {result.checked} events verified")
        return
    click.echo(f"audit trail BROKEN at event {result.first_broken_id}: {result.problem} "
               f"({result.checked} events verified before it)", err=True)
    sys.exit(1)


# --- reports ----------------------------------------------------------------------

@main.group()
def reports() -> None:
    """Finance reports."""


@reports.command("verify-rollup")
@click.option("--site", "site_code", default=None, help="One site (by code); default every site.")
@click.option("--rebuild", is_flag=True, help="Rebuild the roll-up from the payments instead of checking it.")
@click.pass_obj
def reports_verify_rollup(obj: dict, site_code: Optional[str], rebuild: bool) -> None:
    """Check the daily revenue roll-up against a fresh sum of the payments; exit 1 on any difference."""
    from .db import transaction
    from .records import revenue_rollup, sites

    ctx = _ctx(obj)
    with transaction(ctx.sessions) as session:
        site_id = sites.get_site(session, site_code).id if site_code else None
        if rebuild:
            click.echo(f"revenue roll-up rebuilt: {revenue_rollup.rebuild(session, site_id)} rows")
            return
        bad = revenue_rollup.differences(session, site_id)
    if not bad:
        click.echo("revenue roll-up matches the payments")
        return
    for sid, keys in sorted(bad.items()):
        for (day, kind, method, lane, tariff), (have, want) in sorted(keys.items())[:20]:
            click.echo(f"site {sid} {day} {kind}/{method} lane {lane or '-'} tariff {tariff or '-'}: "
                       f"roll-up {have[0]} / {have[1]}, payments {want[0]} / {want[1]}", err=True)
        click.echo(f"site {sid}: {len(keys)} roll-up rows differ from the payments", err=True)
    sys.exit(1)


# --- devices ----------------------------------------------------------------------

@main.group()
def devices() -> None:
    """Lane controllers and their API keys."""


@devices.command("add")
@click.option("--site", "site_code", required=True)
@click.option("--name", required=True)
@click.pass_obj
def devices_add(obj: dict, site_code: str, name: str) -> None:
    """Register a controller; prints its API key once (only its hash is stored)."""
    from .db import transaction
    from .records import sites

    ctx = _ctx(obj)
    with transaction(ctx.sessions) as session:
        issued = sites.create_device(session, sites.get_site(session, site_code), name)
        click.echo(json.dumps({"device_id": issued.device.id, "api_key": issued.key}))


@devices.command("revoke")
@click.argument("device_id", type=int)
@click.pass_obj
def devices_revoke(obj: dict, device_id: int) -> None:
    from .db import transaction
    from .records import sites
    from .records.models import Device

    ctx = _ctx(obj)
    with transaction(ctx.sessions) as session:
        device = session.get(Device, device_id)
        if device is None:
            raise click.ClickException(f"no device {device_id}")
        sites.revoke_device(session, device)
    click.echo(f"device {device_id} revoked")


# --- stays ------------------------------------------------------------------------

@main.group()
def stays() -> None:
    """Parking sessions."""


@stays.command("expire")
@click.pass_obj
def stays_expire(obj: dict) -> None:
    """Close stays open past their site's maximum as expired, raising an alert each (run from cron)."""
    from sqlalchemy import select

    from .db import transaction
    from .records import stays as stays_mod
    from .records.models import Site

    ctx = _ctx(obj)
    total = 0
    with transaction(ctx.sessions) as session:
        for site in session.scalars(select(Site)).all():
            total += len(stays_mod.expire_overdue(session, site))
    click.echo(f"{total} stays expired")


# --- users ------------------------------------------------------------------------

@main.group()
def users() -> None:
    """Console users."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(["attendant", "supervisor", "finance", "admin"]), required=True)
@click.option("--site", "site_codes", multiple=True, help="Site code(s) the user works on (repeatable).")
@click.option("--name", "display_name", default="")
@click.password_option(prompt="Password", confirmation_prompt=True, envvar="PARKINGLOT_NEW_USER_PASSWORD")
@click.pass_obj
def users_add(obj: dict, username: str, role: str, site_codes: tuple[str, ...], display_name: str,
              password: str) -> None:
    """Create a console user (the password is stored hashed)."""
    from .db import transaction
    from .records import sites as sites_mod
    from .records import users as users_mod
    from .records.errors import ParkingError

    ctx = _ctx(obj)
    try:
        with transaction(ctx.sessions) as session:
            site_rows = [sites_mod.get_site(session, code) for code in site_codes]
            user = users_mod.create_user(session, username=username, password=password, role=role,
                                         sites=site_rows, display_name=display_name)
            click.echo(f"user {user.username} ({user.role}) created")
    except ParkingError as exc:
        raise click.ClickException(exc.message) from None


# --- recognition ------------------------------------------------------------------

@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--region", default="us", show_default=True, type=click.Choice(["us", "eu", "br"]))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image.")
@click.option("--burst", is_flag=True, help="Treat all IMAGES as frames of one vehicle (vote across them).")
def recognize(images: tuple[Path, ...], region: str, as_json: bool, burst: bool) -> None:
    """Read the plate in IMAGE(s) with the full pipeline (nothing is stored)."""
    from .lpr import images as images_mod
    from .lpr.pipeline import recognize as run

    groups = [list(images)] if burst else [[p] for p in images]
    failed = False
    for group in groups:
        name = ", ".join(str(p) for p in group)
        try:
            r = run([p.read_bytes() for p in group], region)
        except images_mod.ImageError as exc:
            failed = True
            if as_json:
                click.echo(json.dumps({"image": name, "error": exc.code, "message": str(exc)}))
            else:
                click.echo(f"{name}: error: {exc}", err=True)
            continue
        if as_json:
            click.echo(json.dumps({
                "image": name, "plate": r.text, "confidence": round(r.confidence, 4), "raw_text": r.raw_text,
                "box": [list(p) for p in r.box] if r.box else None, "reason": r.reason,
                "alternatives": [{"plate": t, "confidence": c} for t, c in r.alternatives],
                "timings_ms": {k: round(v, 2) for k, v in r.timings.items()}}))
        else:
            alts = ", ".join(t for t, _ in r.alternatives[:3])
            click.echo(f"{name}: {r.text or '(no plate: ' + (r.reason or '?') + ')'}  "
                       f"conf={r.confidence:.2f}  {r.timings.get('total_ms', 0):.0f} ms"
                       + (f"  alternatives: {alts}" if alts else ""))
    if failed:
        sys.exit(1)


@main.command("train-recognizer", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def train_recognizer(click_ctx: click.Context) -> None:
    """Fine-tune the plate recogniser (options are those of ``python -m parkinglot.lpr.train``)."""
    from .lpr.train import main as train_main

    sys.exit(train_main(list(click_ctx.args)))


# --- data protection and operations ----------------------------------------------

@main.group()
def retention() -> None:
    """Purge visitors' plates and photos after the retention period."""


@retention.command("run")
@click.option("--days", type=int, default=None, help="Keep this many days (default: RETENTION_DAYS setting).")
@click.option("--apply", "apply_", is_flag=True, help="Really purge. Without it, only report (dry run).")
@click.pass_obj
def retention_run(obj: dict, days: Optional[int], apply_: bool) -> None:
    """Report (default) or purge what is past retention. Both are audited."""
    from .db import transaction
    from .records import retention as retention_mod

    ctx = _ctx(obj)
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
    from .db import transaction
    from .records.errors import ParkingError
    from .records.subject_export import export_plate as run

    ctx = _ctx(obj)
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
    from .backup import BackupError, backup

    try:
        result = backup(_ctx(obj), out_dir)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backup of {result.backend} written to {result.path}: {result.files} files, {result.bytes} bytes")


@main.command("restore")
@click.argument("backup_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace an existing database.")
@click.pass_obj
def restore_cmd(obj: dict, backup_dir: Path, force: bool) -> None:
    """Verify a backup's checksums and restore it, then verify the audit trail."""
    from .backup import BackupError, restore
    from .records import audit as audit_mod

    ctx = _ctx(obj)
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


if __name__ == "__main__":  # pragma: no cover
    main()

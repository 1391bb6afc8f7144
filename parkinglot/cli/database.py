"""Schema migrations, demo data and serving."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .root import ctx_of, main


@main.group()
def db() -> None:
    """Schema migrations (Alembic)."""


@db.command("upgrade")
@click.argument("revision", default="head")
@click.pass_obj
def db_upgrade(obj: dict, revision: str) -> None:
    """Migrate the database to REVISION (default: the latest)."""
    from ..records import migrate

    ctx = ctx_of(obj)
    migrate.upgrade(ctx.engine, revision)
    click.echo(f"database at revision {migrate.current_revision(ctx.engine)}")


@db.command("downgrade")
@click.argument("revision")
@click.pass_obj
def db_downgrade(obj: dict, revision: str) -> None:
    from ..records import migrate

    ctx = ctx_of(obj)
    migrate.downgrade(ctx.engine, revision)
    click.echo(f"database at revision {migrate.current_revision(ctx.engine)}")


@db.command("current")
@click.pass_obj
def db_current(obj: dict) -> None:
    from ..records import migrate

    ctx = ctx_of(obj)
    click.echo(f"current: {migrate.current_revision(ctx.engine)}  head: {migrate.head_revision(ctx.engine)}")

@main.command()
@click.option("--if-empty", is_flag=True, help="Do nothing when a site already exists.")
@click.option("--stays", default=300, show_default=True, help="Historic stays to generate.")
@click.pass_obj
def demo(obj: dict, if_empty: bool, stays: int) -> None:
    """Load a demo site: lanes, a tariff, permits, users, devices and some history."""
    from ..demo import load_demo

    ctx = ctx_of(obj)
    summary = load_demo(ctx, history=stays, if_empty=if_empty)
    click.echo(summary)

@main.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True)
@click.option("--workers", default=2, show_default=True, type=int)
def serve(bind: str, workers: int) -> None:
    """Serve the app with gunicorn (workers load the recogniser once, after fork)."""
    conf = Path(__file__).resolve().parent.parent / "web" / "gunicorn_conf.py"
    args = [sys.executable, "-m", "gunicorn", "-c", str(conf), "--bind", bind, "--workers", str(workers),
            "parkinglot.web:create_app()"]
    os.execv(sys.executable, args)

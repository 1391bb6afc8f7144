"""Parking sessions."""
from __future__ import annotations

import click

from .root import ctx_of, main


@main.group()
def stays() -> None:
    """Parking sessions."""


@stays.command("expire")
@click.pass_obj
def stays_expire(obj: dict) -> None:
    """Close stays open past their site's maximum as expired, raising an alert each (run from cron)."""
    from sqlalchemy import select

    from ..db import transaction
    from ..records import stays as stays_mod
    from ..records.models import Site

    ctx = ctx_of(obj)
    total = 0
    with transaction(ctx.sessions) as session:
        for site in session.scalars(select(Site)).all():
            total += len(stays_mod.expire_overdue(session, site))
    click.echo(f"{total} stays expired")

"""Finance reports."""
from __future__ import annotations

import sys
from typing import Optional

import click

from .root import ctx_of, main


@main.group()
def reports() -> None:
    """Finance reports."""


@reports.command("verify-rollup")
@click.option("--site", "site_code", default=None, help="One site (by code); default every site.")
@click.option("--rebuild", is_flag=True, help="Rebuild the roll-up from the payments instead of checking it.")
@click.pass_obj
def reports_verify_rollup(obj: dict, site_code: Optional[str], rebuild: bool) -> None:
    """Check the daily revenue roll-up against a fresh sum of the payments; exit 1 on any difference."""
    from ..db import transaction
    from ..records import revenue_rollup, sites

    ctx = ctx_of(obj)
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

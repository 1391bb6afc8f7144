"""The tamper-evident audit trail."""
from __future__ import annotations

import sys

import click

from .root import ctx_of, main


@main.group()
def audit() -> None:
    """The tamper-evident audit trail."""


@audit.command("verify")
@click.pass_obj
def audit_verify(obj: dict) -> None:
    """Check every link of the hash chain; exit 1 and name the first broken event."""
    from ..records import audit as audit_mod

    ctx = ctx_of(obj)
    with ctx.read_sessions() as session:
        result = audit_mod.verify(session)
    if result.ok:
        click.echo(f"audit trail intact: {result.checked} events verified")
        return
    click.echo(f"audit trail BROKEN at event {result.first_broken_id}: {result.problem} "
               f"({result.checked} events verified before it)", err=True)
    sys.exit(1)

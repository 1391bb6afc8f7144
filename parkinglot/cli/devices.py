"""Lane controllers and their API keys."""
from __future__ import annotations

import json

import click

from .root import ctx_of, main


@main.group()
def devices() -> None:
    """Lane controllers and their API keys."""


@devices.command("add")
@click.option("--site", "site_code", required=True)
@click.option("--name", required=True)
@click.pass_obj
def devices_add(obj: dict, site_code: str, name: str) -> None:
    """Register a controller; prints its API key once (only its hash is stored)."""
    from ..db import transaction
    from ..records import sites

    ctx = ctx_of(obj)
    with transaction(ctx.sessions) as session:
        issued = sites.create_device(session, sites.get_site(session, site_code), name)
        click.echo(json.dumps({"device_id": issued.device.id, "api_key": issued.key}))


@devices.command("revoke")
@click.argument("device_id", type=int)
@click.pass_obj
def devices_revoke(obj: dict, device_id: int) -> None:
    from ..db import transaction
    from ..records import sites
    from ..records.models import Device

    ctx = ctx_of(obj)
    with transaction(ctx.sessions) as session:
        device = session.get(Device, device_id)
        if device is None:
            raise click.ClickException(f"no device {device_id}")
        sites.revoke_device(session, device)
    click.echo(f"device {device_id} revoked")

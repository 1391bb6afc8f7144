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
@click.option("--lane", "lane_code", default=None,
              help="Bind the key to this lane: it is refused (403) on every other lane.")
@click.option("--kind", type=click.Choice(["lane_controller", "pay_station"]), default="lane_controller",
              show_default=True, help="pay_station: a pay station or payment terminal (pay API only)")
@click.pass_obj
def devices_add(obj: dict, site_code: str, name: str, lane_code: str | None, kind: str) -> None:
    """Register a controller or pay station; prints its API key once (only its hash is stored)."""
    from ..db import transaction
    from ..operator import operator_actor
    from ..records import sites
    from ..records.errors import ParkingError

    ctx = ctx_of(obj)
    try:
        with transaction(ctx.sessions) as session:
            site = sites.get_site(session, site_code)
            lane = sites.get_lane(session, lane_code) if lane_code else None
            issued = sites.create_device(session, site, name, lane=lane, kind=kind, actor=operator_actor())
            click.echo(json.dumps({"device_id": issued.device.id, "kind": kind, "api_key": issued.key,
                                   "lane": lane_code}))
    except ParkingError as exc:
        raise click.ClickException(exc.message) from None


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

"""Lanes: add one, take one out of service, put it back."""
from __future__ import annotations

from typing import Optional

import click

from .root import clean_errors, ctx_of, main


@main.group()
def lanes() -> None:
    """Lanes (entries and exits) of a site."""


@lanes.command("add")
@click.argument("code")
@click.option("--site", "site_code", required=True)
@click.option("--direction", type=click.Choice(["entry", "exit"]), required=True)
@click.option("--name", default=None, help="Default: the code.")
@click.option("--zone", "zone_code", default=None, help="Code of one of the site's zones.")
@click.option("--driver", type=click.Choice(["simulated", "http_relay"]), default="simulated", show_default=True)
@click.option("--relay-url", default=None, help="http_relay only: the URL that opens the barrier.")
@click.option("--disabled", is_flag=True, help="Create it out of service (enable it when the controller is in).")
@click.pass_obj
def lanes_add(obj: dict, code: str, site_code: str, direction: str, name: Optional[str], zone_code: Optional[str],
              driver: str, relay_url: Optional[str], disabled: bool) -> None:
    """Add lane CODE (unique across all sites) to a site."""
    from ..barrier.drivers import make_driver
    from ..db import transaction
    from ..operator import operator_actor
    from ..records import sites
    from ..records.errors import InvalidInput

    config = {"url": relay_url} if relay_url else {}
    with clean_errors():
        try:
            make_driver(driver, config)
        except ValueError as exc:
            raise InvalidInput(f"{driver}: {exc} (give --relay-url)") from None
        ctx = ctx_of(obj)
        with transaction(ctx.sessions) as session:
            site = sites.get_site(session, site_code)
            zone = sites.get_zone(session, site, zone_code) if zone_code else None
            lane = sites.create_lane(session, site, code=code, name=name or code, direction=direction, zone=zone,
                                     driver=driver, driver_config=config, enabled=not disabled,
                                     actor=operator_actor())
            click.echo(f"lane {lane.code} ({direction}) added to site {site.code}"
                       + (", disabled" if disabled else ""))


def _switch(obj: dict, code: str, enabled: bool, reason: str) -> None:
    from ..db import transaction
    from ..operator import operator_actor
    from ..records import sites

    with clean_errors():
        ctx = ctx_of(obj)
        with transaction(ctx.sessions) as session:
            lane = sites.get_lane(session, code)
            changed = sites.set_lane_enabled(session, lane, enabled, reason=reason, actor=operator_actor())
    state = "enabled" if enabled else "disabled"
    click.echo(f"lane {code} {state}" if changed else f"lane {code} was already {state}")


@lanes.command("disable")
@click.argument("code")
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
@click.pass_obj
def lanes_disable(obj: dict, code: str, reason: str) -> None:
    """Take lane CODE out of service: its controller's events are refused (the barrier stays shut)."""
    _switch(obj, code, False, reason)


@lanes.command("enable")
@click.argument("code")
@click.option("--reason", default="", help="Why (kept in the audit trail).")
@click.pass_obj
def lanes_enable(obj: dict, code: str, reason: str) -> None:
    """Put lane CODE back in service."""
    _switch(obj, code, True, reason)


@main.group()
def zones() -> None:
    """Zones of a site (levels, decks), each with its own capacity."""


@zones.command("add")
@click.argument("code")
@click.option("--site", "site_code", required=True)
@click.option("--name", default=None, help="Default: the code.")
@click.option("--capacity", type=click.IntRange(min=0), default=None)
@click.pass_obj
def zones_add(obj: dict, code: str, site_code: str, name: Optional[str], capacity: Optional[int]) -> None:
    """Add zone CODE to a site (lanes name it with --zone)."""
    from ..db import transaction
    from ..operator import operator_actor
    from ..records import sites

    with clean_errors():
        ctx = ctx_of(obj)
        with transaction(ctx.sessions) as session:
            site = sites.get_site(session, site_code)
            zone = sites.create_zone(session, site, code, name or code, capacity, actor=operator_actor())
            click.echo(f"zone {zone.code} added to site {site.code}")

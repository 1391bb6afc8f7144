"""Console users."""
from __future__ import annotations

import click

from .root import ctx_of, main


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
    from ..db import transaction
    from ..records import sites as sites_mod
    from ..records import users as users_mod
    from ..records.errors import ParkingError

    ctx = ctx_of(obj)
    try:
        with transaction(ctx.sessions) as session:
            site_rows = [sites_mod.get_site(session, code) for code in site_codes]
            user = users_mod.create_user(session, username=username, password=password, role=role,
                                         sites=site_rows, display_name=display_name)
            click.echo(f"user {user.username} ({user.role}) created")
    except ParkingError as exc:
        raise click.ClickException(exc.message) from None

"""Console users.

A new user's password never goes on the command line (where the shell history and
``ps`` would keep it): it is asked for at a hidden prompt (getpass), or read from
``PARKINGLOT_NEW_USER_PASSWORD``, or from the first line of standard input with
``--password-stdin`` (for provisioning scripts).
"""
from __future__ import annotations

import os
import sys

import click

from .root import ctx_of, main

PASSWORD_ENV = "PARKINGLOT_NEW_USER_PASSWORD"
SITE_SCOPED_ROLES = ("attendant", "supervisor")  # always work at named sites
ALL_SITE_ROLES = ("finance", "admin")  # without --site they see every site


@main.group()
def users() -> None:
    """Console users."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    env = os.environ.get(PASSWORD_ENV)
    if env is not None:
        return env
    return click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(["attendant", "supervisor", "finance", "admin"]), required=True)
@click.option("--site", "site_codes", multiple=True,
              help="Site code(s) the user works on (repeatable); required for attendants and supervisors.")
@click.option("--name", "display_name", default="")
@click.option("--password-stdin", is_flag=True,
              help=f"Read the password from the first line of standard input (else ${PASSWORD_ENV}, else a prompt).")
@click.pass_obj
def users_add(obj: dict, username: str, role: str, site_codes: tuple[str, ...], display_name: str,
              password_stdin: bool) -> None:
    """Create a console user (the password is checked against the policy and stored hashed)."""
    from ..db import transaction
    from ..records import sites as sites_mod
    from ..records import users as users_mod
    from ..records.errors import ParkingError

    if role in SITE_SCOPED_ROLES and not site_codes:
        raise click.UsageError(f"a {role} works at named sites: give --site CODE (repeatable)")
    password = _read_password(password_stdin)
    ctx = ctx_of(obj)
    try:
        with transaction(ctx.sessions) as session:
            site_rows = [sites_mod.get_site(session, code) for code in site_codes]
            user = users_mod.create_user(session, username=username, password=password, role=role,
                                         sites=site_rows, display_name=display_name)
            click.echo(f"user {user.username} ({user.role}) created")
    except ParkingError as exc:
        raise click.ClickException(exc.message) from None
    if role in ALL_SITE_ROLES and not site_codes:
        click.echo(f"warning: {user.username} ({role}) may see and act on every site, including sites added "
                   "later; give --site CODE to limit them", err=True)

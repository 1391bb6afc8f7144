"""The root ``parkinglot`` command group and the application context its commands share."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import click

from ..config import ConfigError
from ..context import Context, build_context


def _build(overrides: Optional[dict] = None) -> Context:
    try:
        return build_context(overrides)
    except ConfigError as exc:  # a mistyped environment variable is a sentence, not a traceback
        raise click.ClickException(str(exc)) from None


def ctx_of(obj: dict) -> Context:
    """The application context for a command (built on first use, so ``--help`` stays cheap)."""
    if "ctx" not in obj:
        obj["ctx"] = _build()
    return obj["ctx"]


@contextmanager
def clean_errors() -> Iterator[None]:
    """A service's refusal (``ParkingError``) as a one-message error and exit status 1, never a traceback."""
    from ..records.errors import ParkingError

    try:
        yield
    except ParkingError as exc:
        raise click.ClickException(exc.message) from None


@click.group()
@click.option("--database-url", envvar="PARKINGLOT_DATABASE_URL", default=None,
              help="Overrides the instance configuration (same as $PARKINGLOT_DATABASE_URL).")
@click.pass_context
def main(click_ctx: click.Context, database_url: Optional[str]) -> None:
    """Parking lot and vehicle management."""
    click_ctx.ensure_object(dict)
    obj = click_ctx.obj
    click_ctx.call_on_close(lambda: obj["ctx"].close() if "ctx" in obj else None)  # no pooled sessions left behind
    if database_url:
        click_ctx.obj["ctx"] = _build({"DATABASE_URL": database_url})

"""Sites: applied from a site file (``site apply|export``) or set up one step at a time (``sites add|list``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import click

from .root import clean_errors, ctx_of, main


@main.group()
def site() -> None:
    """A whole site as one YAML file (see docs/site-file.md)."""


@site.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show what would change, change nothing.")
@click.option("--prune", is_flag=True, help="Disable lanes and revoke device keys that the file does not list.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (for provisioning scripts).")
@click.pass_obj
def site_apply(obj: dict, file: Path, dry_run: bool, prune: bool, as_json: bool) -> None:
    """Create or update the site FILE describes; prints what changed (a new device's key once)."""
    from ..db import transaction
    from ..operator import operator_actor
    from ..sitefile import service, spec

    with clean_errors():
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise click.ClickException(f"{file}: not UTF-8 text (byte {exc.start}); save the site file as UTF-8")
        sf = spec.parse(text, str(file))
        ctx = ctx_of(obj)
        with transaction(ctx.sessions) as session:
            applied = service.apply(session, sf, actor=operator_actor(), prune=prune)
            if dry_run:
                session.rollback()
    if as_json:
        click.echo(json.dumps({
            "site": sf.code, "dry_run": dry_run, "changes": [str(c) for c in applied.changes],
            "notes": list(applied.notes),
            "device_keys": [] if dry_run else [{"device_id": k.device_id, "name": k.name, "kind": k.kind,
                                                 "lane": k.lane, "api_key": k.key} for k in applied.keys]}))
        return
    for line in render_applied(applied, dry_run=dry_run):
        click.echo(line)


def render_applied(applied, *, dry_run: bool = False) -> list[str]:
    """What an apply did, as the lines an operator reads (keys are shown only for a real apply)."""
    if not applied.changes:
        lines = ["no changes"]
    else:
        lines = ["would change:" if dry_run else "changed:"] + [f"  {c}" for c in applied.changes]
    if applied.keys and not dry_run:
        lines.append("new device keys (shown this once; only a hash is stored - put each in its controller now):")
        lines += [f"  {k.name} (device {k.device_id}, {k.kind}, {'lane ' + k.lane if k.lane else 'any lane'}): {k.key}"
                  for k in applied.keys]
    lines += [f"note: {n}" for n in applied.notes]
    return lines


@site.command("export")
@click.argument("code")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of standard output.")
@click.pass_obj
def site_export(obj: dict, code: str, output: Optional[Path]) -> None:
    """Write site CODE as a site file (the format `site apply` reads; no device keys)."""
    from ..sitefile import service, spec

    with clean_errors():
        ctx = ctx_of(obj)
        with ctx.sessions() as session:
            text = spec.dump(service.export(session, code))
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"site {code} written to {output}")


@main.group()
def sites() -> None:
    """Sites, one step at a time (a site file does it all at once)."""


@sites.command("add")
@click.argument("code")
@click.option("--name", required=True)
@click.option("--timezone", required=True, help="IANA name, e.g. Europe/Paris.")
@click.option("--currency", required=True, help="ISO 4217 code, e.g. EUR.")
@click.option("--region", "regions", multiple=True, help="Plate region (repeatable; first is the main one). Default: us.")
@click.option("--capacity", type=click.IntRange(min=0), default=None)
@click.option("--kind", type=click.Choice(["public", "residential", "private"]), default="public", show_default=True)
@click.option("--visitors", type=click.Choice(["open", "attendant", "refuse"]), default=None,
              help="Unknown vehicles; default: open for public sites, attendant for residential, refuse for private.")
@click.pass_obj
def sites_add(obj: dict, code: str, name: str, timezone: str, currency: str, regions: tuple[str, ...],
              capacity: Optional[int], kind: str, visitors: Optional[str]) -> None:
    """Create a site (no lanes or tariff yet: `lanes add`, or a site file)."""
    from ..db import transaction
    from ..operator import operator_actor
    from ..records import sites as site_service

    with clean_errors():
        ctx = ctx_of(obj)
        with transaction(ctx.sessions) as session:
            created = site_service.create_site(session, code=code, name=name, timezone=timezone, currency=currency,
                                               plate_regions=list(regions) or None, capacity=capacity, kind=kind,
                                               visitors=visitors, actor=operator_actor())
            click.echo(f"site {created.code} created ({created.name}, {created.timezone}, {created.currency}, "
                       f"regions {','.join(created.plate_regions)}, visitors {created.visitors})")


@sites.command("list")
@click.pass_obj
def sites_list(obj: dict) -> None:
    """Every site: code, name, time zone, currency, lanes (enabled/all), default tariff."""
    from sqlalchemy import select

    from ..records.models import Site

    ctx = ctx_of(obj)
    with ctx.sessions() as session:
        rows = list(session.scalars(select(Site).order_by(Site.code)))
        if not rows:
            click.echo("no sites yet: `parkinglot sites add` or `parkinglot site apply FILE`")
            return
        for s in rows:
            enabled = sum(1 for ln in s.lanes if ln.enabled)
            click.echo(f"{s.code}\t{s.name}\t{s.timezone}\t{s.currency}\tlanes {enabled}/{len(s.lanes)}\t"
                       f"tariff {s.default_tariff_code or '-'}")

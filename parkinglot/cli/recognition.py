"""Plate recognition from the command line, and training."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .root import main


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--region", default="us", show_default=True, type=click.Choice(["us", "eu", "br"]))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image.")
@click.option("--burst", is_flag=True, help="Treat all IMAGES as frames of one vehicle (vote across them).")
def recognize(images: tuple[Path, ...], region: str, as_json: bool, burst: bool) -> None:
    """Read the plate in IMAGE(s) with the full pipeline (nothing is stored)."""
    from ..lpr import images as images_mod
    from ..lpr.pipeline import recognize as run

    groups = [list(images)] if burst else [[p] for p in images]
    failed = False
    for group in groups:
        name = ", ".join(str(p) for p in group)
        try:
            r = run([p.read_bytes() for p in group], region)
        except images_mod.ImageError as exc:
            failed = True
            if as_json:
                click.echo(json.dumps({"image": name, "error": exc.code, "message": str(exc)}))
            else:
                click.echo(f"{name}: error: {exc}", err=True)
            continue
        if as_json:
            click.echo(json.dumps({
                "image": name, "plate": r.text, "confidence": round(r.confidence, 4), "raw_text": r.raw_text,
                "box": [list(p) for p in r.box] if r.box else None, "reason": r.reason,
                "alternatives": [{"plate": t, "confidence": c} for t, c in r.alternatives],
                "timings_ms": {k: round(v, 2) for k, v in r.timings.items()}}))
        else:
            alts = ", ".join(t for t, _ in r.alternatives[:3])
            click.echo(f"{name}: {r.text or '(no plate: ' + (r.reason or '?') + ')'}  "
                       f"conf={r.confidence:.2f}  {r.timings.get('total_ms', 0):.0f} ms"
                       + (f"  alternatives: {alts}" if alts else ""))
    if failed:
        sys.exit(1)


@main.command("train-recognizer", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def train_recognizer(click_ctx: click.Context) -> None:
    """Fine-tune the plate recogniser (options are those of ``python -m parkinglot.lpr.train``)."""
    from ..lpr.train import main as train_main

    sys.exit(train_main(list(click_ctx.args)))

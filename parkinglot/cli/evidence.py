"""Evidence bundles: export one stay's (dispute's, alert's) record as a signed ZIP; verify one with no database."""
from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Optional

import click

from .root import ctx_of, main


@main.group()
def evidence() -> None:
    """Evidence bundles for courts, insurers and disputes."""


@evidence.command("export")
@click.option("--stay", "stay_id", type=int, help="The stay to export.")
@click.option("--dispute", "dispute_id", type=int, help="A dispute (its stay is exported with it).")
@click.option("--alert", "alert_id", type=int, help="An alert (with its read, and its stay if it has one).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, writable=True),
              help="The ZIP file to write (must not exist).")
@click.option("--by", "exported_by", default=None, help="Who exports it (recorded in the audit trail; "
              "default: the login name).")
@click.option("--reason", default="", help="Why (recorded in the audit trail).")
@click.pass_obj
def evidence_export(obj: dict, stay_id: Optional[int], dispute_id: Optional[int], alert_id: Optional[int],
                    output: str, exported_by: Optional[str], reason: str) -> None:
    """Write a verifiable evidence bundle; the export is audited and covered by a new signed checkpoint."""
    from ..evidence import export as bundles
    from ..evidence.signing import SigningKeyError
    from ..records import audit
    from ..records.errors import ParkingError

    chosen = [(k, v) for k, v in (("stay", stay_id), ("dispute", dispute_id), ("alert", alert_id)) if v is not None]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --stay, --dispute or --alert")
    out = Path(output)
    if out.exists():
        raise click.ClickException(f"{out} exists; choose a new file name")
    kind, ident = chosen[0]
    by = exported_by or getpass.getuser()
    try:
        blob, req, cp = bundles.export(ctx_of(obj), kind, ident, exported_by=by,
                                       actor=audit.Actor("cli", by[:64]), reason=reason)
    except (ParkingError, SigningKeyError) as exc:
        raise click.ClickException(getattr(exc, "message", None) or str(exc)) from None
    with open(out, "xb") as fh:
        fh.write(blob)
    click.echo(f"wrote {out} ({len(blob)} bytes): {kind} {ident}, audit events up to checkpoint {cp.seq} "
               f"({cp.count} events, signed {cp.at}, key {cp.key_id})")


@evidence.command("verify")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.option("--public-key", "public_key_file", type=click.Path(exists=True, dir_okay=False),
              help="The operator's published public key (PEM); default: the key inside the bundle.")
def evidence_verify(bundle: str, public_key_file: Optional[str]) -> None:
    """Check a bundle with no database: photo hashes, event hashes and links, signatures. Exit 1 on any failure."""
    from ..evidence.verify import verify_bundle

    pinned = Path(public_key_file).read_bytes() if public_key_file else None
    report = verify_bundle(bundle, public_key_pem=pinned)
    for note in report.notes:
        click.echo(f"note: {note}")
    if report.ok:
        click.echo(f"VERIFIED {bundle}:")
        for line in report.proves:
            click.echo(f"  - {line}")
        return
    click.echo(f"FAILED {bundle}:", err=True)
    for problem in report.problems:
        click.echo(f"  - {problem}", err=True)
    sys.exit(1)

"""The tamper-evident audit trail: verify it, sign a checkpoint of it, show the public key."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import click

from .root import ctx_of, main


@main.group()
def audit() -> None:
    """The tamper-evident audit trail."""


def _public_key(ctx, public_key_file: Optional[str]):
    """The pinned public key if given, else the instance key's public half (None if there is no key file)."""
    from ..evidence import signing

    try:
        if public_key_file:
            return signing.load_public_key(Path(public_key_file).read_bytes())
        key_file = Path(ctx.settings["AUDIT_SIGNING_KEY_FILE"])
        return ctx.signer.public if key_file.exists() else None
    except (OSError, signing.SigningKeyError) as exc:
        raise click.ClickException(str(exc)) from None


@audit.command("verify")
@click.option("--public-key", "public_key_file", type=click.Path(dir_okay=False),
              help="PEM public key to check signatures with (default: the instance's signing key).")
@click.option("--previous-key", "previous_key_files", multiple=True, type=click.Path(dir_okay=False),
              help="PEM public key of a retired signing key (repeatable; also AUDIT_PREVIOUS_PUBLIC_KEYS).")
@click.option("--log", "log_file", type=click.Path(dir_okay=False),
              help="Checkpoint log to compare with (default: AUDIT_CHECKPOINT_LOG).")
@click.pass_obj
def audit_verify(obj: dict, public_key_file: Optional[str], previous_key_files: tuple[str, ...],
                 log_file: Optional[str]) -> None:
    """Check the chain, its guards and every signed checkpoint (database and log); exit 1 on any problem."""
    from ..evidence import signing
    from ..records.trail.verify import verify_trail

    ctx = ctx_of(obj)
    key = _public_key(ctx, public_key_file)
    configured = [p for p in str(ctx.settings.get("AUDIT_PREVIOUS_PUBLIC_KEYS") or "").split(":") if p.strip()]
    try:
        previous = [signing.load_public_key(Path(p).read_bytes()) for p in [*configured, *previous_key_files]]
    except (OSError, signing.SigningKeyError) as exc:
        raise click.ClickException(f"previous public key: {exc}") from None
    log_path = Path(log_file or ctx.settings["AUDIT_CHECKPOINT_LOG"])
    with ctx.read_sessions() as session:
        report = verify_trail(session, key, log_path=log_path, previous_keys=previous)
    for note in report.notes:
        click.echo(f"note: {note}")
    if report.ok:
        tail = ""
        if report.latest is not None:
            tail = (f"; consistent with {report.checkpoints} signed checkpoint(s), the latest {report.latest.seq} "
                    f"at {report.latest.at} covering {report.latest.count} events")
        click.echo(f"audit trail intact: {report.events} events verified{tail}")
        return
    click.echo(f"audit trail BROKEN ({report.events} events verified):", err=True)
    for problem in report.problems:
        click.echo(f"  - {problem}", err=True)
    if report.first_contradicted is not None:
        cp = report.first_contradicted
        click.echo(f"first contradicted checkpoint: {cp.seq} (signed at {cp.at}, {cp.count} events, "
                   f"head {cp.head_hash})", err=True)
    sys.exit(1)


@audit.command("checkpoint")
@click.pass_obj
def audit_checkpoint(obj: dict) -> None:
    """Sign a checkpoint of the trail's tip now (stored, logged, sent to the witness)."""
    from ..evidence.signing import SigningKeyError

    ctx = ctx_of(obj)
    try:
        cp, new = ctx.checkpointer.checkpoint()
    except SigningKeyError as exc:
        raise click.ClickException(str(exc)) from None
    verb = "signed" if new else "unchanged since"
    click.echo(f"checkpoint {cp.seq} {verb}: {cp.count} events, head {cp.head_hash}, at {cp.at}, key {cp.key_id}")


@audit.command("public-key")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the PEM to this file as well.")
@click.pass_obj
def audit_public_key(obj: dict, output: Optional[str]) -> None:
    """Print the public key that checkpoints and evidence bundles are signed with (creating the key pair if needed)."""
    from ..evidence.signing import SigningKeyError

    ctx = ctx_of(obj)
    try:
        signer = ctx.signer
    except SigningKeyError as exc:
        raise click.ClickException(str(exc)) from None
    if output:
        Path(output).write_text(signer.public_pem)
    click.echo(f"# {signer.key_id}")
    click.echo(signer.public_pem, nl=False)

"""Verify an evidence bundle with nothing but the ZIP (and, if given, the published public key).

Imports nothing from ``parkinglot.records``: it runs where there is no database. Checks,
in order: the bundle's signature over its manifest, every file against the manifest's
SHA-256 (no file missing, none added), every photo against the SHA-256 stored when it was
taken, every audit event's hash and link up to the signed checkpoint, the checkpoint's
signature and that it names the segment's last event. Says what that proves, or exactly
what fails.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .chain import Checkpoint, check_segment
from .signing import SigningKeyError, fingerprint, load_public_key, verify_signature

BUNDLE_FORMAT = "parkinglot-evidence-bundle/1"
MANIFEST, MANIFEST_SIG, PUBLIC_KEY, EVENTS = "manifest.json", "manifest.sig", "public_key.pem", "audit/events.jsonl"
MAX_MEMBER_BYTES = 512 * 1024 * 1024


@dataclass
class BundleReport:
    ok: bool
    problems: list[str] = field(default_factory=list)
    proves: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _read(zf: zipfile.ZipFile, name: str) -> Optional[bytes]:
    try:
        info = zf.getinfo(name)
    except KeyError:
        return None
    if info.file_size > MAX_MEMBER_BYTES:
        raise ValueError(f"{name} is implausibly large ({info.file_size} bytes)")
    return zf.read(info)


def verify_bundle(path: str | Path, *, public_key_pem: Optional[bytes] = None) -> BundleReport:
    """Check the bundle at ``path``; ``public_key_pem`` pins the key it must be signed with."""
    try:
        with zipfile.ZipFile(path) as zf:
            return _verify(zf, public_key_pem)
    except (zipfile.BadZipFile, OSError) as exc:
        return BundleReport(False, [f"not a readable ZIP file: {exc}"])
    except ValueError as exc:
        return BundleReport(False, [str(exc)])
    except (KeyError, TypeError, AttributeError, IndexError) as exc:  # a hand-made manifest or event line
        return BundleReport(False, [f"the bundle is malformed (an entry lacks or mistypes {exc!s}): "
                                    "it was altered after export"])


def _verify(zf: zipfile.ZipFile, pinned: Optional[bytes]) -> BundleReport:
    problems: list[str] = []
    notes: list[str] = []
    manifest_bytes, sig = _read(zf, MANIFEST), _read(zf, MANIFEST_SIG)
    if manifest_bytes is None:
        return BundleReport(False, [f"{MANIFEST} is missing: this is not an evidence bundle"])
    try:
        manifest: dict[str, Any] = json.loads(manifest_bytes)
        if manifest.get("format") != BUNDLE_FORMAT:
            return BundleReport(False, [f"unknown bundle format {manifest.get('format')!r}"])
        files: dict[str, str] = dict(manifest["files"])
        cp = Checkpoint.from_dict(manifest["checkpoint"])
    except (ValueError, KeyError, TypeError) as exc:
        return BundleReport(False, [f"{MANIFEST} is unreadable: {exc}"])

    # the key: the bundle's own, unless the caller pinned the published one
    try:
        bundled_pem = _read(zf, PUBLIC_KEY)
        key = load_public_key(pinned if pinned is not None else (bundled_pem or b""))
    except SigningKeyError as exc:
        return BundleReport(False, [f"public key: {exc}"])
    key_id = fingerprint(key)
    if pinned is not None and bundled_pem is not None:
        try:
            if fingerprint(load_public_key(bundled_pem)) != key_id:
                problems.append(f"{PUBLIC_KEY} in the bundle is not the published key {key_id}")
        except SigningKeyError as exc:
            problems.append(f"{PUBLIC_KEY}: {exc}")
    elif pinned is None:
        notes.append(f"signatures were checked with the key in the bundle, {key_id}: compare it with the "
                     "operator's published key (or pass --public-key)")

    # 1. the bundle as exported: manifest signature, then every file against it
    if sig is None or not verify_signature(key, manifest_bytes, sig.decode("ascii", "replace").strip()):
        problems.append(f"{MANIFEST} does not match its signature ({MANIFEST_SIG}): the bundle was altered "
                        "after export, or signed by another key")
    present = {n for n in zf.namelist() if not n.endswith("/")} - {MANIFEST, MANIFEST_SIG}
    for name in sorted(present - set(files)):
        problems.append(f"{name} is in the bundle but not in its manifest (added after export)")
    contents: dict[str, bytes] = {}
    for name, want in sorted(files.items()):
        data = _read(zf, name)
        if data is None:
            problems.append(f"{name} is missing from the bundle")
            continue
        got = hashlib.sha256(data).hexdigest()
        if got != want:
            problems.append(f"{name} was ALTERED: its SHA-256 is {got}, the manifest says {want}")
        contents[name] = data

    # 2. photos against the hash stored when they were taken
    photos = manifest.get("photos", [])
    for p in photos:
        data = contents.get(p["file"])
        if data is not None and hashlib.sha256(data).hexdigest() != p["sha256"]:
            problems.append(f"photo {p['file']} does not match the SHA-256 stored when it was taken ({p['sha256']})")

    # 3. the chain segment up to the signed checkpoint
    events: list[dict[str, Any]] = []
    try:
        events = [json.loads(line) for line in contents.get(EVENTS, b"").decode("utf-8").splitlines() if line.strip()]
    except ValueError as exc:
        problems.append(f"{EVENTS} is unreadable: {exc}")
    if not events:
        problems.append(f"{EVENTS} holds no audit events")
    else:
        segment_problem = check_segment(events)
        if segment_problem:
            problems.append(f"audit chain: {segment_problem}")
        last = events[-1]
        if int(last["id"]) != cp.last_id or last["hash"] != cp.head_hash:
            problems.append(f"audit chain: the segment ends at event {last['id']} ({str(last['hash'])[:16]}…) "
                            f"but checkpoint {cp.seq} signed event {cp.last_id} ({cp.head_hash[:16]}…)")
    if not verify_signature(key, cp.message(), cp.signature):
        problems.append(f"checkpoint {cp.seq}: the signature does not match (forged or altered)")
    if cp.key_id != key_id:
        problems.append(f"checkpoint {cp.seq} names key {cp.key_id}, the bundle is checked with {key_id}")
    by_id = {int(e["id"]): e for e in events}
    involved = [int(i) for i in manifest.get("involved_events", [])]
    for i in involved:
        if i not in by_id:
            problems.append(f"audit event {i} is listed as involved but is not in the chain segment")

    if problems:
        return BundleReport(False, problems, notes=notes)
    return BundleReport(True, [], _proves(manifest, cp, [by_id[i] for i in involved], events, key_id), notes)


def _photo_events(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The first verified event that names each photo's SHA-256 (the lane decision it was taken for)."""
    named: dict[str, dict[str, Any]] = {}
    for ev in events:
        try:
            data = json.loads(ev["data"])
        except ValueError:
            continue
        for sha in data.get("photos", []) if isinstance(data, dict) else []:
            named.setdefault(sha, ev)
    return named


def _proves(manifest: dict[str, Any], cp: Checkpoint, involved: list[dict[str, Any]],
            segment: list[dict[str, Any]], key_id: str) -> list[str]:
    photos = manifest.get("photos", [])
    named = _photo_events(involved)
    bound = [p for p in photos if p["sha256"] in named]
    times = sorted(e["at"] for e in involved) + sorted(named[p["sha256"]]["at"] for p in bound)
    span = f"{min(times)} and {max(times)}" if times else "unknown times"
    lines = [f"these {len(bound)} photo(s) and {len(involved)} audit event(s) were recorded between {span} "
             f"and not altered since checkpoint {cp.seq} signed at {cp.at} (key {key_id}); "
             f"the chain segment checked: events {segment[0]['id']}–{segment[-1]['id']}"]
    for p in bound:
        ev = named[p["sha256"]]
        lines.append(f"photo {p['file']} (read {p['read_id']}) is named by audit event {ev['id']} "
                     f"({ev['action']}) at {ev['at']}")
    for p in photos:
        if p not in bound:
            lines.append(f"photo {p['file']} (read {p['read_id']}) matches the SHA-256 stored for it, but no audit "
                         "event names it (taken before photos were audited): it is vouched for by the export "
                         "signature only")
    lines.append(f"the other records (reads, fee, payments) are as the server exported them at "
                 f"{manifest['exported_at']} for {manifest['exported_by']} (bundle signature)")
    for p in manifest.get("purged", []):
        when = p.get("purged_at") or "a time not recorded"
        lines.append(f"removed by retention at {when}: {p['what']}")
    return lines

"""Evidence bundles: one stay's record (or a dispute's or an alert's, with its stay) as a ZIP
that can be verified without the database (``evidence.verify``).

The bundle holds the original photos (their SHA-256 as stored), the reads, decisions,
barrier commands, the fee breakdown with the tariff version it used, payments and
refunds, alerts and disputes, the audit events about them and the chain segment from the
first of them to a signed checkpoint, that checkpoint, the public key, and a printable
HTML summary. The export is itself an audit event (who, what, when) and is committed,
then a checkpoint is signed that covers it, before the bundle is built: so every bundle
ends at a checkpoint, and the export can never happen unrecorded.

What retention purged (a read's plate and photos, the stay's plate) is not in the bundle;
``purged`` says what and when, from the retention run's own audit event.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional, Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ..billing import fees
from ..billing.tariff_model import TariffError
from ..records import audit
from ..records.errors import Forbidden, InvalidInput, NotFound
from ..records.evidence import CONTENT_TYPES, EvidenceStore
from ..records.models import (Alert, AuditEvent, BarrierCommand, Decision, Dispute, Evidence, Lane, ParkingSession,
                              Payment, PlateRead, ReadFrame, Site, TariffVersion)
from ..records.privacy.retention import PURGED
from ..records.privacy.subject_export import _row
from ..records.types import utcnow
from .chain import Checkpoint, event_record
from .signing import Signer
from .summary import render_summary

BUNDLE_FORMAT = "parkinglot-evidence-bundle/1"
KINDS = ("stay", "dispute", "alert")
MANIFEST, MANIFEST_SIG, PUBLIC_KEY, CHECKPOINT, RECORDS, EVENTS, SUMMARY = (
    "manifest.json", "manifest.sig", "public_key.pem", "checkpoint.json", "records.json", "audit/events.jsonl",
    "summary.html")


@dataclass(frozen=True)
class ExportRequest:
    """A checked request: the subject exists, is at one of the caller's sites; the export is audited."""

    kind: str
    ident: int
    site_id: int
    exported_by: str


def _subject(session: Session, kind: str, ident: Any):
    if kind not in KINDS:
        raise InvalidInput(f"export a stay, a dispute or an alert, not {kind!r}")
    try:
        ident = int(ident)
    except (TypeError, ValueError):
        raise InvalidInput(f"a {kind} id is a whole number, not {ident!r}") from None
    model = {"stay": ParkingSession, "dispute": Dispute, "alert": Alert}[kind]
    obj = session.get(model, ident) if 0 < ident < 2 ** 63 else None
    if obj is None:
        raise NotFound(f"there is no {kind} {ident}")
    return obj


def prepare(session: Session, kind: str, ident: Any, *, exported_by: str, actor: audit.Actor,
            site_ids: Optional[Sequence[int]] = None, reason: str = "") -> ExportRequest:
    """Check the subject (404/403) and audit the export by a named person (caller commits)."""
    if not (exported_by or "").strip():
        raise InvalidInput("an evidence export is made by a named person")
    obj = _subject(session, kind, ident)
    if site_ids is not None and obj.site_id not in site_ids:
        raise Forbidden(f"that {kind} belongs to a site you have no access to")
    audit.append(session, "evidence.exported", kind, obj.id,
                 {"by": exported_by, "reason": (reason or "")[:200]}, actor=actor, site_id=obj.site_id)
    return ExportRequest(kind, obj.id, obj.site_id, exported_by)


# --- gathering -------------------------------------------------------------------------------------

@dataclass
class Gathered:
    site: Site
    stay: Optional[ParkingSession]
    reads: list[PlateRead] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    commands: list[BarrierCommand] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    disputes: list[Dispute] = field(default_factory=list)
    tariff: Optional[TariffVersion] = None
    fee: Optional[dict[str, Any]] = None
    fee_error: Optional[str] = None
    photos: list[dict[str, Any]] = field(default_factory=list)  # {evidence, read_id, role}
    purged: list[dict[str, Any]] = field(default_factory=list)
    event_ids: set[int] = field(default_factory=set)


def _by_ids(session: Session, model, ids) -> list:
    ids = sorted({i for i in ids if i is not None})
    return list(session.scalars(select(model).where(model.id.in_(ids)).order_by(model.id))) if ids else []


def _retention_runs(session: Session) -> list[tuple[datetime, AuditEvent]]:
    runs = []
    for ev in session.scalars(select(AuditEvent).where(AuditEvent.action == "retention.purged").order_by(AuditEvent.id)):
        try:
            runs.append((datetime.fromisoformat(json.loads(ev.data)["cutoff"]), ev))
        except (KeyError, ValueError, TypeError):
            continue
    return runs


def _purged_by(runs: list[tuple[datetime, AuditEvent]], when: Optional[datetime]) -> Optional[AuditEvent]:
    """The retention run that purged a record of ``when``: the first whose cutoff passed it."""
    if when is None:
        return None
    return next((ev for cutoff, ev in runs if cutoff > when), None)


def gather(session: Session, req: ExportRequest, *, now: Optional[datetime] = None) -> Gathered:
    obj = _subject(session, req.kind, req.ident)
    stay = obj if req.kind == "stay" else (session.get(ParkingSession, obj.session_id) if obj.session_id else None)
    g = Gathered(site=session.get(Site, req.site_id), stay=stay)
    read_ids: set[Optional[int]] = set()
    if req.kind == "alert":
        g.alerts.append(obj)
        read_ids.add(obj.read_id)
    if stay is not None:
        read_ids |= {stay.entry_read_id, stay.exit_read_id}
        g.alerts += [a for a in session.scalars(select(Alert).where(Alert.session_id == stay.id).order_by(Alert.id))
                     if a not in g.alerts]
        g.disputes = list(session.scalars(select(Dispute).where(Dispute.session_id == stay.id).order_by(Dispute.id)))
        g.payments = list(session.scalars(select(Payment).where(Payment.session_id == stay.id).order_by(Payment.id)))
        g.tariff = session.get(TariffVersion, stay.tariff_version_id) if stay.tariff_version_id else None
        try:
            status = fees.fee_status(session, g.site, stay, stay.exited_at or now or utcnow())
            g.fee = {"total_minor": status.total_minor, "paid_minor": status.paid_minor, "due_minor": status.due_minor,
                     "currency": status.currency, "priced_until": (stay.exited_at or now or utcnow()).isoformat(),
                     "quote": status.quote.to_dict() if status.quote is not None else None}
        except TariffError as exc:
            g.fee_error = str(exc)
    read_ids |= {a.read_id for a in g.alerts}
    decision_cond = [Decision.read_id.in_([i for i in read_ids if i is not None] or [-1])]
    if stay is not None:
        decision_cond.append(Decision.session_id == stay.id)
    g.decisions = list(session.scalars(select(Decision).where(or_(*decision_cond)).order_by(Decision.id)))
    read_ids |= {d.read_id for d in g.decisions}
    g.reads = _by_ids(session, PlateRead, read_ids)
    if g.decisions:
        g.commands = list(session.scalars(select(BarrierCommand).where(
            BarrierCommand.decision_id.in_([d.id for d in g.decisions])).order_by(BarrierCommand.id)))
    _photos_and_purges(session, g)
    g.event_ids = _involved_events(session, req, g)
    return g


def _photos_and_purges(session: Session, g: Gathered) -> None:
    runs = _retention_runs(session)
    seen: set[str] = set()
    for read in g.reads:
        frames = list(session.scalars(select(ReadFrame.evidence_sha256).where(ReadFrame.read_id == read.id)
                                      .order_by(ReadFrame.position)))
        shas = frames + [s for s in [read.evidence_sha256] if s and s not in frames]
        for sha in shas:
            ev = session.get(Evidence, sha)
            if ev is None or sha in seen:
                continue
            seen.add(sha)
            if ev.purged_at is not None:
                g.purged.append({"what": f"photo {sha[:16]}… of read {read.id}", "read_id": read.id,
                                 "purged_at": ev.purged_at.isoformat()})
                continue
            g.photos.append({"evidence": ev, "read_id": read.id, "lane_id": read.lane_id})
        if read.no_plate_reason == PURGED:
            run = _purged_by(runs, read.received_at)
            g.purged.append({"what": f"read {read.id}: plate, raw text, ticket, box and photos",
                             "read_id": read.id, "purged_at": run.at.isoformat() if run else None,
                             "event_id": run.id if run else None})
    stay = g.stay
    if stay is not None and not stay.plate and stay.status != "open":
        run = _purged_by(runs, stay.exited_at or stay.entered_at)
        g.purged.append({"what": f"stay {stay.id}: plate and ticket", "stay_id": stay.id,
                         "purged_at": run.at.isoformat() if run else None, "event_id": run.id if run else None})


def _involved_events(session: Session, req: ExportRequest, g: Gathered) -> set[int]:
    wanted = {
        "stay": [g.stay.id] if g.stay is not None else [],
        "decision": [d.id for d in g.decisions],
        "barrier_command": [c.id for c in g.commands],
        "payment": [p.id for p in g.payments],
        "alert": [a.id for a in g.alerts],
        "dispute": [d.id for d in g.disputes],
    }
    conds = [and_(AuditEvent.entity_type == kind, AuditEvent.entity_id.in_([str(i) for i in ids]))
             for kind, ids in wanted.items() if ids]
    conds.append(and_(AuditEvent.action == "evidence.exported", AuditEvent.entity_type == req.kind,
                      AuditEvent.entity_id == str(req.ident)))
    ids = set(session.scalars(select(AuditEvent.id).where(or_(*conds))))
    ids |= {p["event_id"] for p in g.purged if p.get("event_id")}
    return ids


# --- writing ---------------------------------------------------------------------------------------

def _json(data: Any) -> bytes:
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")


def _records(g: Gathered, lanes: dict[int, Lane]) -> dict[str, Any]:
    return {
        "site": {"code": g.site.code, "name": g.site.name, "timezone": g.site.timezone, "currency": g.site.currency},
        "lanes": {str(i): {"code": lane.code, "name": lane.name, "direction": lane.direction} for i, lane in lanes.items()},
        "stay": _row(g.stay) if g.stay is not None else None,
        "reads": [_row(r, skip=("request_digest",)) for r in g.reads],
        "decisions": [_row(d) for d in g.decisions],
        "barrier_commands": [_row(c) for c in g.commands],
        "fee": g.fee, "fee_error": g.fee_error,
        "tariff_version": _row(g.tariff) if g.tariff is not None else None,
        "payments": [_row(p) for p in g.payments if p.kind == "payment"],
        "refunds": [_row(p) for p in g.payments if p.kind != "payment"],
        "alerts": [_row(a) for a in g.alerts],
        "disputes": [_row(d) for d in g.disputes],
        "purged": g.purged,
    }


def build(session: Session, store: EvidenceStore, signer: Signer, req: ExportRequest, cp: Checkpoint, *,
          now: Optional[datetime] = None) -> bytes:
    """The ZIP for an audited, checkpointed export (read-only on ``session``)."""
    now = now or utcnow()
    g = gather(session, req, now=now)
    g.event_ids = {i for i in g.event_ids if i <= cp.last_id}
    if not g.event_ids:
        raise InvalidInput("the export's audit event is not covered by the checkpoint; export again")
    first = min(g.event_ids)
    lanes = {lane.id: lane for lane in session.scalars(select(Lane).where(Lane.site_id == g.site.id))}
    files: dict[str, bytes] = {}
    photos = []
    for p in g.photos:
        ev: Evidence = p["evidence"]
        name = f"photos/{ev.sha256}{CONTENT_TYPES.get(ev.content_type, '.bin')}"
        try:
            files[name] = store.read(ev.sha256, ev.content_type)
        except NotFound:
            g.purged.append({"what": f"photo {ev.sha256[:16]}… of read {p['read_id']} (file missing from the store)",
                             "read_id": p["read_id"], "purged_at": None})
            continue
        photos.append({"file": name, "sha256": ev.sha256, "content_type": ev.content_type, "read_id": p["read_id"],
                       "lane": lanes[p["lane_id"]].code if p["lane_id"] in lanes else None,
                       "width": ev.width, "height": ev.height})
    segment = [event_record(ev) for ev in session.scalars(
        select(AuditEvent).where(AuditEvent.id >= first, AuditEvent.id <= cp.last_id).order_by(AuditEvent.id)
        .execution_options(yield_per=2000))]
    files[EVENTS] = "".join(json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n" for e in segment).encode("utf-8")
    records = _records(g, lanes)
    files[RECORDS] = _json(records)
    files[CHECKPOINT] = _json(cp.to_dict())
    files[PUBLIC_KEY] = signer.public_pem.encode("ascii")
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "subject": {"kind": req.kind, "id": req.ident},
        "site": records["site"],
        "exported_at": now.isoformat(), "exported_by": req.exported_by,
        "key_id": signer.key_id,
        "photos": photos,
        "involved_events": sorted(g.event_ids),
        "segment": {"first_id": first, "last_id": cp.last_id},
        "checkpoint": cp.to_dict(),
        "purged": g.purged,
    }
    by_id = {e["id"]: e for e in segment}
    files[SUMMARY] = render_summary(manifest, records, [by_id[i] for i in sorted(g.event_ids)]).encode("utf-8")
    manifest["files"] = {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())}
    manifest_bytes = _json(manifest)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST, manifest_bytes)
        zf.writestr(MANIFEST_SIG, signer.sign(manifest_bytes))
        for name, data in sorted(files.items()):
            zf.writestr(name, data, compress_type=zipfile.ZIP_STORED if name.startswith("photos/") else None)
    return buf.getvalue()


def export(ctx: Any, kind: str, ident: Any, *, exported_by: str, actor: audit.Actor,
           site_ids: Optional[Sequence[int]] = None, reason: str = "") -> tuple[bytes, ExportRequest, Checkpoint]:
    """Audit the export (committed), sign a checkpoint that covers it, then build the bundle.

    ``ctx``: the application context (sessions, evidence store, checkpointer). Runs its
    own short transactions, like the dispatcher: the audit record must be committed
    before a checkpoint can cover it.
    """
    with ctx.sessions() as session:
        req = prepare(session, kind, ident, exported_by=exported_by, actor=actor, site_ids=site_ids, reason=reason)
        session.commit()
    cp, _ = ctx.checkpointer.checkpoint()
    with ctx.read_sessions() as session:
        blob = build(session, ctx.evidence, ctx.signer, req, cp)
        session.rollback()
    return blob, req, cp


def filename(req: ExportRequest) -> str:
    return f"evidence-{req.kind}-{req.ident}-{utcnow().strftime('%Y%m%dT%H%M%SZ')}.zip"

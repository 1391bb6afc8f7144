"""Everything stored about one plate, for a data-subject access request, and nothing about anyone else.

``collect`` gathers the subject's records: reads, the decisions made on them, stays,
payments, alerts, disputes, permits, visitor passes, hotlist entries and locks. It adds the
reads of the same car under a look-alike plate that an attendant paired with a stay of the
subject's (a confirmed look-alike exit; a car admitted or let out by hand with the lane's read),
marked as such, and leaves those reads out of the look-alike plate's own export; it leaves out
what would name other people (the candidate plates of other cars in a decision, the other
vehicles on a shared permit). The photo list is built from the exported reads, never by
listing a folder. ``write_folder`` (CLI, into a new or empty folder only) and ``write_zip``
(console) write it; both audit who asked, on whose behalf, and who ran it (the plate only
as a digest).
"""
from __future__ import annotations

import io
import json
import shutil
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ... import plates
from .. import audit, matching
from ..errors import InvalidInput
from ..evidence import EvidenceStore
from ..models import (Alert, Decision, Dispute, Evidence, HotlistEntry, ParkingSession, Payment, Permit,
                      PermitVehicle, PlateRead, ReadFrame, Site, VehicleLock, VisitorPass)

LINKED = "attendant_confirmed_exit"
LINKED_ENTRY = "attendant_confirmed_entry"


def _row(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    out = {}
    for col in obj.__table__.columns:
        if col.key in skip:
            continue
        v = getattr(obj, col.key)
        if isinstance(v, (datetime, date)):
            v = v.isoformat()
        elif isinstance(v, Decimal):
            v = str(v)
        out[col.key] = v
    return out


def requester(text: str) -> str:
    """Who asked and on whose behalf, as the operator recorded it (required)."""
    text = " ".join((text or "").split())
    if len(text) < 3:
        raise InvalidInput("say who asked for this export and on whose behalf (at least 3 characters)")
    if len(text) > 200:
        raise InvalidInput("the requester must fit in 200 characters")
    return text


@dataclass
class SubjectRecords:
    plate: str
    data: dict[str, Any]
    photos: list[Evidence] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.data.items() if isinstance(v, list)}


def _in_sites(column, site_ids: Optional[Sequence[int]], *, shared: bool = False):
    if site_ids is None:
        return True
    cond = column.in_(list(site_ids) or [-1])
    return or_(column.is_(None), cond) if shared else cond


def _linked_reads(session: Session, stays: Iterable[ParkingSession], plate: str) -> list[tuple[PlateRead, str]]:
    """Reads of the subject's car under another plate, with how they are linked: a stay's entry or
    exit read whose plate is not the stay's. Only an attendant pairs those (a confirmed look-alike
    match, a car admitted or let out by hand with the lane's read), so they are the subject's car.

    ``confirm_match`` records the held read as the stay's exit read; for stays confirmed before
    it did, the same rule (``matching.held_read_for``) finds it from the stay's exit time.
    """
    out: dict[int, tuple[PlateRead, str]] = {}
    for stay in stays:
        exit_read = session.get(PlateRead, stay.exit_read_id) if stay.exit_read_id else None
        if (exit_read is None and stay.closed_reason == "attendant_confirmed" and stay.exit_lane_id is not None
                and stay.exited_at is not None):
            exit_read = matching.held_read_for(session, stay, stay.exit_lane_id, stay.exited_at)
        entry_read = session.get(PlateRead, stay.entry_read_id) if stay.entry_read_id else None
        for read, how in ((entry_read, LINKED_ENTRY), (exit_read, LINKED)):
            if read is not None and read.plate and read.plate != plate:
                out[read.id] = (read, how)
    return sorted(out.values(), key=lambda pair: pair[0].id)


def _paired_with_another_car(session: Session, reads: Sequence[PlateRead], chunk: int = 500) -> set[int]:
    """The reads (ids) under this plate that an attendant paired with a stay of another plate (as its
    entry or exit read): their photos show that other car, so they are its records, not this plate's.
    One query per ``chunk`` reads (the read columns of a stay carry no index)."""
    plate_of = {r.id: r.plate for r in reads}
    ids = sorted(plate_of)
    out: set[int] = set()
    for i in range(0, len(ids), chunk):
        part = ids[i:i + chunk]
        for entry_id, exit_id, stay_plate in session.execute(
                select(ParkingSession.entry_read_id, ParkingSession.exit_read_id, ParkingSession.plate)
                .where(or_(ParkingSession.entry_read_id.in_(part), ParkingSession.exit_read_id.in_(part)),
                       ParkingSession.plate != "")):
            out.update(rid for rid in (entry_id, exit_id) if rid in plate_of and plate_of[rid] != stay_plate)
    return out


def _decision(decision: Decision) -> dict[str, Any]:
    row = _row(decision)
    response = dict(row.get("response") or {})
    response.pop("candidates", None)  # other vehicles' plates, offered to the attendant
    row["response"] = response
    return row


def collect(session: Session, plate: str, *, site_ids: Optional[Sequence[int]] = None) -> SubjectRecords:
    """The subject's records (of ``site_ids`` only, when given)."""
    try:
        plate = plates.validate(plate)
    except plates.PlateError as exc:
        raise InvalidInput(str(exc)) from None
    reads = list(session.scalars(select(PlateRead).where(PlateRead.plate == plate,
                                                         _in_sites(PlateRead.site_id, site_ids))
                                 .order_by(PlateRead.id)))
    others = _paired_with_another_car(session, reads)
    reads = [r for r in reads if r.id not in others]
    stays = list(session.scalars(select(ParkingSession).where(ParkingSession.plate == plate,
                                                              _in_sites(ParkingSession.site_id, site_ids))
                                 .order_by(ParkingSession.id)))
    linked = _linked_reads(session, stays, plate)
    stay_ids = [s.id for s in stays] or [-1]
    all_reads = reads + [read for read, _ in linked]
    decisions = {d.read_id: d for d in session.scalars(
        select(Decision).where(Decision.read_id.in_([r.id for r in all_reads] or [-1])))}
    permits = list(session.scalars(select(Permit).join(PermitVehicle, PermitVehicle.permit_id == Permit.id)
                                   .where(PermitVehicle.plate == plate, _in_sites(Permit.site_id, site_ids))
                                   .order_by(Permit.id)))

    def read_entry(r: PlateRead, linked_by: Optional[str]) -> dict[str, Any]:
        entry = _row(r)
        if linked_by:
            entry["linked_by"] = linked_by
            entry["note"] = (f"read as {r.plate}; an attendant confirmed it as the "
                             f"{'entry' if linked_by == LINKED_ENTRY else 'exit'} of a stay of {plate}")
        d = decisions.get(r.id)
        entry["decision"] = _decision(d) if d is not None else None
        return entry

    data: dict[str, Any] = {
        "plate": plate,
        "exported_at": datetime.now().astimezone().isoformat(),
        "about": ("Every record this parking system holds about this plate. Reads marked linked_by "
                  f"'{LINKED}' or '{LINKED_ENTRY}' were read under a look-alike plate and confirmed by an "
                  "attendant as this car."),
        "reads": [read_entry(r, None) for r in reads] + [read_entry(r, how) for r, how in linked],
        "stays": [_row(s) for s in stays],
        "payments": [_row(p) for p in session.scalars(select(Payment).where(Payment.session_id.in_(stay_ids))
                                                       .order_by(Payment.id))],
        "disputes": [_row(d) for d in session.scalars(select(Dispute).where(Dispute.session_id.in_(stay_ids))
                                                       .order_by(Dispute.id))],
        "alerts": [_row(a) for a in session.scalars(
            select(Alert).where(or_(Alert.plate == plate, Alert.session_id.in_(stay_ids)),
                                _in_sites(Alert.site_id, site_ids)).order_by(Alert.id))],
        "permits": [{**_row(p), "vehicles": [plate],
                     "other_vehicles_on_permit": sum(1 for v in p.vehicles if v.plate != plate)} for p in permits],
        "visitor_passes": [_row(v) for v in session.scalars(
            select(VisitorPass).where(VisitorPass.plate == plate, _in_sites(VisitorPass.site_id, site_ids)))],
        "hotlist": [_row(h) for h in session.scalars(
            select(HotlistEntry).where(HotlistEntry.plate == plate,
                                       _in_sites(HotlistEntry.site_id, site_ids, shared=True)))],
        "vehicle_locks": [_row(v) for v in session.scalars(
            select(VehicleLock).where(VehicleLock.plate == plate, _in_sites(VehicleLock.site_id, site_ids)))],
    }
    read_ids = [r.id for r in all_reads]
    shas = {r.evidence_sha256 for r in all_reads if r.evidence_sha256}
    if read_ids:
        shas |= set(session.scalars(select(ReadFrame.evidence_sha256).where(ReadFrame.read_id.in_(read_ids))))
    photos = list(session.scalars(select(Evidence).where(Evidence.sha256.in_(shas or {""}),
                                                         Evidence.purged_at.is_(None)).order_by(Evidence.sha256)))
    return SubjectRecords(plate, data, photos)


def _with_photo_list(records: SubjectRecords, store: EvidenceStore) -> list[tuple[str, Path]]:
    """(name in the export, source path) of the photos present on disk; recorded in the data."""
    files = []
    for ev in records.photos:
        src = store.path_for(ev.sha256, ev.content_type)
        if src.exists():
            files.append((f"photos/{src.name}", src))
    records.data["photos"] = [name for name, _ in files]
    return files


def _audit(session: Session, records: SubjectRecords, *, requested_by: str, operator: str, actor: audit.Actor,
           site_codes: Optional[list[str]], form: str) -> None:
    audit.append(session, "subject.exported", "plate", None, {
        "plate": records.plate, "requested_by": requested_by, "operator": operator, "format": form,
        "sites": site_codes or "all", "counts": records.counts()}, actor=actor)


def _site_codes(session: Session, site_ids: Optional[Sequence[int]]) -> Optional[list[str]]:
    if site_ids is None:
        return None
    return list(session.scalars(select(Site.code).where(Site.id.in_(list(site_ids) or [-1])).order_by(Site.code)))


def write_folder(session: Session, store: EvidenceStore, plate: str, out_dir: Path, *, requested_by: str,
                 operator: str, actor: audit.Actor = audit.SYSTEM,
                 site_ids: Optional[Sequence[int]] = None) -> dict[str, int]:
    """Write the export into ``out_dir`` (created, or an existing *empty* folder); counts per kind."""
    requested_by = requester(requested_by)
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InvalidInput(f"{out_dir} is not an empty folder; export into a new one "
                           "(an export must hold one subject's records only)")
    records = collect(session, plate, site_ids=site_ids)
    created = not out_dir.exists()
    try:
        (out_dir / "photos").mkdir(parents=True, exist_ok=True)
        for name, src in _with_photo_list(records, store):
            shutil.copyfile(src, out_dir / name)
        (out_dir / "records.json").write_text(json.dumps(records.data, indent=2, default=str, ensure_ascii=False))
    except BaseException:
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        else:
            for child in out_dir.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    _audit(session, records, requested_by=requested_by, operator=operator, actor=actor,
           site_codes=_site_codes(session, site_ids), form="folder")
    return records.counts()


def write_zip(session: Session, store: EvidenceStore, plate: str, *, requested_by: str, operator: str,
              actor: audit.Actor, site_ids: Optional[Sequence[int]] = None) -> tuple[bytes, str, dict[str, int]]:
    """The export as a ZIP (``records.json`` and ``photos/``), for the console; audited.
    Returns the ZIP, the plate as normalised, and the counts per kind."""
    requested_by = requester(requested_by)
    records = collect(session, plate, site_ids=site_ids)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, src in _with_photo_list(records, store):
            zf.write(src, name, compress_type=zipfile.ZIP_STORED)
        zf.writestr("records.json", json.dumps(records.data, indent=2, default=str, ensure_ascii=False),
                    compress_type=zipfile.ZIP_DEFLATED)
    _audit(session, records, requested_by=requested_by, operator=operator, actor=actor,
           site_codes=_site_codes(session, site_ids), form="zip")
    return buf.getvalue(), records.plate, records.counts()

"""Everything stored about one plate, for a data-subject access request.

Writes a folder with ``records.json`` (reads, stays, payments, alerts, disputes,
permits, visitor passes, hotlist entries, locks) and the photos, and audits that
the export happened (who asked is recorded; the plate only as a digest).
"""
from __future__ import annotations

import json
import shutil
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from .. import plates
from . import audit
from .errors import InvalidInput
from .evidence import EvidenceStore
from .models import (Alert, Dispute, Evidence, HotlistEntry, ParkingSession, Payment, Permit, PermitVehicle,
                     PlateRead, ReadFrame, VehicleLock, VisitorPass)


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


def export_plate(session: Session, store: EvidenceStore, plate: str, out_dir: Path, *,
                 actor: audit.Actor = audit.SYSTEM) -> dict[str, int]:
    """Write the export for ``plate`` into ``out_dir`` (created); returns counts per kind."""
    try:
        plate = plates.validate(plate)
    except plates.PlateError as exc:
        raise InvalidInput(str(exc)) from None
    out_dir = Path(out_dir)
    (out_dir / "photos").mkdir(parents=True, exist_ok=True)
    reads = session.scalars(select(PlateRead).where(PlateRead.plate == plate).order_by(PlateRead.id)).all()
    stays = session.scalars(select(ParkingSession).where(ParkingSession.plate == plate)
                            .order_by(ParkingSession.id)).all()
    stay_ids = [s.id for s in stays]
    read_ids = [r.id for r in reads]
    payments = session.scalars(select(Payment).where(Payment.session_id.in_(stay_ids))).all() if stay_ids else []
    disputes = session.scalars(select(Dispute).where(Dispute.session_id.in_(stay_ids))).all() if stay_ids else []
    alerts = session.scalars(select(Alert).where(or_(Alert.plate == plate, Alert.session_id.in_(stay_ids or [-1]))))
    permits = session.scalars(select(Permit).join(PermitVehicle, PermitVehicle.permit_id == Permit.id)
                              .where(PermitVehicle.plate == plate)).all()
    data = {
        "plate": plate,
        "exported_at": datetime.now().astimezone().isoformat(),
        "reads": [_row(r) for r in reads],
        "stays": [_row(s) for s in stays],
        "payments": [_row(p) for p in payments],
        "disputes": [_row(d) for d in disputes],
        "alerts": [_row(a) for a in alerts],
        "permits": [{**_row(p), "vehicles": [v.plate for v in p.vehicles]} for p in permits],
        "visitor_passes": [_row(v) for v in session.scalars(select(VisitorPass).where(VisitorPass.plate == plate))],
        "hotlist": [_row(h) for h in session.scalars(select(HotlistEntry).where(HotlistEntry.plate == plate))],
        "vehicle_locks": [_row(v) for v in session.scalars(select(VehicleLock).where(VehicleLock.plate == plate))],
    }
    shas = {r.evidence_sha256 for r in reads if r.evidence_sha256}
    if read_ids:
        shas |= set(session.scalars(select(ReadFrame.evidence_sha256).where(ReadFrame.read_id.in_(read_ids))))
    photos = 0
    for ev in session.scalars(select(Evidence).where(Evidence.sha256.in_(shas), Evidence.purged_at.is_(None))):
        src = store.path_for(ev.sha256, ev.content_type)
        if src.exists():
            shutil.copyfile(src, out_dir / "photos" / src.name)
            photos += 1
    data["photos"] = sorted(p.name for p in (out_dir / "photos").iterdir())
    (out_dir / "records.json").write_text(json.dumps(data, indent=2, default=str, ensure_ascii=False))
    counts = {k: len(v) for k, v in data.items() if isinstance(v, list)}
    audit.append(session, "subject.exported", "plate", None, {"plate": plate, "counts": counts}, actor=actor)
    return counts

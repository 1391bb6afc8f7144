"""Permits and visitor passes.

A permit is versioned: an edit, suspension or renewal writes a new row that
supersedes the current one, so the terms a stay was admitted under can always
be shown. Validity hours are wall-clock windows in the site's time zone.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Optional, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, exists, select
from sqlalchemy.orm import Session, selectinload

from .. import plates
from ..billing.tariff import PermitHours, TariffError
from ..billing.tariff_model import WEEKDAYS
from . import audit
from .errors import Conflict, InvalidInput, NotFound
from .models import Permit, PermitVehicle, Site, VisitorPass
from .types import utcnow


def validate_hours(hours: Optional[Sequence[dict[str, Any]]]) -> Optional[list[dict[str, Any]]]:
    """``[{"days": "mon-fri", "from": "07:00", "to": "19:00"}]`` (the tariff engine's format; a
    window may run past midnight); None or empty means all hours."""
    if not hours:
        return None
    try:
        return [PermitHours.from_dict(h).to_dict() for h in hours]
    except (TariffError, AttributeError) as exc:
        raise InvalidInput(f"invalid permit hours: {exc}") from None


def within_hours(hours: Optional[Sequence[dict[str, Any]]], at: datetime, tz: str) -> bool:
    """Whether ``at`` falls inside the permit's local hours (windows may cross midnight)."""
    if not hours:
        return True
    local = at.astimezone(ZoneInfo(tz))
    minute = local.hour * 60 + local.minute
    today = WEEKDAYS[local.weekday()]
    yesterday = WEEKDAYS[(local.weekday() - 1) % 7]
    for window in hours:
        ph = PermitHours.from_dict(window)
        if ph.start_min < ph.end_min:
            if today in ph.days and ph.start_min <= minute < ph.end_min:
                return True
        else:  # overnight: the evening part today, the morning part from yesterday's window
            if (today in ph.days and minute >= ph.start_min) or (yesterday in ph.days and minute < ph.end_min):
                return True
    return False


def permit_status(permit: Permit, at: datetime, tz: str) -> str:
    """valid | suspended | expired | not_yet_valid | outside_hours (cancelled counts as expired)."""
    if permit.status == "suspended":
        return "suspended"
    if permit.status == "cancelled" or at >= permit.valid_to:
        return "expired"
    if at < permit.valid_from:
        return "not_yet_valid"
    if not within_hours(permit.hours, at, tz):
        return "outside_hours"
    return "valid"


def pass_status(vp: VisitorPass, at: datetime) -> str:
    if vp.revoked_at is not None:
        return "revoked"
    if at < vp.valid_from:
        return "not_yet_valid"
    if at >= vp.valid_to:
        return "expired"
    return "valid"


@dataclass(frozen=True)
class CredentialHit:
    kind: str  # permit | visitor_pass
    id: int
    status: str
    rate: Optional[str] = None
    lapsed_at: Optional[datetime] = None  # when a lapsed credential stopped holding


_PREFERENCE = {"valid": 0, "outside_hours": 1, "not_yet_valid": 2, "suspended": 3, "expired": 4, "revoked": 5}


# Built once: every entry with a plate asks. Every version of a permit counts: a plate taken
# off a permit (or a cancelled one) is a withdrawn credential, not an unknown car.
_PERMIT_VERSIONS_NAMING = (select(Permit)
                           .join(PermitVehicle, PermitVehicle.permit_id == Permit.id)
                           .where(Permit.site_id == bindparam("site_id"), PermitVehicle.plate == bindparam("plate")))
_PASSES_NAMING = select(VisitorPass).where(VisitorPass.site_id == bindparam("site_id"),
                                           VisitorPass.plate == bindparam("plate"))
# Most cars at an entry have neither: one round trip says so, and only what exists is loaded.
PERMIT_NAMES_PLATE = exists(_PERMIT_VERSIONS_NAMING.with_only_columns(Permit.id))  # binds site_id, plate
PASS_NAMES_PLATE = exists(_PASSES_NAMING.with_only_columns(VisitorPass.id))
_NAMED_BY = select(PERMIT_NAMES_PLATE, PASS_NAMES_PLATE)


def _permit_hits(permits: Sequence[Permit], plate: str, at: datetime, tz: str) -> list[CredentialHit]:
    """One hit per permit number: the current version's status if it still names the plate,
    else "revoked" since the plate was taken off (the version that dropped it began then)."""
    by_number: dict[str, list[Permit]] = {}
    for p in permits:
        by_number.setdefault(p.number, []).append(p)
    hits = []
    for versions in by_number.values():
        current = next((p for p in versions if p.superseded_at is None), None)
        if current is None:  # named only by superseded versions: withdrawn from this plate
            last = max(versions, key=lambda p: p.version)
            hits.append(CredentialHit("permit", last.id, "revoked", last.rate, last.superseded_at))
            continue
        status = permit_status(current, at, tz)
        lapsed_at = None
        if status == "expired":
            lapsed_at = current.created_at if current.status == "cancelled" else current.valid_to
        hits.append(CredentialHit("permit", current.id, status, current.rate, lapsed_at))
    return hits


def _pass_hit(vp: VisitorPass, at: datetime) -> CredentialHit:
    status = pass_status(vp, at)
    lapsed_at = {"revoked": vp.revoked_at, "expired": vp.valid_to}.get(status)
    return CredentialHit("visitor_pass", vp.id, status, None, lapsed_at)


def credential_for(session: Session, site: Site, plate: str, at: datetime) -> Optional[CredentialHit]:
    """The best permit or visitor pass naming ``plate`` at ``site`` at server time ``at``.

    A valid one wins. A credential that lapsed (expired, revoked, cancelled, or the plate
    taken off it) counts for the site's ``lapsed_credential_days`` after it lapsed, so the
    car goes to an attendant instead of the visitor path; older ones are forgotten.
    """
    if not plate:
        return None
    params = {"site_id": site.id, "plate": plate}
    has_permit, has_pass = session.execute(_NAMED_BY, params).one()
    hits = _permit_hits(session.scalars(_PERMIT_VERSIONS_NAMING, params).all(), plate, at, site.timezone) \
        if has_permit else []
    if has_pass:
        hits += [_pass_hit(vp, at) for vp in session.scalars(_PASSES_NAMING, params).all()]
    horizon = at - timedelta(days=site.lapsed_credential_days)
    hits = [h for h in hits if h.lapsed_at is None or h.lapsed_at >= horizon]
    if not hits:
        return None
    return min(hits, key=lambda h: (_PREFERENCE[h.status], -(h.lapsed_at or at).timestamp()))


def _plates(vehicles: Sequence[str]) -> list[str]:
    out = []
    for v in vehicles:
        try:
            out.append(plates.validate(v))
        except plates.PlateError as exc:
            raise InvalidInput(str(exc)) from None
    if not out:
        raise InvalidInput("a permit must name at least one vehicle")
    return sorted(set(out))


def current_permit(session: Session, site_id: int, number: str) -> Permit:
    permit = session.scalar(
        select(Permit).options(selectinload(Permit.vehicles))
        .where(Permit.site_id == site_id, Permit.number == number, Permit.superseded_at.is_(None))
    )
    if permit is None:
        raise NotFound(f"unknown permit {number!r}")
    return permit


def create_permit(
    session: Session,
    site: Site,
    *,
    number: str,
    holder: str,
    vehicles: Sequence[str],
    valid_from: datetime,
    valid_to: datetime,
    hours: Optional[Sequence[dict[str, Any]]] = None,
    rate: Optional[str] = None,
    user_id: Optional[int] = None,
) -> Permit:
    number = number.strip()
    if not number:
        raise InvalidInput("a permit needs a number")
    if valid_to <= valid_from:
        raise InvalidInput("a permit must end after it starts")
    exists = session.scalar(
        select(Permit.id).where(Permit.site_id == site.id, Permit.number == number, Permit.superseded_at.is_(None))
    )
    if exists:
        raise Conflict(f"permit {number!r} already exists; edit it instead")
    permit = Permit(
        site_id=site.id, number=number, version=1, holder=holder.strip(), status="active",
        valid_from=valid_from, valid_to=valid_to, hours=validate_hours(hours),
        rate=rate, created_by=user_id,
        vehicles=[PermitVehicle(plate=p) for p in _plates(vehicles)],
    )
    session.add(permit)
    session.flush()
    audit.append(session, "permit.created", "permit", permit.number, _snapshot(permit),
                 actor=audit.Actor.user(user_id) if user_id else audit.SYSTEM, site_id=site.id)
    return permit


def _snapshot(p: Permit) -> dict[str, Any]:
    return {"id": p.id, "version": p.version, "holder": p.holder, "status": p.status,
            "valid_from": p.valid_from, "valid_to": p.valid_to, "hours": p.hours,
            "rate": p.rate, "vehicles": [v.plate for v in p.vehicles]}


def revise_permit(session: Session, site: Site, number: str, *, user_id: Optional[int], action: str = "edited",
                  **changes: Any) -> Permit:
    """Write a new version of the permit with ``changes`` (holder, vehicles, validity, hours,
    status, rate); the previous version is kept, marked superseded."""
    old = current_permit(session, site.id, number)
    now = utcnow()
    vehicles = _plates(changes.pop("vehicles")) if "vehicles" in changes else [v.plate for v in old.vehicles]
    allowed = {"holder", "valid_from", "valid_to", "hours", "status", "rate"}
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(sorted(unknown))}")
    if "hours" in changes:
        changes["hours"] = validate_hours(changes["hours"])
    fields = {f: getattr(old, f) for f in allowed} | changes
    if fields["valid_to"] <= fields["valid_from"]:
        raise InvalidInput("a permit must end after it starts")
    if fields["status"] not in ("active", "suspended", "cancelled"):
        raise InvalidInput(f"unknown permit status {fields['status']!r}")
    old.superseded_at = now
    session.flush()
    new = Permit(site_id=site.id, number=old.number, version=old.version + 1, supersedes_id=old.id,
                 created_by=user_id, vehicles=[PermitVehicle(plate=p) for p in vehicles], **fields)
    session.add(new)
    session.flush()
    audit.append(session, f"permit.{action}", "permit", new.number, {**_snapshot(new), "previous_id": old.id},
                 actor=audit.Actor.user(user_id) if user_id else audit.SYSTEM, site_id=site.id)
    return new


def permit_history(session: Session, site_id: int, number: str) -> list[Permit]:
    return list(session.scalars(
        select(Permit).options(selectinload(Permit.vehicles))
        .where(Permit.site_id == site_id, Permit.number == number).order_by(Permit.version.desc())
    ))


def create_visitor_pass(session: Session, site: Site, *, plate: str, valid_from: datetime, valid_to: datetime,
                        permit_id: Optional[int] = None, note: str = "", user_id: Optional[int] = None) -> VisitorPass:
    try:
        plate = plates.validate(plate)
    except plates.PlateError as exc:
        raise InvalidInput(str(exc)) from None
    if valid_to <= valid_from:
        raise InvalidInput("a visitor pass must end after it starts")
    vp = VisitorPass(site_id=site.id, plate=plate, valid_from=valid_from, valid_to=valid_to,
                     permit_id=permit_id, note=note, created_by=user_id)
    session.add(vp)
    session.flush()
    audit.append(session, "visitor_pass.created", "visitor_pass", vp.id,
                 {"plate": plate, "valid_from": valid_from, "valid_to": valid_to, "permit_id": permit_id, "note": note},
                 actor=audit.Actor.user(user_id) if user_id else audit.SYSTEM, site_id=site.id)
    return vp


def revoke_visitor_pass(session: Session, vp: VisitorPass, *, user_id: int, reason: str) -> VisitorPass:
    """Withdraw a pass, saying why: the reason is kept on the pass and in the audit trail (the
    visitor who turns up anyway is sent to an attendant, who will want to know)."""
    reason = (reason or "").strip()
    if len(reason) < 3:
        raise InvalidInput("a reason is required to revoke a visitor pass (at least 3 characters)")
    if vp.revoked_at is not None:
        raise Conflict("visitor pass already revoked")
    vp.revoked_at = utcnow()
    vp.revoked_by = user_id
    vp.revoke_reason = reason[:500]
    audit.append(session, "visitor_pass.revoked", "visitor_pass", vp.id, {"plate": vp.plate, "reason": vp.revoke_reason},
                 actor=audit.Actor.user(user_id), site_id=vp.site_id)
    return vp


PASS_PRICING_TEXT = {
    "free": "parks free during its window",
    "visitor_rate": "parks at the visitor rate during its window",
    "tariff": "parks at the normal tariff (the pass only lets the car in)",
}


def pass_terms(site: Site) -> str:
    """What a visitor pass changes about the fee at ``site``, as a sentence fragment."""
    return PASS_PRICING_TEXT.get(site.visitor_pass_pricing, PASS_PRICING_TEXT["tariff"])

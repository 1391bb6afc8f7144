"""What a stay owes: the site's tariff version applied to the stay's facts.

The stay keeps the tariff version it started under, so this function re-prices
a stay exactly, for the exit lane, the pay station, the console and disputes.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import date, datetime
from typing import Optional

from sqlalchemy import bindparam, exists, func, select
from sqlalchemy.orm import Session

from ..records.models import ParkingSession, Payment, Permit, Site, SiteHoliday, TariffVersion, VisitorPass
from .tariff import Paid, PermitCover, Quote, Tariff, quote

_cache: dict[str, Tariff] = {}
_cache_lock = threading.Lock()
_CACHE_MAX = 256


def tariff_of(version: TariffVersion) -> Tariff:
    """The engine object for a stored version, cached by the rules' content (not the row id,
    which another database may reuse for different rules)."""
    key = json.dumps(version.rules, sort_keys=True)
    with _cache_lock:
        tariff = _cache.get(key)
        if tariff is None:
            if len(_cache) >= _CACHE_MAX:
                _cache.clear()
            tariff = _cache[key] = Tariff.from_dict(version.rules)
        return tariff


def current_tariff(session: Session, site: Site, at: datetime) -> Optional[TariffVersion]:
    """The newest version of the site's default tariff in force at ``at``."""
    if not site.default_tariff_code:
        return None
    return session.scalar(_TARIFF_IN_FORCE, {"site_id": site.id, "code": site.default_tariff_code, "at": at})


def holidays(session: Session, site_id: int) -> frozenset[date]:
    return frozenset(session.scalars(_HOLIDAYS, {"site_id": site_id}))


# Built once: every entry asks for the tariff, every exit with a fee for the holidays.
_TARIFF_IN_FORCE = (
    select(TariffVersion)
    .where(TariffVersion.site_id == bindparam("site_id"), TariffVersion.code == bindparam("code"),
           TariffVersion.effective_from <= bindparam("at"))
    .order_by(TariffVersion.version.desc())
    .limit(1)
)
_HOLIDAYS = select(SiteHoliday.day).where(SiteHoliday.site_id == bindparam("site_id"))


@dataclass(frozen=True)
class Payments:
    paid_minor: int  # payments minus refunds and voids, plus adjustments
    paid_until: Optional[datetime]  # from the last payment that settled a quote in full


# Built once (every exit asks), on the table: a plain statement skips the ORM's compile step.
_pay = Payment.__table__
_void = Payment.__table__.alias("void")
# the newest payment that was not voided (a void cancels its paid_until too)
_last_until = (select(_pay.c.paid_until).where(_pay.c.session_id == bindparam("stay_id"), _pay.c.kind == "payment",
                                               ~exists().where(_void.c.voids_id == _pay.c.id))
               .order_by(_pay.c.id.desc()).limit(1).scalar_subquery())
_PAYMENTS_OF = (select(func.coalesce(func.sum(_pay.c.amount_minor), 0), _last_until)
                .where(_pay.c.session_id == bindparam("stay_id")))


def payments_of(session: Session, stay_id: int) -> Payments:
    total, until = session.execute(_PAYMENTS_OF, {"stay_id": stay_id}).one()
    return Payments(int(total or 0), until)


@dataclass(frozen=True)
class FeeStatus:
    total_minor: int
    paid_minor: int
    due_minor: int
    paid_until: Optional[datetime]
    quote: Optional[Quote]
    currency: str


def permit_cover(permit: Optional[Permit]) -> Optional[PermitCover]:
    if permit is None:
        return None
    return PermitCover.from_record(permit.valid_from, permit.valid_to, permit.hours, rate=permit.rate,
                                   label=f"Permit {permit.number}")


VISITOR_RATE = "visitor"  # the tariff rate a visitor pass parks at when the site says ``visitor_rate``


def pass_cover(site: Site, vp: Optional[VisitorPass], tariff: Tariff) -> Optional[PermitCover]:
    """What a visitor pass changes about the fee, as the site sets it (``site.visitor_pass_pricing``):
    nothing (``tariff``), free during its window (``free``), or the tariff's ``visitor`` rate
    during its window (``visitor_rate``; a tariff without that rate charges its normal rates,
    the site file's validation says so). Outside the window the normal tariff applies."""
    if vp is None or site.visitor_pass_pricing == "free":
        return None if vp is None else PermitCover(vp.valid_from, vp.valid_to, None, None, "Visitor pass")
    if site.visitor_pass_pricing == "visitor_rate" and VISITOR_RATE in {r.name for r in tariff.rates}:
        return PermitCover(vp.valid_from, vp.valid_to, None, VISITOR_RATE, "Visitor pass")
    return None


def fee_status(session: Session, site: Site, stay: ParkingSession, at: datetime, *,
               entered_at: Optional[datetime] = None, lost_ticket: bool = False) -> FeeStatus:
    """Price ``stay`` as if it ended at ``at`` (``entered_at`` overrides, for dispute re-pricing)."""
    paid = payments_of(session, stay.id)
    version = session.get(TariffVersion, stay.tariff_version_id) if stay.tariff_version_id else None
    if version is None:  # a site without a tariff parks free
        return FeeStatus(0, paid.paid_minor, 0, None, None, site.currency)
    previous_exit = None
    if stay.reentry_of_id:
        previous_exit = session.scalar(select(ParkingSession.exited_at).where(ParkingSession.id == stay.reentry_of_id))
    permit = session.get(Permit, stay.permit_id) if stay.permit_id else None
    tariff = tariff_of(version)
    cover = permit_cover(permit)
    if cover is None and stay.visitor_pass_id and site.visitor_pass_pricing != "tariff":
        cover = pass_cover(site, session.get(VisitorPass, stay.visitor_pass_id), tariff)
    q = quote(entered_at or stay.entered_at, max(at, entered_at or stay.entered_at), tariff,
              site.timezone, paid=Paid(max(paid.paid_minor, 0), paid.paid_until), permit=cover,
              holidays=holidays(session, site.id), lost_ticket=lost_ticket, entry_proven=stay.entry_read_id is not None,
              previous_exit=previous_exit)
    return FeeStatus(q.amount_minor, paid.paid_minor, q.due_minor, q.paid_until, q, q.currency)

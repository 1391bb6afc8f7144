"""Tariff versions: validated on creation, immutable afterwards.

Changing a price means a new version; a stay keeps the version it started
under, so a dispute months later re-prices it exactly.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping, Optional

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from ..records import audit
from ..records.errors import InvalidInput
from ..records.models import Site, TariffVersion
from ..records.types import utcnow
from .tariff import Tariff, TariffError


class ImmutableTariff(RuntimeError):
    pass


@event.listens_for(TariffVersion, "before_update")
def _refuse_edit(_mapper, _conn, target: TariffVersion) -> None:
    raise ImmutableTariff(f"tariff version {target.id} is immutable; create a new version instead")


def create_version(session: Session, site: Site, *, code: str, name: str, rules: Mapping[str, Any],
                   effective_from: Optional[datetime] = None, user_id: Optional[int] = None,
                   make_default: bool = False) -> TariffVersion:
    """Validate ``rules`` with the engine and store them as the next version of ``code``."""
    try:
        tariff = Tariff.from_dict(dict(rules))
    except TariffError as exc:
        raise InvalidInput(f"invalid tariff: {exc}") from None
    if tariff.currency != site.currency:
        raise InvalidInput(f"tariff currency {tariff.currency} differs from the site's {site.currency}")
    latest = session.scalar(select(func.max(TariffVersion.version))
                            .where(TariffVersion.site_id == site.id, TariffVersion.code == code)) or 0
    version = TariffVersion(site_id=site.id, code=code, version=latest + 1, name=name, currency=tariff.currency,
                            rules=tariff.to_dict(), effective_from=effective_from or utcnow(), created_by=user_id)
    session.add(version)
    session.flush()
    if make_default and site.default_tariff_code != code:
        site.default_tariff_code = code
    audit.append(session, "tariff.version_created", "tariff_version", version.id,
                 {"code": code, "version": version.version, "effective_from": version.effective_from,
                  "rules": version.rules, "default": site.default_tariff_code == code},
                 actor=audit.Actor.user(user_id) if user_id else audit.SYSTEM, site_id=site.id)
    return version


def versions(session: Session, site_id: int, code: Optional[str] = None) -> list[TariffVersion]:
    stmt = select(TariffVersion).where(TariffVersion.site_id == site_id)
    if code:
        stmt = stmt.where(TariffVersion.code == code)
    return list(session.scalars(stmt.order_by(TariffVersion.code, TariffVersion.version.desc())))

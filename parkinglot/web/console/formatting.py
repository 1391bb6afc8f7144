"""How the console shows times, money and durations.

Times are stored in UTC and shown in the site's zone with the zone's abbreviation
(the page header names the IANA zone); money is stored in minor units and shown
as a Decimal with the currency's exponent, so nothing is ever a float.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Optional, Union

from ...billing.tariff_model import currency_exponent
from ...records.wallclock import zone


def tz_name(site_or_tz: object) -> str:
    return site_or_tz if isinstance(site_or_tz, str) else getattr(site_or_tz, "timezone", "UTC")


def local(dt: Optional[datetime], site_or_tz: object) -> Optional[datetime]:
    if dt is None:
        return None
    return dt.astimezone(zone(tz_name(site_or_tz)))


def local_time(dt: Optional[datetime], site_or_tz: object, *, seconds: bool = False) -> str:
    """``2026-03-02 08:15 EST``: ISO-like date (unambiguous) with the zone's abbreviation."""
    if dt is None:
        return "—"
    at = local(dt, site_or_tz)
    return at.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def clock(dt: Optional[datetime], site_or_tz: object) -> str:
    """``20:02:13 EST`` for live feeds (the full date is in the element's title)."""
    return "—" if dt is None else local(dt, site_or_tz).strftime("%H:%M:%S %Z")


def to_decimal(amount_minor: Optional[int], currency: str) -> Optional[Decimal]:
    if amount_minor is None:
        return None
    exp = currency_exponent(currency)
    return (Decimal(int(amount_minor)) / (Decimal(10) ** exp)).quantize(Decimal(1).scaleb(-exp))


def money(amount: Union[int, Decimal, str, None], currency: str) -> str:
    """Minor units (int) or a Decimal/str amount -> ``12.50 USD``."""
    if amount is None:
        return "—"
    if isinstance(amount, int):
        value = to_decimal(amount, currency)
    else:
        exp = currency_exponent(currency)
        value = Decimal(str(amount)).quantize(Decimal(1).scaleb(-exp))
    return f"{value:,} {currency}"


def duration(delta: Union[timedelta, float, int, None]) -> str:
    """``2 h 05 min`` / ``3 d 4 h`` / ``45 s``."""
    if delta is None:
        return "—"
    seconds = int(delta.total_seconds() if isinstance(delta, timedelta) else delta)
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days} d {hours} h"
    if hours:
        return f"{sign}{hours} h {minutes:02d} min"
    if minutes:
        return f"{sign}{minutes} min"
    return f"{sign}{secs} s"


def percent(value: Optional[float], digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f} %"


def box_points(box: object) -> Optional[str]:
    """SVG ``points`` for a plate box ``[[x, y] x4]``; None if missing or degenerate (zero area)."""
    if not isinstance(box, (list, tuple)) or len(box) < 3:
        return None
    try:
        pts = [(float(p[0]), float(p[1])) for p in box]
    except (TypeError, ValueError, IndexError):
        return None
    area = 0.5 * abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1])))
    if area < 1.0:
        return None
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)


def to_minor(amount: Decimal, currency: str) -> int:
    """A typed amount in major units -> minor units; refuses more decimals than the currency has."""
    from ...records.errors import InvalidInput

    exp = currency_exponent(currency)
    scaled = Decimal(amount).scaleb(exp)
    if scaled != scaled.to_integral_value():
        raise InvalidInput(f"{currency} amounts have at most {exp} decimals")
    return int(scaled)

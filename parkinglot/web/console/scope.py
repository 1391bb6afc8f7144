"""Who is using the console and which sites they may see and act on.

Every page and action that touches a site's data goes through these helpers,
so an attendant of one garage can neither see nor change another's, whatever
URL they type. Object lookups answer 404 for unknown ids and 403 for other sites.
"""
from __future__ import annotations

from typing import Optional, TypeVar

from flask import abort, g, request
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...records import users
from ...records.models import Site, User
from ..transaction import read_db

T = TypeVar("T")


def me() -> User:
    return current_user._get_current_object()


def my_site_ids() -> list[int]:
    ids = g.get("_console_site_ids")
    if ids is None:
        ids = g._console_site_ids = users.site_ids(read_db(), me())
    return ids


def my_sites() -> list[Site]:
    sites = g.get("_console_sites")
    if sites is None:
        ids = my_site_ids()
        sites = list(read_db().scalars(select(Site).where(Site.id.in_(ids)).order_by(Site.code))) if ids else []
        g._console_sites = sites
    return sites


def sites_by_id() -> dict[int, Site]:
    return {s.id: s for s in my_sites()}


def check_site(site_id: Optional[int]) -> None:
    if site_id is None or site_id not in my_site_ids():
        abort(403, "That belongs to a site you have no access to.")


def chosen_site(code: Optional[str] = None) -> Site:
    """The site a page is about: ``?site=CODE`` (or a form field), else the user's first site."""
    code = code if code is not None else (request.values.get("site") or "")
    sites = my_sites()
    if not sites:
        abort(403, "Your account is not assigned to any site yet. Ask an administrator.")
    if not code:
        return sites[0]
    for site in sites:
        if site.code == code:
            return site
    exists = read_db().scalar(select(Site.id).where(Site.code == code))
    abort(403 if exists else 404, "You have no access to that site." if exists else f"There is no site {code!r}.")


def get_scoped(session: Session, model: type[T], ident: object, what: str) -> T:
    """Load one row by id, 404 if missing, 403 if it belongs to another site."""
    obj = session.get(model, ident)
    if obj is None:
        abort(404, f"There is no {what} {ident}.")
    check_site(getattr(obj, "site_id"))
    return obj

"""Site setup for administrators: sites, lanes, device keys, tariff versions with a quote preview,
and applying or exporting a whole site file. Routes only: the work is in ``records.sites``,
``billing.tariffs`` and ``sitefile``.

A new device's key is shown once, in the reply to the request that created it (never
flashed: the flash store is the session cookie).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Optional

from flask import Response, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ...barrier.drivers import make_driver
from ...billing import fees, tariffs
from ...billing.tariff import quote as price
from ...records import sites as site_service
from ...records import wallclock
from ...records.audit import Actor
from ...records.errors import InvalidInput, ParkingError
from ...records.models import Device, Lane, Site, TariffVersion, User, Zone
from ...records.types import utcnow
from ...sitefile import document, service as sitefile, spec
from ..auth import roles_required
from ..transaction import db, read_db, rollback_only
from . import bp
from .forms import options
from .scope import chosen_site, me
from .setup_forms import (DeviceForm, LaneEditForm, LaneForm, LaneSwitchForm, QuoteForm, SiteFileForm, SiteForm, SiteSettingsForm,
                          TariffVersionForm, ZoneForm)

SETTINGS = ("name", "timezone", "capacity", "kind", "visitors", "visitor_pass_pricing", "lapsed_credential_days",
            "min_confidence", "free_format_min_confidence", "max_stay_hours", "issues_tickets")


def _actor() -> Actor:
    return Actor.user(me().id)


# --- sites and site files ----------------------------------------------------------------------

def _sites_page(session: Session, site_form=None, file_form=None, status: int = 200, error: Optional[str] = None,
                problems: tuple = ()):
    rows = []
    for site in session.scalars(select(Site).order_by(Site.code)):
        devices = session.scalar(select(func.count()).select_from(Device)
                                 .where(Device.site_id == site.id, Device.revoked_at.is_(None)))
        rows.append({"site": site, "lanes": len(site.lanes), "enabled": sum(1 for ln in site.lanes if ln.enabled),
                     "devices": devices})
    if error or problems:
        rollback_only()
    return render_template("console/setup.html", rows=rows, site_form=site_form or SiteForm(formdata=None),
                           file_form=file_form or SiteFileForm(formdata=None), error=error,
                           problems=problems), status


@bp.get("/setup")
@roles_required("manage_sites")
def setup():
    return _sites_page(read_db())


@bp.post("/setup/sites")
@roles_required("manage_sites")
def setup_site_new():
    form = SiteForm()
    session = db()
    if not form.validate():
        return _sites_page(session, site_form=form, status=422, error="Check the new site's fields.")
    try:
        site = site_service.create_site(
            session, code=form.code.data.strip(), name=form.name.data.strip(), timezone=form.timezone.data.strip(),
            currency=form.currency.data.strip().upper(),
            plate_regions=[r.strip() for r in form.regions.data.split(",") if r.strip()],
            kind=form.kind.data, visitors=form.visitors.data or None, actor=_actor())
    except ParkingError as exc:
        return _sites_page(session, site_form=form, status=exc.status, error=exc.message)
    flash(f"Site {site.code} created. Add its lanes, device keys and a tariff.", "success")
    return redirect(url_for("console.setup_site", code=site.code), 303)


@bp.post("/setup/apply")
@roles_required("manage_sites")
def setup_apply():
    form = SiteFileForm()
    session = db()
    if not form.validate():
        return _sites_page(session, file_form=form, status=422, error="Paste a site file to apply.")
    try:
        sf = spec.parse(form.text.data, "site file")
        applied = sitefile.apply(session, sf, actor=_actor(), prune=form.prune.data)
    except spec.SiteFileError as exc:
        return _sites_page(session, file_form=form, status=422, problems=exc.problems)
    except ParkingError as exc:
        return _sites_page(session, file_form=form, status=exc.status, error=exc.message)
    if form.dry_run.data:
        rollback_only()
    return render_template("console/setup_applied.html", applied=applied, dry_run=form.dry_run.data,
                           code=sf.code)


@bp.get("/setup/sites/<code>/site.yaml")
@roles_required("manage_sites")
def setup_export(code: str):
    site = chosen_site(code)
    text = spec.dump(sitefile.export(read_db(), site.code))
    return Response(text, mimetype="application/yaml", headers={
        "Content-Disposition": f'attachment; filename="site-{site.code}.yaml"'})


# --- one site: lanes and device keys ----------------------------------------------------------------

def _settings_form(site: Site) -> SiteSettingsForm:
    form = SiteSettingsForm(formdata=None, prefix="settings")
    for name in SETTINGS:
        getattr(form, name).data = getattr(site, name)
    form.regions.data = ", ".join(site.plate_regions)
    return form


def _site_page(session: Session, site: Site, *, lane_form=None, device_form=None, settings_form=None, zone_form=None,
               issued=None, status: int = 200, error: Optional[str] = None):
    if error:
        rollback_only()
    zones = list(session.scalars(select(Zone).where(Zone.site_id == site.id).order_by(Zone.code)))
    lanes = list(session.scalars(select(Lane).where(Lane.site_id == site.id).order_by(Lane.code)))
    devices = list(session.scalars(select(Device).where(Device.site_id == site.id)
                                   .order_by(Device.revoked_at.is_not(None), Device.name, Device.id)))
    lane_form = lane_form or LaneForm(formdata=None, prefix="lane")
    lane_form.zone.choices = options([("", "No zone")] + [(z.code, f"{z.code} · {z.name}") for z in zones])
    device_form = device_form or DeviceForm(formdata=None, prefix="device")
    device_form.lane.choices = options([("", "Any lane of the site")] + [(ln.code, ln.code) for ln in lanes])
    return render_template("console/setup_site.html", site=site, zones=zones, lanes=lanes, devices=devices,
                           lane_names={ln.id: ln.code for ln in lanes}, lane_form=lane_form,
                           device_form=device_form, switch_forms={ln.code: LaneSwitchForm(prefix=ln.code,
                                                                                          formdata=None)
                                                                  for ln in lanes},
                           settings_form=settings_form or _settings_form(site),
                           zone_form=zone_form or ZoneForm(formdata=None, prefix="zone"), issued=issued, error=error), status


@bp.get("/setup/sites/<code>")
@roles_required("manage_sites")
def setup_site(code: str):
    return _site_page(read_db(), chosen_site(code))


def _site_for_write(code: str) -> Site:
    chosen_site(code)  # scope check (404 / 403 pages)
    return site_service.get_site(db(), code)


@bp.post("/setup/sites/<code>/settings")
@roles_required("manage_sites")
def setup_site_settings(code: str):
    session = db()
    site = _site_for_write(code)
    form = SiteSettingsForm(prefix="settings")
    if not form.validate():
        return _site_page(session, site, settings_form=form, status=422, error="Check the site's settings.")
    changes = {name: getattr(form, name).data for name in SETTINGS}
    changes["name"] = changes["name"].strip()
    changes["timezone"] = changes["timezone"].strip()
    changes["plate_regions"] = [r.strip() for r in form.regions.data.split(",") if r.strip()]
    try:
        diffs = site_service.update_site(session, site, actor=_actor(), **changes)
    except ParkingError as exc:
        return _site_page(session, site, settings_form=form, status=exc.status, error=exc.message)
    flash(f"Settings of {site.code} saved ({', '.join(diffs) or 'nothing changed'}).", "success")
    return redirect(url_for("console.setup_site", code=site.code), 303)


@bp.post("/setup/sites/<code>/zones")
@roles_required("manage_sites")
def setup_zone_new(code: str):
    session = db()
    site = _site_for_write(code)
    form = ZoneForm(prefix="zone")
    if not form.validate():
        return _site_page(session, site, zone_form=form, status=422, error="Check the new zone's fields.")
    try:
        zone = site_service.create_zone(session, site, form.code.data.strip(), (form.name.data or form.code.data)
                                        .strip(), form.capacity.data, actor=_actor())
    except ParkingError as exc:
        return _site_page(session, site, zone_form=form, status=exc.status, error=exc.message)
    flash(f"Zone {zone.code} added.", "success")
    return redirect(url_for("console.setup_site", code=site.code), 303)


@bp.post("/setup/sites/<code>/lanes")
@roles_required("manage_sites")
def setup_lane_new(code: str):
    session = db()
    site = _site_for_write(code)
    form = LaneForm(prefix="lane")
    zones = {z.code: z for z in session.scalars(select(Zone).where(Zone.site_id == site.id))}
    form.zone.choices = options([("", "No zone")] + [(c, c) for c in zones])
    if not form.validate():
        return _site_page(session, site, lane_form=form, status=422, error="Check the new lane's fields.")
    config = {"url": form.relay_url.data.strip()} if form.relay_url.data else {}
    driver = "http_relay" if config else "simulated"
    try:
        try:
            make_driver(driver, config)
        except ValueError as exc:
            raise InvalidInput(f"relay URL: {exc}") from None
        lane = site_service.create_lane(session, site, code=form.code.data.strip(),
                                        name=(form.name.data or form.code.data).strip(),
                                        direction=form.direction.data, zone=zones.get(form.zone.data),
                                        driver=driver, driver_config=config, actor=_actor())
    except ParkingError as exc:
        return _site_page(session, site, lane_form=form, status=exc.status, error=exc.message)
    flash(f"Lane {lane.code} added.", "success")
    return redirect(url_for("console.setup_site", code=site.code), 303)


def _lane_page(session: Session, lane: Lane, form: Optional[LaneEditForm] = None, status: int = 200,
               error: Optional[str] = None):
    if error:
        rollback_only()
    zones = list(session.scalars(select(Zone).where(Zone.site_id == lane.site_id).order_by(Zone.code)))
    if form is None:
        form = LaneEditForm(formdata=None)
        form.name.data, form.direction.data = lane.name, lane.direction
        form.zone.data = lane.zone.code if lane.zone is not None else ""
        form.relay_url.data = (lane.driver_config or {}).get("url", "") if lane.driver == "http_relay" else ""
    form.zone.choices = options([("", "No zone")] + [(z.code, f"{z.code} · {z.name}") for z in zones])
    return render_template("console/setup_lane.html", lane=lane, site=lane.site, form=form, error=error), status


@bp.route("/setup/lanes/<lane_code>", methods=["GET", "POST"])
@roles_required("manage_sites")
def setup_lane(lane_code: str):
    session = db() if request.method == "POST" else read_db()
    lane = site_service.get_lane(session, lane_code)
    chosen_site(lane.site.code)  # scope check
    if request.method == "GET":
        return _lane_page(session, lane)
    form = LaneEditForm()
    zones = {z.code: z for z in session.scalars(select(Zone).where(Zone.site_id == lane.site_id))}
    form.zone.choices = options([("", "No zone")] + [(c, c) for c in zones])
    if not form.validate():
        return _lane_page(session, lane, form, 422, "Check the lane's fields.")
    url = (form.relay_url.data or "").strip()
    if url:
        driver, config = "http_relay", {**(lane.driver_config if lane.driver == "http_relay" else {}), "url": url}
    else:
        driver, config = "simulated", (lane.driver_config if lane.driver == "simulated" else {})
    try:
        diffs = site_service.update_lane(session, lane, name=form.name.data.strip(), direction=form.direction.data,
                                         zone=zones.get(form.zone.data), driver=driver, driver_config=dict(config),
                                         actor=_actor())
    except ParkingError as exc:
        return _lane_page(session, lane, form, exc.status, exc.message)
    flash(f"Lane {lane.code} saved ({', '.join(diffs) or 'nothing changed'}).", "success")
    return redirect(url_for("console.setup_site", code=lane.site.code), 303)


@bp.post("/setup/lanes/<lane_code>/<any(enable, disable):action>")
@roles_required("manage_sites")
def setup_lane_switch(lane_code: str, action: str):
    session = db()
    lane = site_service.get_lane(session, lane_code)
    site = _site_for_write(lane.site.code)
    form = LaneSwitchForm(prefix=lane.code)
    if not form.validate():
        return _site_page(session, site, status=422,
                          error=f"Give a reason (at least 3 characters) to {action} lane {lane.code}.")
    site_service.set_lane_enabled(session, lane, action == "enable", reason=form.reason.data, actor=_actor())
    flash(f"Lane {lane.code} {action}d.", "success")
    return redirect(url_for("console.setup_site", code=site.code), 303)


@bp.post("/setup/sites/<code>/devices")
@roles_required("manage_sites")
def setup_device_new(code: str):
    session = db()
    site = _site_for_write(code)
    form = DeviceForm(prefix="device")
    lanes = {ln.code: ln for ln in session.scalars(select(Lane).where(Lane.site_id == site.id))}
    form.lane.choices = options([("", "Any lane")] + [(c, c) for c in lanes])
    if not form.validate():
        return _site_page(session, site, device_form=form, status=422, error="Give the device a name.")
    try:
        issued = site_service.create_device(session, site, form.name.data.strip(), lane=lanes.get(form.lane.data),
                                            kind=form.kind.data, actor=_actor())
    except ParkingError as exc:
        return _site_page(session, site, device_form=form, status=exc.status, error=exc.message)
    return _site_page(session, site, issued=issued)


@bp.post("/setup/devices/<int:device_id>/revoke")
@roles_required("manage_sites")
def setup_device_revoke(device_id: int):
    session = db()
    device = session.get(Device, device_id)
    if device is None:
        abort(404, f"There is no device {device_id}.")
    site = _site_for_write(device.site.code)
    site_service.revoke_device(session, device, actor=_actor())
    flash(f"The key of device {device.name!r} is revoked: the controller is refused from its next request.",
          "success")
    return redirect(url_for("console.setup_site", code=site.code), 303)


# --- tariff versions and the quote preview ----------------------------------------------------------

def _next_saturday_evening(site: Site) -> datetime:
    """The preview's default entry: next Saturday 21:30, site time (naive, as the form shows it)."""
    today = utcnow().astimezone(wallclock.zone(site.timezone)).date()
    day = today + timedelta(days=(5 - today.weekday()) % 7 or 7)
    return datetime(day.year, day.month, day.day, 21, 30)


def _tariff_page(session: Session, site: Site, *, version_form=None, status: int = 200, error: Optional[str] = None):
    if error:
        rollback_only()
    versions = tariffs.versions(session, site.id)
    people = {u.id: u.display_name or u.username for u in session.scalars(
        select(User).where(User.id.in_({v.created_by for v in versions if v.created_by})))}
    current = fees.current_tariff(session, site, utcnow())
    qform = QuoteForm()
    qform.version.choices = options([(v.id, f"{v.code} v{v.version} · {v.name}") for v in versions])
    preview = None
    preview_error = None
    if "entry" not in request.args:
        qform.entry.data = _next_saturday_evening(site)
        qform.hours.data, qform.minutes.data = 2, 40
        qform.version.data = current.id if current else (versions[0].id if versions else None)
    if versions and qform.entry.data and (("entry" not in request.args) or qform.validate()):
        chosen = next((v for v in versions if v.id == qform.version.data), current or versions[0])
        try:
            entry = wallclock.localize(qform.entry.data, site.timezone)
            stay = timedelta(hours=qform.hours.data or 0, minutes=qform.minutes.data or 0)
            local = entry.astimezone(wallclock.zone(site.timezone))
            preview = {"version": chosen, "entry": entry, "stay": stay,
                       "entry_text": f"{local:%A %H:%M} ({local:%Y-%m-%d %Z})",
                       "quote": price(entry, entry + stay, fees.tariff_of(chosen), site.timezone,
                                      holidays=fees.holidays(session, site.id))}
        except ParkingError as exc:
            preview_error = exc.message
    elif "entry" in request.args:
        preview_error = "Check the preview's entry time and stay."
    if version_form is None:
        version_form = TariffVersionForm(formdata=None)
        latest = versions[0] if versions else None
        base = current or latest
        if base is not None:
            version_form.code.data, version_form.name.data = base.code, base.name
            version_form.rules.data = document.dump({k: v for k, v in fees.tariff_of(base).to_dict().items()
                                                     if k not in ("schema", "currency")})
        else:
            version_form.code.data = "standard"
    return render_template("console/setup_tariff.html", site=site, versions=versions, current=current,
                           people=people, qform=qform, preview=preview, preview_error=preview_error,
                           version_form=version_form, error=error), status


@bp.get("/setup/sites/<code>/tariff")
@roles_required("manage_sites")
def setup_tariff(code: str):
    return _tariff_page(read_db(), chosen_site(code))


@bp.post("/setup/sites/<code>/tariff")
@roles_required("manage_sites")
def setup_tariff_new(code: str):
    session = db()
    site = _site_for_write(code)
    form = TariffVersionForm()
    if not form.validate():
        return _tariff_page(session, site, version_form=form, status=422, error="Check the new version's fields.")
    try:
        site_service.check_code(form.code.data.strip(), "tariff")
        try:
            rules = document.load(form.rules.data).data
        except document.DocumentError as exc:
            raise InvalidInput(f"rules, line {exc.line}: {exc.message}") from None
        if not isinstance(rules, dict):
            raise InvalidInput("the rules must be a YAML mapping (rates, week, ...)")
        rules.setdefault("currency", site.currency)
        at = wallclock.localize(form.effective_from.data, site.timezone) if form.effective_from.data else utcnow()
        if at < utcnow() - timedelta(minutes=1):
            raise InvalidInput("a new version takes effect from now or later (stays already inside keep theirs); "
                               "leave 'effective from' blank for now")
        version = tariffs.create_version(session, site, code=form.code.data.strip(), name=form.name.data.strip(),
                                         rules=rules, effective_from=at, user_id=me().id,
                                         make_default=site.default_tariff_code in (None, form.code.data.strip()))
    except ParkingError as exc:
        return _tariff_page(session, site, version_form=form, status=exc.status, error=exc.message)
    flash(f"Tariff {version.code} version {version.version} created; it applies to stays entering from "
          f"{version.effective_from:%Y-%m-%d %H:%M} UTC.", "success")
    return redirect(url_for("console.setup_tariff", code=site.code), 303)

"""Forms of the administrators' site-setup pages (sites, lanes, device keys, tariff versions)."""
from __future__ import annotations

from wtforms import (BooleanField, DateTimeLocalField, FloatField, IntegerField, SelectField, StringField,
                     TextAreaField)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional as Opt

from .forms import DATETIME_FORMAT, ConsoleForm, QueryForm, options, reason_field

SITE_FILE_MAX = 200_000


class SiteForm(ConsoleForm):
    code = StringField("Code", validators=[DataRequired(), Length(max=32)])
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    timezone = StringField("Time zone (IANA, e.g. Europe/Paris)", validators=[DataRequired(), Length(max=64)])
    currency = StringField("Currency (ISO 4217, e.g. EUR)", validators=[DataRequired(), Length(min=3, max=3)])
    regions = StringField("Plate regions (comma-separated, first is the main one)", default="us",
                          validators=[DataRequired(), Length(max=40)])
    kind = SelectField("Kind", choices=options([("public", "Public"), ("residential", "Residential"),
                                                ("private", "Private")]))
    visitors = SelectField("Vehicles without a permit or pass", choices=options([
        ("", "Default of the kind"), ("open", "Enter as visitors"), ("attendant", "Wait for an attendant"),
        ("refuse", "Are refused")]))


VISITOR_CHOICES = options([("open", "Enter as visitors"), ("attendant", "Wait for an attendant"),
                           ("refuse", "Are refused")])


class SiteSettingsForm(ConsoleForm):
    """An existing site's settings (the code is its identity; the currency is fixed once it has prices)."""

    name = SiteForm.name
    timezone = SiteForm.timezone
    regions = SiteForm.regions
    capacity = IntegerField("Capacity (blank: not counted)", validators=[Opt(), NumberRange(min=0)])
    kind = SiteForm.kind
    visitors = SelectField("Vehicles without a permit or pass", choices=VISITOR_CHOICES)
    visitor_pass_pricing = SelectField("A visitor pass parks", choices=options([
        ("tariff", "At the normal tariff"), ("free", "Free during its window"),
        ("visitor_rate", "At the tariff's 'visitor' rate")]))
    lapsed_credential_days = IntegerField("Expired or revoked credentials go to an attendant for (days)",
                                          validators=[InputRequired(), NumberRange(min=0, max=3650)])
    min_confidence = FloatField("Minimum read confidence (0-1)", validators=[InputRequired(), NumberRange(0, 1)])
    free_format_min_confidence = FloatField("Minimum confidence for a free-form plate (0-1)",
                                            validators=[InputRequired(), NumberRange(0, 1)])
    max_stay_hours = IntegerField("Maximum stay (hours)", validators=[InputRequired(), NumberRange(min=1)])
    issues_tickets = BooleanField("Entry lanes issue tickets")


class ZoneForm(ConsoleForm):
    code = StringField("Code", validators=[DataRequired(), Length(max=32)])
    name = StringField("Name", validators=[Opt(), Length(max=120)])
    capacity = IntegerField("Capacity", validators=[Opt(), NumberRange(min=0)])


class SiteFileForm(ConsoleForm):
    text = TextAreaField("Site file (YAML)", validators=[DataRequired(message="Paste a site file."),
                                                          Length(max=SITE_FILE_MAX)])
    dry_run = BooleanField("Only show what would change")
    prune = BooleanField("Disable lanes and revoke device keys that the file does not list")


class LaneForm(ConsoleForm):
    code = StringField("Code (unique across all sites)", validators=[DataRequired(), Length(max=32)])
    name = StringField("Name", validators=[Opt(), Length(max=120)])
    direction = SelectField("Direction", choices=options([("entry", "Entry"), ("exit", "Exit")]))
    zone = SelectField("Zone", choices=[])
    relay_url = StringField("Relay URL (blank: simulated barrier)", validators=[Opt(), Length(max=300)])


class LaneEditForm(ConsoleForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    direction = LaneForm.direction
    zone = SelectField("Zone", choices=[])
    relay_url = LaneForm.relay_url


class LaneSwitchForm(ConsoleForm):
    reason = reason_field("Reason")


class DeviceForm(ConsoleForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    kind = SelectField("Kind", choices=options([("lane_controller", "Lane controller (lane API)"),
                                                ("pay_station", "Pay station or payment terminal (pay API)")]))
    lane = SelectField("Bound to lane (a pay station bound to an exit is its payment terminal)", choices=[])


class TariffVersionForm(ConsoleForm):
    code = StringField("Tariff code", validators=[DataRequired(), Length(max=32)])
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    effective_from = DateTimeLocalField("Effective from (site time; blank: now)", format=DATETIME_FORMAT,
                                        validators=[Opt()])
    rules = TextAreaField("Rules (YAML, the site file's tariff.rules)",
                          validators=[DataRequired(), Length(max=SITE_FILE_MAX)])


class QuoteForm(QueryForm):
    version = SelectField("Tariff version", choices=[], coerce=int, validate_choice=False)
    entry = DateTimeLocalField("Entering at (site time)", format=DATETIME_FORMAT,
                               validators=[InputRequired(message="Give the entry time.")])
    hours = IntegerField("Stay: hours", validators=[InputRequired(), NumberRange(min=0, max=24 * 60)])
    minutes = IntegerField("and minutes", validators=[InputRequired(), NumberRange(min=0, max=59)])

"""Console forms (Flask-WTF): labels, lengths and formats are checked here, domain rules in the services.

Dates and times are entered in the site's local time; ``records.wallclock`` turns
them into aware UTC and refuses a wall-clock time that does not exist.
"""
from __future__ import annotations

from typing import Optional

from flask import request
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    SelectChoice,
    DateField,
    DateTimeLocalField,
    DecimalField,
    HiddenField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional as Opt, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget


NOTE_MAX = 2000
DATETIME_FORMAT = "%Y-%m-%dT%H:%M"


def options(pairs) -> list[SelectChoice]:
    """``(value, label)`` pairs as WTForms select options."""
    return [SelectChoice(value, label) for value, label in pairs]


class ConsoleForm(FlaskForm):
    """Base form. CSRF is checked once for every POST by ``CSRFProtect`` (templates include the
    token with the ``csrf()`` macro), so forms do not carry a second, per-form token."""

    class Meta:
        csrf = False


class QueryForm(ConsoleForm):
    """A GET form read from the query string (it changes nothing)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(request.args, *args, **kwargs)


def note_field(label: str, required: bool = False) -> TextAreaField:
    checks = [DataRequired(message="Write a note.")] if required else [Opt()]
    return TextAreaField(label, validators=[*checks, Length(max=NOTE_MAX)])


def reason_field(label: str = "Reason") -> StringField:
    return StringField(label, validators=[DataRequired(message="A reason is required."), Length(min=3, max=200)])


class LoginForm(ConsoleForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class ReasonForm(ConsoleForm):
    reason = reason_field()


class LaneOpenForm(ReasonForm):
    """Open a barrier by hand: the car's plate (an entry admits it, an exit lets its stay out),
    or, explicitly, no vehicle at all (a barrier test)."""

    plate = StringField("Plate of the car", validators=[Opt(), Length(max=20)])
    no_vehicle = BooleanField("No car passes (barrier test, maintenance)")
    override_stop = BooleanField("Release despite the hotlist or lock (supervisor; recorded and alerted)")
    read_id = HiddenField()


class WriteOffForm(ConsoleForm):
    reason = reason_field("Why it is written off")


class EmergencyForm(ConsoleForm):
    active = HiddenField(validators=[DataRequired()])
    reason = reason_field("Reason (recorded in the audit trail)")
    confirmed = HiddenField()


class NoteForm(ConsoleForm):
    note = note_field("Note")


class RequiredNoteForm(ConsoleForm):
    note = note_field("Note", required=True)


class CsvUploadForm(ConsoleForm):
    file = FileField("CSV file (UTF-8)", validators=[FileRequired(message="Choose a CSV file.")])


class HotlistForm(ConsoleForm):
    plate = StringField("Plate", validators=[DataRequired(), Length(max=20)])
    reason = StringField("Reason", validators=[DataRequired(), Length(max=200)])
    all_sites = BooleanField("Every site (administrators only)")


class SubjectExportForm(ConsoleForm):
    plate = StringField("Plate", validators=[DataRequired(), Length(max=20)])
    requested_by = StringField("Requested by, on whose behalf", validators=[DataRequired(), Length(min=3, max=200)])


class StaySearchForm(QueryForm):
    q = StringField("Plate", validators=[Opt(), Length(max=20)])
    mode = SelectField("Match", choices=options([("exact", "Exact"), ("prefix", "Starts with"), ("fuzzy", "Look-alike (fuzzy)")]),
                       default="exact", validate_choice=True)
    start = DateTimeLocalField("Entered from", format=DATETIME_FORMAT, validators=[Opt()])
    end = DateTimeLocalField("Entered before", format=DATETIME_FORMAT, validators=[Opt()])
    lane = SelectField("Lane", choices=options([("", "Any lane")]), default="", validate_choice=False)
    status = SelectField("Status", choices=options([("", "Any"), ("open", "Inside now"), ("closed", "Left"),
                                            ("expired", "Expired"), ("void", "Void")]), default="")


class RevokeForm(ConsoleForm):
    reason = reason_field("Why it is revoked")


class ConfirmMatchForm(ConsoleForm):
    lane = SelectField("Exit lane to open", choices=[], validate_choice=True)
    reason = reason_field("Why you are sure it is this vehicle")
    # shown to supervisors only, and only when the plate is hotlisted or locked
    override_stop = BooleanField("Release despite the hotlist or lock (supervisor; recorded and alerted)")


class DisputeOpenForm(ConsoleForm):
    reason = TextAreaField("What the driver disputes", validators=[DataRequired(), Length(min=3, max=NOTE_MAX)])


class DisputeResolveForm(ConsoleForm):
    outcome = SelectField("Outcome", choices=options([("uphold", "Uphold: the fee stands"),
                                              ("adjust", "Adjust: re-price with corrected times"),
                                              ("refund", "Refund an amount"),
                                              ("void", "Void: the stay is not charged")]))
    note = note_field("Reason for the decision", required=True)
    corrected_entered_at = DateTimeLocalField("Corrected entry time", format=DATETIME_FORMAT, validators=[Opt()])
    corrected_exited_at = DateTimeLocalField("Corrected exit time", format=DATETIME_FORMAT, validators=[Opt()])
    refund = DecimalField("Refund amount", places=None, validators=[Opt(), NumberRange(min=0)])
    # how money is given back, for every outcome that refunds (refund, void, an adjustment below what was paid)
    refund_method = SelectField("Refund paid out by", choices=options([("card", "Card (back to the card)"),
                                                                     ("cash", "Cash at the desk"),
                                                                     ("mobile", "Mobile payment")]),
                                default="card", validate_choice=True)

    def validate_corrected_entered_at(self, field) -> None:
        if self.outcome.data == "adjust" and not (field.data or self.corrected_exited_at.data):
            raise ValidationError("An adjustment needs a corrected entry or exit time.")

    def validate_refund(self, field) -> None:
        if self.outcome.data == "refund" and not field.data:
            raise ValidationError("Enter the amount to refund.")


class PermitForm(ConsoleForm):
    number = StringField("Permit number", validators=[DataRequired(), Length(max=32)])
    holder = StringField("Holder", validators=[DataRequired(), Length(max=120)])
    vehicles = TextAreaField("Vehicles (plates, one per line or separated by commas)",
                             validators=[DataRequired(), Length(max=500)])
    valid_from = DateField("Valid from", validators=[InputRequired(message="Enter a valid date (YYYY-MM-DD).")])
    valid_to = DateField("Valid until (inclusive)", validators=[InputRequired(message="Enter a valid date (YYYY-MM-DD).")])
    hours = StringField("Hours (empty = all day), e.g. mon-fri 07:00-19:00; sat 08:00-12:00",
                        validators=[Opt(), Length(max=300)])
    rate = SelectField("Tariff rate", choices=options([("", "Free parking")]), validate_choice=True)

    def validate_valid_to(self, field) -> None:
        if self.valid_from.data and field.data and field.data < self.valid_from.data:
            raise ValidationError("The permit must end on or after its first day.")


class RenewForm(ConsoleForm):
    valid_to = DateField("New last day", validators=[InputRequired(message="Enter a valid date (YYYY-MM-DD).")])


class LockForm(ConsoleForm):
    plate = StringField("Plate", validators=[DataRequired(), Length(max=20)])
    note = note_field("Note (who asked, how they proved ownership)", required=True)


class VisitorPassForm(ConsoleForm):
    plate = StringField("Visitor's plate", validators=[DataRequired(), Length(max=20)])
    valid_from = DateTimeLocalField("From", format=DATETIME_FORMAT,
                                    validators=[InputRequired(message="Enter a valid date and time.")])
    valid_to = DateTimeLocalField("Until", format=DATETIME_FORMAT,
                                  validators=[InputRequired(message="Enter a valid date and time.")])
    permit = StringField("Host permit number (optional)", validators=[Opt(), Length(max=32)])
    note = note_field("Note")

    def validate_valid_to(self, field) -> None:
        if self.valid_from.data and field.data and field.data <= self.valid_from.data:
            raise ValidationError("The pass must end after it starts.")


class ShiftStartForm(ConsoleForm):
    site = SelectField("Site", choices=[], validate_choice=True)
    note = note_field("Start note")


class ShiftEndForm(ConsoleForm):
    handover_note = note_field("Handover note for the next attendant", required=True)


class PeriodForm(QueryForm):
    start = DateField("From", validators=[Opt()])
    end = DateField("To (inclusive)", validators=[Opt()])

    def validate_end(self, field) -> None:
        if self.start.data and field.data and field.data < self.start.data:
            raise ValidationError("The end of the period must not be before its start.")


class RevenueForm(PeriodForm):
    group_by = SelectField("Group by", choices=options([("day", "Day"), ("week", "Week"), ("month", "Month")]), default="day")


class UserForm(ConsoleForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    display_name = StringField("Full name", validators=[Opt(), Length(max=120)])
    role = SelectField("Role", choices=options([("attendant", "Attendant"), ("supervisor", "Supervisor"),
                                        ("finance", "Finance"), ("admin", "Administrator")]))
    password = PasswordField("Password (at least 10 characters, 14 for supervisors and administrators; "
                             "not a common one, nor the username)", validators=[DataRequired(), Length(max=200)])
    sites = SelectMultipleField("Sites", choices=[], coerce=int, validate_choice=True,
                                widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())

    def validate_sites(self, field) -> None:
        _sites_for_role(self, field)


def _sites_for_role(form, field) -> None:
    if form.role.data in ("attendant", "supervisor") and not field.data:
        raise ValidationError("Attendants and supervisors need at least one site.")


class UserEditForm(ConsoleForm):
    display_name = StringField("Full name", validators=[Opt(), Length(max=120)])
    role = UserForm.role
    sites = UserForm.sites
    active = BooleanField("Active (may log in)")

    def validate_sites(self, field) -> None:
        _sites_for_role(self, field)
    password = PasswordField("New password (leave empty to keep)", validators=[Opt(), Length(max=200)])


def plates_from_text(text: Optional[str]) -> list[str]:
    """Plates typed one per line or comma/semicolon separated."""
    raw = (text or "").replace(";", ",").replace("\n", ",")
    return [p.strip() for p in raw.split(",") if p.strip()]


PAY_METHODS = options([("cash", "Cash"), ("card", "Card"), ("mobile", "Mobile"), ("validation", "Validation (shop or hotel)")])


class CashDeskForm(ConsoleForm):
    """An attendant takes the amount due for a stay. ``key`` is drawn when the form is shown, so
    a double click or a resent form records the payment once."""

    method = SelectField("Method", choices=PAY_METHODS, default="cash", validate_choice=True)
    amount = DecimalField("Amount received", places=None, validators=[InputRequired(message="Enter the amount."),
                                                                      NumberRange(min=0)])
    terminal_ref = StringField("Card terminal reference (optional)", validators=[Opt(), Length(max=64)])
    key = HiddenField(validators=[DataRequired(), Length(min=8, max=40)])


class VoidPaymentForm(ConsoleForm):
    reason = reason_field("Why this payment was recorded by mistake")

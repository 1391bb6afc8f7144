"""The attendant's cash desk on a stay page: take the amount due, print a receipt, void a mistake.

A stay whose car left owing money (an open unpaid balance) gets the desk too: its payment
settles the balance.

The stay page shows the desk through a template helper (``cash_desk``), so the page's
own view needs no change; the actions here call ``billing.checkout`` and ``payments.void``.
"""
from __future__ import annotations

import secrets
from typing import Any, Optional

from flask import abort, flash, redirect, render_template, url_for

from ...billing import checkout, payments
from ...records import stay_detail
from ...records.errors import ParkingError
from ...records.models import ParkingSession, Payment, Site
from ..auth import roles_required
from ..transaction import db, read_db, rollback_only
from . import bp
from .forms import CashDeskForm, VoidPaymentForm
from .formatting import money, to_minor
from .scope import get_scoped, me
from .templating import allowed
from .views_stays import _confirm_form, _stay_page


def desk_form(stay: ParkingSession, quote: Optional[checkout.StayQuote]) -> CashDeskForm:
    """A fresh desk form: a new idempotency key, the amount due filled in."""
    form = CashDeskForm(formdata=None)
    form.key.data = secrets.token_urlsafe(18)
    if quote is not None:
        form.amount.data = checkout.to_major(quote.status.due_minor, quote.status.currency)
    return form


def cash_desk(detail: stay_detail.StayDetail) -> Optional[dict[str, Any]]:
    """What the stay page's cash desk shows, or None (not allowed to take money, or a stay that
    has left with no open unpaid balance: only an open balance is paid after the car left)."""
    if not allowed("record_payment"):
        return None
    try:
        quote = checkout.quote_stay(read_db(), detail.site, detail.stay)
    except checkout.StayClosed:
        return None
    except ParkingError as exc:
        return {"error": exc.message}
    return {"quote": quote, "form": desk_form(detail.stay, quote), "void_form": VoidPaymentForm(formdata=None)}


@bp.app_context_processor
def _helpers() -> dict[str, Any]:
    return {"cash_desk": cash_desk, "void_form": lambda: VoidPaymentForm(formdata=None)}


def _payment(session, payment_id: int) -> Payment:
    if payment_id >= 2**63:  # ids are 64-bit
        abort(404, f"There is no payment {payment_id}.")
    return get_scoped(session, Payment, payment_id, "payment")


def _back_to_stay(stay: ParkingSession, message: str, status: int):
    """The stay page again, with the reason the action was refused."""
    rollback_only()
    flash(message, "error")
    detail = stay_detail.stay_detail(read_db(), read_db().get(ParkingSession, stay.id))
    confirm = _confirm_form(detail) if detail.stay.status == "open" and allowed("confirm_match") else None
    return _stay_page(detail, confirm, status)


@bp.post("/stays/<int:stay_id>/pay")
@roles_required("record_payment")
def stay_pay(stay_id: int):
    """Take the amount due at the desk; the receipt page follows, ready to print."""
    session = db()
    if stay_id >= 2**63:
        abort(404, f"There is no stay {stay_id}.")
    stay = get_scoped(session, ParkingSession, stay_id, "stay")
    site = session.get(Site, stay.site_id)
    form = CashDeskForm()
    if not form.validate_on_submit():
        problems = "; ".join(f"{getattr(form, k).label.text}: {' '.join(v)}" for k, v in form.errors.items())
        return _back_to_stay(stay, f"Payment not recorded. {problems}", 422)
    try:
        taken = checkout.take_payment(session, site, stay, amount_minor=to_minor(form.amount.data, site.currency),
                                      method=form.method.data, reference=f"desk:{form.key.data}",
                                      terminal_ref=(form.terminal_ref.data or "").strip() or None, user=me())
        session.commit()
    except ParkingError as exc:
        return _back_to_stay(stay, f"Payment not recorded: {exc.message}", exc.status)
    p = taken.payment
    if taken.created:
        flash(f"Payment of {money(p.amount_minor, p.currency)} ({p.method}) recorded for {stay.plate}.", "success")
    else:
        flash("This payment was already recorded (the form was sent twice); nothing new was taken.", "info")
    return redirect(url_for("console.payment_receipt", payment_id=p.id), 303)


@bp.get("/payments/<int:payment_id>/receipt")
@roles_required("view_stays")
def payment_receipt(payment_id: int):
    """A payment's receipt, printable (the browser's print command prints only the slip)."""
    session = read_db()
    payment = _payment(session, payment_id)
    site = session.get(Site, payment.site_id)
    r = checkout.receipt(session, site, payment)
    back = url_for("console.stay", stay_id=payment.session_id) if payment.session_id else url_for("console.stays")
    return render_template("console/receipt.html", r=r, d=r.to_dict(), site=site, back_url=back)


@bp.post("/payments/<int:payment_id>/void")
@roles_required("void_payment")
def payment_void(payment_id: int):
    """A supervisor cancels a payment recorded by mistake (a reason is required; audited)."""
    session = db()
    payment = _payment(session, payment_id)
    stay = session.get(ParkingSession, payment.session_id) if payment.session_id else None
    form = VoidPaymentForm()
    if stay is None:  # pragma: no cover - the console only shows stays' payments
        rollback_only()
        return redirect(url_for("console.stays"), 303)
    if not form.validate_on_submit():
        return _back_to_stay(stay, "Payment not voided: " + " ".join(form.reason.errors or ["give a reason."]), 422)
    try:
        payments.void(session, session.get(Site, payment.site_id), payment, reason=form.reason.data,
                      user_id=me().id)
        session.commit()
    except ParkingError as exc:
        return _back_to_stay(stay, f"Payment not voided: {exc.message}", exc.status)
    flash(f"Payment #{payment.id} of {money(payment.amount_minor, payment.currency)} voided. "
          "It no longer counts as paid or as revenue.", "success")
    return redirect(url_for("console.stay", stay_id=stay.id), 303)

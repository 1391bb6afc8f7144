"""User administration (administrators): accounts, roles, and the sites each person may act on."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from ...records import user_admin, users
from ...records.audit import Actor
from ...records.errors import ParkingError
from ...records.models import Site, User
from ..auth import roles_required, start_session
from ..transaction import db, read_db, rollback_only
from . import bp
from .forms import UserEditForm, UserForm, options
from .scope import me


def _site_choices(session) -> list[tuple[int, str]]:
    return [(s.id, f"{s.code} · {s.name}") for s in session.scalars(select(Site).order_by(Site.code))]


@bp.get("/users")
@roles_required("manage_users")
def users_list():
    return render_template("console/users.html", rows=user_admin.list_users(read_db()))


def _form_page(form, user: User | None, status: int = 200, error: str | None = None):
    if error:
        rollback_only()
        form.form_errors.append(error)
    return render_template("console/user_form.html", form=form, user=user), status


@bp.route("/users/new", methods=["GET", "POST"])
@roles_required("manage_users")
def user_new():
    form = UserForm(formdata=request.form if request.method == "POST" else None)
    form.sites.choices = options(_site_choices(read_db()))
    if request.method == "GET":
        return _form_page(form, None)
    if not form.validate():
        rollback_only()
        return _form_page(form, None, 422)
    session = db()
    try:
        user = users.create_user(session, username=form.username.data, password=form.password.data,
                                 role=form.role.data, display_name=form.display_name.data or "",
                                 sites=[session.get(Site, i) for i in form.sites.data], actor=Actor.user(me().id))
    except ParkingError as exc:
        return _form_page(form, None, exc.status, exc.message)
    flash(f"User {user.username} created.", "success")
    return redirect(url_for("console.users_list"), 303)


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@roles_required("manage_users")
def user_edit(user_id: int):
    session = db() if request.method == "POST" else read_db()
    user = session.get(User, user_id)
    if user is None:
        abort(404, f"There is no user {user_id}.")
    form = UserEditForm(formdata=request.form if request.method == "POST" else None)
    form.sites.choices = options(_site_choices(session))
    if request.method == "GET":
        form.display_name.data, form.role.data, form.active.data = user.display_name, user.role, user.active
        form.sites.data = [s.id for s in user.sites]
        return _form_page(form, user)
    if not form.validate():
        rollback_only()
        return _form_page(form, user, 422)
    try:
        user_admin.update_user(session, user, display_name=form.display_name.data or "", role=form.role.data,
                               sites=[session.get(Site, i) for i in form.sites.data], active=form.active.data,
                               by=me())
        if form.password.data:
            users.set_password(session, user, form.password.data, actor=Actor.user(me().id))
            if user.id == me().id:
                start_session(user)  # an administrator who changes their own password stays logged in here
    except ParkingError as exc:
        return _form_page(form, user, exc.status, exc.message)
    flash(f"User {user.username} saved.", "success")
    return redirect(url_for("console.users_list"), 303)

"""Logging in and out, and where each role starts."""
from __future__ import annotations

import time
from urllib.parse import urlsplit

from flask import redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from ...records.accounts.sessions import end_sessions
from ...records.audit import Actor
from ...records.models import User
from ..auth import TooManyAttempts, check_login, remember_device, start_session
from ..transaction import db
from . import bp
from .forms import LoginForm
from .security import LOGIN_AT
from .templating import allowed

# The first page each role may use, in order of preference.
START_PAGES = (
    ("view_dashboard", "console.dashboard"),
    ("view_revenue", "console.revenue"),
    ("view_stays", "console.stays"),
    ("manage_users", "console.users_list"),
)


def _safe_next(target: str | None) -> str | None:
    """Only same-site relative paths: never redirect a fresh login to another host."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


@bp.get("/")
def home():
    if not current_user.is_authenticated:
        return redirect(url_for("console.login"))
    for action, endpoint in START_PAGES:
        if allowed(action):
            return redirect(url_for(endpoint))
    return redirect(url_for("console.shift"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    next_url = _safe_next(request.args.get("next"))
    if current_user.is_authenticated and request.method == "GET":
        return redirect(next_url or url_for("console.home"))
    error, status = None, 200
    if form.validate_on_submit():
        try:
            user = check_login(form.username.data, form.password.data, via="console")
        except TooManyAttempts as exc:
            user, error, status = None, f"Too many failed attempts. {exc.message.capitalize()}.", 429
        else:
            if user is None:
                error, status = "Wrong username or password.", 401
        if user is not None:
            session.clear()  # a fresh session for a fresh login
            login_user(user, remember=False)
            session.permanent = True
            session[LOGIN_AT] = time.time()
            start_session(user)
            return remember_device(redirect(next_url or url_for("console.home")), user.username)
    elif request.method == "POST":
        status = 422
    return render_template("console/login.html", form=form, error=error, next=next_url), status


@bp.post("/logout")
def logout():
    """Log out everywhere: a copy of this session's cookie (or any other session) stops working."""
    if current_user.is_authenticated:
        user = db().get(User, current_user.id)
        end_sessions(db(), user, reason="logout", actor=Actor.user(user.id))
    logout_user()
    session.clear()
    return redirect(url_for("console.login"))

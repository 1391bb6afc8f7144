"""Who is calling: lane controllers (bearer API keys) and people (console session or HTTP Basic).

Failures are counted per client address (and per username for passwords) in the
shared ``throttle`` table; past the limit the caller is locked out for a while
(HTTP 429), whatever it sends. A browser that has logged in as a user before has its
own allowance for that user (a signed device cookie), so nobody else can lock it out.
"""
from __future__ import annotations

import base64
import binascii
import logging
import secrets
from functools import wraps
from typing import Callable, Optional, TypeVar

from flask import Flask, Response, abort, current_app, g, request, session
from flask_login import LoginManager, current_user
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select

from ..records import sites, throttle, users
from ..records.accounts import logins
from ..records.accounts import sessions as account_sessions
from ..records.errors import Forbidden, ParkingError
from ..records.models import Device, Lane, User
from .transaction import context, read_db

F = TypeVar("F", bound=Callable)
log = logging.getLogger("parkinglot.auth")


class Unauthorized(ParkingError):
    code = "unauthorized"
    status = 401


class TooManyAttempts(ParkingError):
    code = "too_many_attempts"
    status = 429


def client_addr() -> str:
    return request.remote_addr or "unknown"


def _throttled(key: str) -> None:
    with context().sessions() as s:
        until = throttle.locked_until(s, key)
        s.rollback()
    if until is not None:
        raise TooManyAttempts(f"too many failed attempts; try again after {until.isoformat(timespec='seconds')}")


def _fail(key: str, max_key: str, lockout_key: str) -> None:
    cfg = current_app.config
    with context().sessions() as s:
        throttle.record_failure(s, key, max_failures=int(cfg[max_key]), lockout_s=int(cfg[lockout_key]))
        s.commit()


# --- devices --------------------------------------------------------------------------

def _bearer_key() -> str:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise Unauthorized("send the device API key as 'Authorization: Bearer <key>'")
    return header[7:].strip()


def _refuse_key() -> Unauthorized:
    key_name = f"apikey-ip:{client_addr()}"
    _throttled(key_name)
    _fail(key_name, "API_KEY_MAX_FAILURES", "API_KEY_LOCKOUT_S")
    return Unauthorized("invalid or revoked API key")


def _of_kind(device: Device, kind: str) -> Device:
    """A key works only on its own kind's endpoints: a pay station never drives a barrier,
    and a lane controller never records money."""
    if device.kind != kind:
        what = "a pay station" if device.kind == "pay_station" else "a lane controller"
        may = "the pay-station endpoints (/api/v1/pay/...)" if device.kind == "pay_station" else "the lane endpoints"
        raise Forbidden(f"this key belongs to {what}; it may only call {may}")
    return device


def require_device(kind: str = "lane_controller") -> Device:
    """The calling device, from ``Authorization: Bearer <key>``; 401/429 otherwise, 403 for a
    key of another ``kind``."""
    device = sites.authenticate_device(read_db(), _bearer_key())
    if device is None:
        raise _refuse_key()
    g.device = device
    return _of_kind(device, kind)


def require_pay_station() -> Device:
    """A pay station or payment terminal (device kind ``pay_station``)."""
    return require_device("pay_station")


def _check_lane(lane: Lane, device: Device) -> Lane:
    if lane.site_id != device.site_id:
        raise Forbidden("this device may only act on its own site's lanes")
    if device.lane_id is not None and device.lane_id != lane.id:
        raise Forbidden("this device key is bound to another lane")
    return lane


def lane_for_device(code: str, device: Device) -> Lane:
    return _check_lane(sites.get_lane(read_db(), code), device)


def require_device_on_lane(code: str) -> tuple[Device, Lane]:
    """``require_device`` and then ``lane_for_device``, with one query: the lane-event path."""
    device, lane = sites.device_and_lane(read_db(), _bearer_key(), code)
    if device is None:
        raise _refuse_key()
    g.device = device
    _of_kind(device, "lane_controller")
    if lane is None:
        lane = sites.get_lane(read_db(), code)  # raises NotFound (an unknown lane: the rare path)
    return device, _check_lane(lane, device)


# --- people ---------------------------------------------------------------------------

login_manager = LoginManager()
SESSION_VERSION = "session_version"  # the user's session version when this session logged in


def start_session(user: User) -> None:
    """Stamp the logged-in session with the user's session version (see ``records.accounts.sessions``)."""
    session[SESSION_VERSION] = user.session_version or 0


@login_manager.user_loader
def _load_user(user_id: str) -> Optional[User]:
    """The session's user, unless deactivated or their sessions were ended since this one began."""
    try:
        user = read_db().get(User, int(user_id))
    except ValueError:
        return None
    if user is None or not user.active or not account_sessions.is_current(user, session.get(SESSION_VERSION)):
        return None
    return user


# A browser that has logged in as a user before carries a signed device cookie naming it and
# that user; its failed attempts count against its own allowance, so a lockout caused by
# someone else (another address, a password-spraying script) does not shut it out.
DEVICE_COOKIE = "parkinglot_device"
DEVICE_COOKIE_MAX_AGE = 365 * 24 * 3600
_DEVICE_SALT = "parkinglot.device-cookie"
_DEVICE_USERS_MAX = 8  # a shared desk computer remembers the last few people who logged in on it


def _device_serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt=_DEVICE_SALT)


def _device() -> Optional[dict]:
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw:
        return None
    try:
        data = _device_serializer().loads(raw)
    except BadSignature:
        return None
    if (not isinstance(data, dict) or not isinstance(data.get("n"), str) or not isinstance(data.get("u"), list)
            or not all(isinstance(u, str) for u in data["u"])):
        return None
    return data


def known_device(username: str) -> Optional[str]:
    """This browser's id if it has logged in as ``username`` before (a valid signed device cookie)."""
    data = _device()
    return data["n"] if data is not None and username in data["u"] else None


def remember_device(response: Response, username: str) -> Response:
    """Add ``username`` to this browser's device cookie after a successful login."""
    data = _device() or {"n": secrets.token_urlsafe(16), "u": []}
    names = [u for u in data["u"] if u != username][-(_DEVICE_USERS_MAX - 1):] + [username]
    response.set_cookie(DEVICE_COOKIE, _device_serializer().dumps({"n": data["n"], "u": names}),
                        max_age=DEVICE_COOKIE_MAX_AGE, httponly=True, samesite="Lax",
                        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")))
    return response


def _login_failed(keys: list[tuple[str, str]], name: str, via: str, device: Optional[str]) -> None:
    """Count the failure on every key, audit it, and record any lockout it caused (one transaction)."""
    cfg = current_app.config
    max_failures, lockout_s = int(cfg["LOGIN_MAX_FAILURES"]), int(cfg["LOGIN_LOCKOUT_S"])
    with context().sessions() as s:
        user = s.scalar(select(User).where(User.username == name)) if users.is_valid_username(name) else None
        logins.failed(s, user, via=via, known_browser=device is not None)
        locked = []
        for scope, key in keys:
            was_locked = throttle.locked_until(s, key) is not None
            if throttle.record_failure(s, key, max_failures=max_failures, lockout_s=lockout_s) and not was_locked:
                locked.append(scope)
        if locked:
            log.warning("login lockout (%s) of %r for %s s, last from %s", "+".join(locked), name[:80], lockout_s,
                        client_addr())
            logins.locked_out(s, user, scopes=locked, lockout_s=lockout_s, failures=max_failures)
        s.commit()


def check_login(username: str, password: str, *, via: str = "api") -> Optional[User]:
    """Verify a password with throttling. Raises TooManyAttempts.

    A browser that has logged in as this user before (``known_device``) is throttled on its
    own allowance only. Anyone else is throttled per username and per client address. A
    username no account could have (too long, odd characters) is throttled per address only.
    """
    name = users.normalise_username(username)
    device = known_device(name) if users.is_valid_username(name) else None
    if device is not None:
        keys = [("browser", f"login-device:{device}:{name}")]
    else:
        keys = ([("account", f"login:{name}")] if users.is_valid_username(name) else []) + \
               [("address", f"login-ip:{client_addr()}")]
    for _scope, key in keys:
        _throttled(key)
    user = users.authenticate(read_db(), name, password)
    if user is None:
        _login_failed(keys, name, via, device)
        return None
    with context().sessions() as s:
        if keys[0][0] != "address":  # a success clears its account's (or browser's) count, never an address's
            throttle.reset(s, keys[0][1])
        if via == "console":
            logins.succeeded(s, user, via=via, known_browser=device is not None)
        s.commit()
    return user


def api_user() -> User:
    """The person calling the API: a console session cookie, or HTTP Basic credentials."""
    if current_user.is_authenticated:
        return current_user._get_current_object()
    header = request.headers.get("Authorization", "")
    if header.startswith("Basic "):
        try:
            username, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("malformed Basic credentials") from None
        user = check_login(username, password)
        if user is not None:
            return user
        raise Unauthorized("invalid username or password")
    raise Unauthorized("log in, or send HTTP Basic credentials")


def require_api_permission(action: str) -> User:
    user = api_user()
    if not users.can(user, action):
        raise Forbidden(f"your role ({user.role}) may not {action.replace('_', ' ')}")
    return user


def require_site_access(user: User, site_id: int) -> None:
    if site_id not in users.site_ids(read_db(), user):
        raise Forbidden("you have no access to that site")


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "console.login"
    login_manager.session_protection = "strong"


def roles_required(action: str) -> Callable[[F], F]:
    """Console decorator: logged in (else redirect to login) and allowed (else 403 page)."""
    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not users.can(current_user, action):
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator

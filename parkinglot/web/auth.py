"""Who is calling: lane controllers (bearer API keys) and people (console session or HTTP Basic).

Failures are counted per client address (and per username for passwords) in the
shared ``throttle`` table; past the limit the caller is locked out for a while
(HTTP 429), whatever it sends.
"""
from __future__ import annotations

import base64
import binascii
from functools import wraps
from typing import Callable, Optional, TypeVar

from flask import Flask, abort, current_app, g, request
from flask_login import LoginManager, current_user

from ..records import sites, throttle, users
from ..records.errors import Forbidden, ParkingError
from ..records.models import Device, Lane, User
from .transaction import context, read_db

F = TypeVar("F", bound=Callable)


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


@login_manager.user_loader
def _load_user(user_id: str) -> Optional[User]:
    try:
        user = read_db().get(User, int(user_id))
    except ValueError:
        return None
    return user if user is not None and user.active else None


def check_login(username: str, password: str) -> Optional[User]:
    """Verify a password with throttling per username and per address. Raises TooManyAttempts."""
    keys = [f"login:{(username or '').strip().lower()}", f"login-ip:{client_addr()}"]
    for key in keys:
        _throttled(key)
    user = users.authenticate(read_db(), username, password)
    if user is None:
        for key in keys:
            _fail(key, "LOGIN_MAX_FAILURES", "LOGIN_LOCKOUT_S")
        return None
    with context().sessions() as s:
        throttle.reset(s, keys[0])
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

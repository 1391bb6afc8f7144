"""Webhook notification when an alert is raised, sent off the request path.

The hook watches a session factory: alerts flushed in a transaction are
remembered, and only after that transaction commits are their ids handed to a
background thread (an O(1) queue put). The thread loads each alert, POSTs it as
JSON to the configured URL with a short timeout and a few retries, and stamps
``alert.notified_at``. A slow or dead receiver therefore never delays a lane's
reply, and an alert that was rolled back is never announced.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Optional

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, sessionmaker

from .models import Alert, Lane, Site
from .types import utcnow

log = logging.getLogger("parkinglot.notify")

PENDING_KEY = "parkinglot_new_alerts"
QUEUE_LIMIT = 1000
RETRY_DELAYS_S = (0.5, 2.0, 5.0)
SWEEP_EVERY_S = 30.0
SWEEP_MIN_AGE_S = 60


def alert_payload(session: Session, alert_id: int) -> Optional[dict[str, Any]]:
    """The JSON body for one alert, or None if the alert does not exist (rolled back)."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        return None
    site = session.get(Site, alert.site_id)
    lane = session.get(Lane, alert.lane_id) if alert.lane_id else None
    return {
        "event": "alert.raised",
        "alert": {
            "id": alert.id, "kind": alert.kind, "status": alert.status, "plate": alert.plate,
            "message": alert.message, "site": site.code if site else None, "lane": lane.code if lane else None,
            "session_id": alert.session_id, "read_id": alert.read_id, "created_at": alert.created_at.isoformat(),
        },
    }


def post_json(url: str, body: dict[str, Any], *, timeout_s: float, secret: str = "") -> None:
    """POST ``body``; raises on a network error or a non-2xx answer."""
    data = json.dumps(body, separators=(",", ":")).encode("utf-8")
    headers = {"Content-Type": "application/json", "User-Agent": "parkinglot-webhook/1"}
    if secret:
        digest = hmac.new(secret.encode("utf-8"), data, hashlib.sha256).hexdigest()
        headers["X-Parkinglot-Signature"] = f"sha256={digest}"
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - operator-configured URL
        if not 200 <= resp.status < 300:
            raise urllib.error.HTTPError(url, resp.status, "webhook refused", resp.headers, None)


class WebhookNotifier:
    """One daemon thread per process; ``submit`` never blocks the caller."""

    def __init__(self, sessions: sessionmaker[Session], url: str, *, timeout_s: float = 2.0, secret: str = "",
                 sender: Callable[..., None] = post_json, retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S) -> None:
        self.sessions = sessions
        self.url = url
        self.timeout_s = timeout_s
        self.secret = secret
        self.sender = sender
        self.retry_delays_s = retry_delays_s
        self._queue: "queue.Queue[int]" = queue.Queue(maxsize=QUEUE_LIMIT)
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    def submit(self, alert_id: int) -> None:
        self._ensure_started()
        try:
            self._queue.put_nowait(alert_id)
        except queue.Full:
            log.error("webhook queue full; alert %s not announced", alert_id)

    def _ensure_started(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="alert-webhook", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                alert_id = self._queue.get(timeout=SWEEP_EVERY_S)
            except queue.Empty:
                self.sweep()
                continue
            try:
                self.deliver(alert_id)
            except Exception:  # noqa: BLE001 - keep the thread alive
                log.exception("webhook for alert %s failed", alert_id)
            finally:
                self._queue.task_done()

    def deliver(self, alert_id: int) -> bool:
        """Send one alert (with retries) and stamp it; returns whether the receiver took it."""
        with self.sessions() as session:
            body = alert_payload(session, alert_id)
            session.rollback()
        if body is None:
            return False
        for attempt, delay in enumerate((0.0, *self.retry_delays_s)):
            if delay:
                time.sleep(delay)
            try:
                self.sender(self.url, body, timeout_s=self.timeout_s, secret=self.secret)
            except Exception as exc:  # noqa: BLE001 - any failure: retry, then give up and log
                log.warning("webhook attempt %d for alert %s failed: %s", attempt + 1, alert_id, exc)
                continue
            with self.sessions() as session:
                session.execute(update(Alert).where(Alert.id == alert_id).values(notified_at=utcnow()))
                session.commit()
            return True
        log.error("webhook for alert %s gave up after %d attempts", alert_id, 1 + len(self.retry_delays_s))
        return False

    def sweep(self, now=None) -> int:
        """Re-queue alerts that were never announced (the process died, or the receiver was down).

        Only alerts older than a minute (so in-flight ones aren't sent twice) and younger
        than a day (so switching the webhook on doesn't replay history).
        """
        from datetime import timedelta

        now = now or utcnow()
        try:
            with self.sessions() as session:
                ids = list(session.scalars(
                    select(Alert.id).where(Alert.notified_at.is_(None),
                                           Alert.created_at < now - timedelta(seconds=SWEEP_MIN_AGE_S),
                                           Alert.created_at > now - timedelta(days=1))
                    .order_by(Alert.id).limit(100)))
                session.rollback()
        except Exception:  # noqa: BLE001 - database down: try again later
            log.warning("webhook sweep skipped: database unavailable")
            return 0
        for alert_id in ids:
            self.submit(alert_id)
        return len(ids)

    def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until every submitted alert was handled (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)


def watch_alerts(sessions: sessionmaker[Session], notifier: WebhookNotifier) -> None:
    """Announce every alert committed through ``sessions`` (requests, lane events, the dispatcher)."""

    @event.listens_for(sessions, "after_flush")
    def _collect(session: Session, _ctx) -> None:
        new = [obj.id for obj in session.new if isinstance(obj, Alert)]
        if new:
            session.info.setdefault(PENDING_KEY, []).extend(new)

    @event.listens_for(sessions, "after_commit")
    def _send(session: Session) -> None:
        for alert_id in session.info.pop(PENDING_KEY, []):
            notifier.submit(alert_id)

    @event.listens_for(sessions, "after_transaction_end")
    def _forget(session: Session, transaction) -> None:
        if transaction.parent is None:  # the outer transaction ended without a commit: nothing to announce
            session.info.pop(PENDING_KEY, None)

"""Runs barrier commands (and other slow follow-up work) after the lane has its reply.

The request commits the decision and a pending ``barrier_command`` row, replies,
and only then hands the command id to this worker-local thread. If the process
dies first, the sweep picks the pending row up later: nothing is lost, and a
driver failure is recorded as a failed command plus a ``driver_failure`` alert.
"""
from __future__ import annotations

import logging
import queue
import threading
from datetime import timedelta
from typing import Callable, Optional

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ..records import alerts, audit
from ..records.models import BarrierCommand, Lane
from ..records.types import utcnow
from .drivers import DriverError, make_driver

log = logging.getLogger("parkinglot.barrier")

STALE_AFTER = timedelta(seconds=30)  # pending longer than this: the worker that owned it died


def execute(sessions: sessionmaker[Session], command_id: int) -> str:
    """Run one command through its lane's driver; returns the final status."""
    with sessions() as session:
        cmd = session.get(BarrierCommand, command_id)
        if cmd is None or cmd.status != "pending":
            return cmd.status if cmd else "missing"
        lane = session.get(Lane, cmd.lane_id)
        lane_code, driver_name, config = lane.code, lane.driver, dict(lane.driver_config or {})
        site_id, lane_id = lane.site_id, lane.id
        session.rollback()  # don't hold a transaction (or SQLite's lock) while the relay answers
    error: Optional[str] = None
    try:
        make_driver(driver_name, config).open(lane_code)
    except (DriverError, ValueError) as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a driver bug must still be recorded
        error = f"{type(exc).__name__}: {exc}"
    with sessions() as session:
        cmd = session.get(BarrierCommand, command_id)
        if cmd.status != "pending":  # another worker's sweep got there first
            session.rollback()
            return cmd.status
        cmd.attempts += 1
        cmd.completed_at = utcnow()
        cmd.status = "failed" if error else "done"
        cmd.error = error
        audit.append(session, f"barrier.{cmd.status}", "barrier_command", cmd.id,
                     {"lane": lane_code, "driver": driver_name, "error": error}, site_id=site_id)
        if error:
            log.error("barrier driver failed lane=%s command=%s: %s", lane_code, command_id, error)
            alerts.raise_alert(session, site_id=site_id, kind="driver_failure", lane_id=lane_id,
                               message=f"Barrier at {lane_code} did not open: {error}"[:300])
        session.commit()
        return cmd.status


def expire_stale(sessions: sessionmaker[Session], *, older_than: timedelta = STALE_AFTER) -> int:
    with sessions() as session:
        stale = session.scalars(
            select(BarrierCommand).where(BarrierCommand.status == "pending",
                                         BarrierCommand.created_at < utcnow() - older_than)
            .order_by(BarrierCommand.id).limit(100)
        ).all()
        for cmd in stale:
            lane = session.get(Lane, cmd.lane_id)
            cmd.status = "failed"
            cmd.completed_at = utcnow()
            cmd.error = "not executed in time (worker lost); not sent late"
            audit.append(session, "barrier.failed", "barrier_command", cmd.id,
                         {"lane": lane.code, "error": cmd.error}, site_id=lane.site_id)
            alerts.raise_alert(session, site_id=lane.site_id, kind="driver_failure", lane_id=lane.id,
                               message=f"Barrier command at {lane.code} was never executed; check the lane")
        session.commit()
        return len(stale)


class Dispatcher:
    """One background thread per worker process, fed by a queue, with a periodic sweep."""

    def __init__(self, sessions: sessionmaker[Session], *, sweep_interval_s: float = 10.0,
                 on_done: Optional[Callable[[int, str], None]] = None) -> None:
        self.sessions = sessions
        self.sweep_interval_s = sweep_interval_s
        self.on_done = on_done
        self._queue: "queue.Queue[Optional[int]]" = queue.Queue()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    def submit(self, command_id: int) -> None:
        self._ensure_started()
        self._queue.put(command_id)

    def _ensure_started(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="barrier-dispatch", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self.sweep_interval_s)
            except queue.Empty:
                self.sweep()
                continue
            if item is None:
                return
            try:
                status = execute(self.sessions, item)
                if self.on_done:
                    self.on_done(item, status)
            except Exception:  # noqa: BLE001 - keep the thread alive; the sweep retries
                log.exception("barrier command %s could not be executed", item)
            finally:
                self._queue.task_done()

    def sweep(self) -> int:
        """Fail commands left pending by a worker that died before running them.

        They are not executed late: opening a barrier half a minute after the car
        arrived could let the wrong vehicle through. An attendant gets an alert.
        """
        try:
            return expire_stale(self.sessions)
        except Exception:  # noqa: BLE001 - database down: try again next interval
            log.warning("barrier sweep skipped: database unavailable")
            return 0

    def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until every submitted command has run (tests, shutdown)."""
        if self._thread is None:
            return
        done = threading.Event()

        def waiter() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=waiter, daemon=True).start()
        done.wait(timeout_s)

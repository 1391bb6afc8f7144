"""A barrier that only exists in memory: for the demo, tests and commissioning.

Its command log is the ``barrier_command`` table (written by the dispatcher), so
its state is the same in every worker.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Mapping


class SimulatedDriver:
    name = "simulated"

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.pulse_ms = int(config.get("pulse_ms", 800))
        self.fail = bool(config.get("simulate_failure", False))
        self.delay_s = float(config.get("simulate_delay_s", 0.0))
        self.opened: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    def open(self, lane_code: str) -> None:
        from . import DriverError

        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail:
            raise DriverError("simulated relay failure")
        with self._lock:
            self.opened.append((lane_code, time.time()))

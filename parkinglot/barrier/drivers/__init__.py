"""Barrier drivers: what actually raises the arm.

A driver gets a lane's ``driver_config`` and opens the barrier for one pulse.
Drivers raise ``DriverError`` on failure; the dispatcher records it and raises
a ``driver_failure`` alert. The decision record never depends on the driver.
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol


class DriverError(Exception):
    """The relay did not confirm the command."""


class BarrierDriver(Protocol):
    name: str
    pulse_ms: int

    def open(self, lane_code: str) -> None: ...


def make_driver(name: str, config: Mapping[str, Any]) -> BarrierDriver:
    from .http_relay import HttpRelayDriver
    from .simulated import SimulatedDriver

    drivers = {"simulated": SimulatedDriver, "http_relay": HttpRelayDriver}
    try:
        cls = drivers[name]
    except KeyError:
        raise ValueError(f"unknown barrier driver {name!r}; known: {', '.join(sorted(drivers))}") from None
    return cls(config)

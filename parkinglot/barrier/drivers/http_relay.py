"""A network relay board driven over HTTP (e.g. a Shelly/ESP relay or a vendor's controller).

Configured per lane::

    {"url": "http://10.0.0.21/relay/0?turn=on&timer=1", "method": "GET",
     "headers": {...}, "body": "...", "timeout_s": 1.5, "retries": 2, "backoff_s": 0.2}

A timeout, a connection error or a non-2xx status is a failure; retries back off
exponentially. The whole attempt is bounded, so a hanging relay can't hold a worker.
"""
from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any, Mapping


class HttpRelayDriver:
    name = "http_relay"

    def __init__(self, config: Mapping[str, Any]) -> None:
        url = str(config.get("url", ""))
        if not url.startswith(("http://", "https://")):
            raise ValueError("http_relay needs an http(s) url")
        self.url = url
        self.method = str(config.get("method", "POST")).upper()
        self.headers = dict(config.get("headers", {}))
        body = config.get("body")
        self.body = body.encode() if isinstance(body, str) else None
        self.timeout_s = float(config.get("timeout_s", 1.5))
        self.retries = int(config.get("retries", 2))
        self.backoff_s = float(config.get("backoff_s", 0.2))
        self.pulse_ms = int(config.get("pulse_ms", 800))

    def open(self, lane_code: str) -> None:
        from . import DriverError

        last = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * (2 ** (attempt - 1)))
            req = urllib.request.Request(self.url, data=self.body, method=self.method,
                                         headers={"X-Parkinglot-Lane": lane_code, **self.headers})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - configured URL
                    if 200 <= resp.status < 300:
                        return
                    last = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"{type(reason).__name__}: {reason}"
        raise DriverError(f"relay {self.url} failed after {self.retries + 1} attempts: {last}")

"""Waiting for something to become true, by asking again and again until a deadline."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


class TimedOut(RuntimeError):
    pass


def wait_for(what: str, check: Callable[[], T | None], timeout: float, interval: float) -> T:
    """Calls `check` every `interval` seconds until it returns something truthy, and
    returns that. An exception from `check` counts as "not yet"; when `timeout` seconds
    pass first, TimedOut names `what`, the time waited and the last such exception."""
    started = time.monotonic()
    last_error: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception as error:  # whatever the check raises, it may pass the next time
            last_error = error
        waited = time.monotonic() - started
        if waited > timeout:
            raised = f"; the last exception the check raised: {type(last_error).__name__}: {last_error}" if last_error else ""
            raise TimedOut(f"timed out after {waited:.1f} s waiting for {what} (asked every {interval:g} s){raised}") from last_error
        time.sleep(interval)

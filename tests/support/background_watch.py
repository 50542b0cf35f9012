"""What a test watches while something else happens (a rollout, a drain): a sample taken
in the background, over and over, until the `with` block ends.

    class ReadyWatch(BackgroundWatch):
        def sample(self) -> None:
            self.lowest = min(self.lowest, ready_replicas())

    with ReadyWatch(interval=0.2) as watch:
        roll_out()
    assert watch.samples > 3 and watch.lowest >= 1
"""

from __future__ import annotations

import threading
from typing import Self


class BackgroundWatch:
    def __init__(self, interval: float):
        self.interval = interval
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(10)

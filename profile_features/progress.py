"""Progress of a long stage, followed from the driver by a background thread.

Subclasses say how to count (`poll`: units done so far, plus named totals for the bar and the log
line); this base shows it as a tqdm bar on a terminal only (`disable=None`) and as a log line every
`log_every` seconds and at the end, which is what a scheduler's log keeps. Progress is information
only: a failed poll is logged at DEBUG and never fails the stage.
"""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["PolledProgress"]


class PolledProgress:
    """Context manager: polls every `interval` seconds until exit.

    Args:
        name: the stage, first word of the bar and the log line.
        total: units expected (None: unknown until polled).
        unit, units: what one unit is, singular and plural ("history", "histories").
    """

    logger = logging.getLogger(__name__)

    def __init__(
        self, name: str, total: int | None, unit: str, units: str, interval: float = 2.0, log_every: float = 30.0
    ):
        self.name, self.total, self.unit, self.units = name, total, unit, units
        self.interval, self.log_every = interval, log_every
        self.done = 0
        self.extra: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{name}-progress", daemon=True)
        self._started = self._logged = 0.0
        self._bar = None

    def poll(self) -> None:
        """Update `done` (and `total`, `extra`) from wherever the stage leaves its traces."""
        raise NotImplementedError

    def line(self) -> str:
        done, elapsed, total = self.done, time.monotonic() - self._started, self.total
        eta = f"{(total - done) * elapsed / done:.0f}s" if done and total else "?"
        share = f" ({100.0 * done / total:.0f}%)" if total else ""
        extra = "".join(f", {value} {key.replace('_', ' ')}" for key, value in self.extra.items())
        return f"{self.name}: {done}/{total if total is not None else '?'} {self.units}{share}{extra}, ETA {eta}"

    def _update(self) -> None:
        before = self.done
        self.poll()
        if self._bar is not None:
            if self.total is not None and self._bar.total != self.total:
                self._bar.total = self.total
            self._bar.update(self.done - before)
            if self.extra:
                self._bar.set_postfix(self.extra, refresh=False)
        if time.monotonic() - self._logged >= self.log_every:
            self._logged = time.monotonic()
            self.logger.info("%s", self.line())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._update()
            except Exception as err:  # noqa: BLE001 - information only, see the module docstring
                self.logger.debug("%s progress: %s", self.name, err)

    def __enter__(self):
        from tqdm.auto import tqdm

        self._started = self._logged = time.monotonic()
        self._bar = tqdm(total=self.total, unit=self.unit, desc=self.name, disable=None)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._logged = float("-inf")  # the final totals always reach the log
        try:
            self._update()
        except Exception as err:  # noqa: BLE001
            self.logger.debug("%s progress: %s", self.name, err)
        self._bar.close()

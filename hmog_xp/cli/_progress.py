"""A one-line text progress bar for fitting, redrawn in place with a carriage return."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO


class ProgressBar:
    """Draw ``label [#####.....] it/total  log-lik value`` on one line of a text stream.

    Use it as the estimator's ``callback``: every call redraws the line (at most every
    ``interval`` seconds, and always on the last iteration); :meth:`close` ends the line.
    A disabled bar draws nothing.

    Parameters
    ----------
    total : int
        The iteration count that fills the bar (``max_iter``).
    label : str, default 'fit'
        Text in front of the bar.
    stream : text stream, optional
        Where to draw; ``sys.stderr`` when None.
    width : int, default 30
        Number of characters inside the brackets.
    enabled : bool, default True
        Whether to draw at all.
    interval : float, default 0.05
        Minimum seconds between redraws.
    """

    def __init__(
        self,
        total: int,
        *,
        label: str = "fit",
        stream: TextIO | None = None,
        width: int = 30,
        enabled: bool = True,
        interval: float = 0.05,
    ) -> None:
        self.total = max(int(total), 1)
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.width = max(int(width), 1)
        self.enabled = enabled
        self.interval = interval
        self.iteration = 0
        self.value = math.nan
        self._last_draw = -math.inf
        self._drawn = False

    def line(self) -> str:
        """Return the bar's current text (without the carriage return).

        Returns
        -------
        str
            For example ``'fit [######........] 12/50  log-lik -41.2031'``.
        """
        fraction = min(self.iteration / self.total, 1.0)
        filled = round(fraction * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        digits = len(str(self.total))
        value = "   ..." if math.isnan(self.value) else f"{self.value:.4f}"
        return f"{self.label} [{bar}] {self.iteration:>{digits}}/{self.total}  log-lik {value}"

    def __call__(self, iteration: int, log_likelihood: float) -> None:
        """Record one iteration and redraw the line.

        Parameters
        ----------
        iteration : int
            The iteration just finished (counted from 1; a count from 0 is accepted too).
        log_likelihood : float
            The average log-likelihood after it.
        """
        self.iteration = int(iteration)
        self.value = float(log_likelihood)
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last_draw < self.interval and self.iteration < self.total:
            return
        self._last_draw = now
        self._draw()

    def _draw(self) -> None:
        self.stream.write("\r" + self.line())
        self.stream.flush()
        self._drawn = True

    def close(self, note: str = "") -> None:
        """Redraw the final state and end the line.

        Parameters
        ----------
        note : str, default ''
            Text appended after the bar (e.g. ``'converged'``).
        """
        if not self.enabled:
            return
        if self._drawn or self.iteration > 0:
            self.stream.write("\r" + self.line() + (f"  {note}" if note else "") + "\n")
            self.stream.flush()
        self._drawn = False

"""The fitting progress bar: tqdm's, drawn on a terminal only.

Redrawing a line in place needs a carriage return, which a log file would keep; so the bar is
drawn only when its stream is a terminal (and not ``--quiet``), and nothing at all otherwise.
"""

from __future__ import annotations

import math
import sys
from typing import Any, TextIO


class ProgressBar:
    """Show fitting progress (iteration out of ``max_iter``, average log-likelihood) with tqdm.

    Use it as the estimator's ``callback``; :meth:`close` ends the line.

    Parameters
    ----------
    total : int
        The iteration count that fills the bar (``max_iter``).
    label : str, default 'fit'
        Text in front of the bar.
    stream : text stream, optional
        Where to draw; ``sys.stderr`` when None.
    enabled : bool, default True
        Whether to draw at all (``--quiet`` turns it off). A stream that is not a terminal
        gets nothing either.
    """

    def __init__(
        self,
        total: int,
        *,
        label: str = "fit",
        stream: TextIO | None = None,
        enabled: bool = True,
    ) -> None:
        self.total = max(int(total), 1)
        self.stream = sys.stderr if stream is None else stream
        self.iteration = 0
        self.value = math.nan
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = bool(enabled and callable(isatty) and isatty())
        self._bar: Any = None
        if self.enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self.total, desc=label, file=self.stream, leave=True, dynamic_ncols=True
            )

    def __call__(self, iteration: int, log_likelihood: float) -> None:
        """Record one iteration and update the bar.

        Parameters
        ----------
        iteration : int
            The iteration just finished (counted from 1).
        log_likelihood : float
            The average log-likelihood after it.
        """
        self.iteration = int(iteration)
        self.value = float(log_likelihood)
        if self._bar is None:
            return
        self._bar.n = min(self.iteration, self.total)
        self._bar.set_postfix_str(f"log-lik {self.value:.4f}", refresh=False)
        self._bar.refresh()

    def close(self, note: str = "") -> None:
        """Draw the final state and end the line.

        Parameters
        ----------
        note : str, default ''
            Text appended after the bar (e.g. ``'converged'``).
        """
        if self._bar is None:
            return
        if note:
            self._bar.set_postfix_str(f"log-lik {self.value:.4f} {note}", refresh=False)
        self._bar.refresh()
        self._bar.close()
        self._bar = None

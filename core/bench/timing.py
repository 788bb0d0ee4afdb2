"""One way to time a piece of work: the median of several runs after a warm-up."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(fn: Callable[[], object], repeats: int, warm_up: bool = True) -> float:
    """The median wall time of ``repeats`` runs of ``fn``; a first, untimed run pays for allocation and kernels."""
    if warm_up:
        fn()
    times = []
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)

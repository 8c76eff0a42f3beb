"""Seconds and peak memory of a block of work (one case's prediction).

Peak host memory is the process's resident set size sampled every few milliseconds from
``/proc/self/statm`` (Linux; elsewhere the process-lifetime maximum from ``resource``), written by
hand because neither torch nor nnU-Net measures CPU memory per call. On CUDA the peak allocated GPU
memory comes from ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


@dataclass
class Measurement:
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    peak_gpu_mb: float | None = None


class measure:  # noqa: N801 - used as a context manager: ``with measure(device) as m:``
    """Time a block and record its peak memory (host RSS, and GPU memory on CUDA)."""

    def __init__(self, device: str = "cpu", interval_s: float = 0.005) -> None:
        self.device = device
        self.interval_s = interval_s
        self.result = Measurement()
        self._stop = threading.Event()
        self._peak = 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, _rss_bytes())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> Measurement:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self._peak = _rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self._start = time.perf_counter()
        return self.result

    def __exit__(self, *exc) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            self.result.peak_gpu_mb = torch.cuda.max_memory_allocated() / 2**20
        self.result.seconds = time.perf_counter() - self._start
        self._stop.set()
        self._thread.join()
        self.result.peak_rss_mb = max(self._peak, _rss_bytes()) / 2**20

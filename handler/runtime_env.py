"""Process-level runtime choices: how many CPU threads, which device.

Workers x threads must never exceed the cores: TorchServe starts ``WORKERS`` Python
processes, and each one running PyTorch's default (one thread per core) oversubscribes
the CPU badly (measured here: 2 workers with default threads served 4x less than 1).
"""

from __future__ import annotations

import ctypes
import gc
import os
from pathlib import Path

import torch


def available_cpus() -> int:
    """CPUs this process may use: affinity mask, capped by a cgroup v2/v1 CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        count = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        count = max(1, min(count, int(quota)))
    return max(1, count)


def _cgroup_cpu_quota() -> float | None:
    try:
        raw = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if raw and raw[0] != "max":
            return int(raw[0]) / int(raw[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def threads_per_worker(workers: int, override: int = 0, cpus: int | None = None) -> int:
    """Intra-op threads for one worker: the override if set, else cores // workers (>= 1)."""
    if override > 0:
        return override
    cpus = cpus if cpus is not None else available_cpus()
    return max(1, cpus // max(1, workers))


def configure_torch_threads(threads: int) -> None:
    """Apply the thread budget; inter-op parallelism is useless for one forward pass at a time."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set in this process (it may only be set once)


def select_device(requested: str, gpu_id: int | None) -> torch.device:
    """``DEVICE=cuda`` uses TorchServe's assigned GPU; cuda without a GPU is a start-up error."""
    requested = (requested or "cpu").lower()
    if requested == "cpu":
        return torch.device("cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("DEVICE=cuda but no CUDA device is available to this worker")
        if ":" in requested:
            return torch.device(requested)
        return torch.device(f"cuda:{gpu_id or 0}")
    raise ValueError(f"DEVICE must be cpu or cuda, not {requested!r}")


def release_freed_memory() -> int:
    """Hand the heap that model loading freed (the eager copy of the weights, conversion
    buffers) back to the OS, so the worker's RSS shows what it keeps: ~100 MB measured with
    BACKEND=openvino. glibc only; elsewhere a no-op. Returns 1 when memory was released."""
    gc.collect()
    try:
        return int(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return 0

"""The machine a figure was measured on, in lscpu's words: the model name, the CPU family (it tells Zen 1
from Zen 3 and Zen 4 where the model name only says "AMD EPYC"), the instruction sets that decide the
kernels' speed, and the cores this process may use. Every benchmark report records it."""

from __future__ import annotations

import os
from pathlib import Path

VECTOR_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


def cpu_description() -> dict:
    info: dict = {"cpu": "unknown", "cpu_family": None, "model": None, "vector_flags": []}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name" and info["cpu"] == "unknown":
                info["cpu"] = value
            elif key == "cpu family" and info["cpu_family"] is None:
                info["cpu_family"] = int(value)
            elif key == "model" and info["model"] is None:
                info["model"] = int(value)
            elif key == "flags" and not info["vector_flags"]:
                flags = set(value.split())
                info["vector_flags"] = [flag for flag in VECTOR_FLAGS if flag in flags]
    except (OSError, ValueError):
        pass
    info["cores"] = len(os.sched_getaffinity(0))
    return info

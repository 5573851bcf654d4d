"""A cache of the model already converted for the runtime, so a worker restart does not convert
it again.

Converting the eager ResNet-50 to OpenVINO's form traces it through PyTorch: seconds on two
cores at every worker start (docs/performance.md), while reading the converted files back takes
a hundredth of a second. The converted model depends on the weights and on both libraries'
versions, so that is the key; the input size is part of it because shapes are fixed at
conversion. An entry is written under a temporary name and renamed whole, so a worker killed
while writing never leaves half an entry that another would read. What a cached entry computes
is proven at every start like any model: the self-test compares its logits with the archive's.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ENTRY_FILE = "model.xml"  # OpenVINO writes model.bin beside it


def cache_key(weights_sha256: str, input_size: int, runtime: str, runtime_version: str,
              torch_version: str) -> str:
    """A directory name that changes whenever the converted model could."""
    raw = f"{weights_sha256[:16]}-{input_size}-{runtime}{runtime_version}-torch{torch_version}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", raw)


@dataclass(frozen=True)
class ConvertedModelCache:
    """Where converted models are looked up (in order) and where a new one is written."""

    key: str
    read_from: tuple[Path, ...]
    write_to: Path | None

    def find(self) -> Path | None:
        """The converted model's main file, from the first location that has a whole entry."""
        for root in self.read_from:
            entry = Path(root) / self.key / ENTRY_FILE
            if entry.is_file() and entry.with_suffix(".bin").is_file():
                return entry
        return None

    def store(self, save: Callable[[Path], None]) -> Path | None:
        """Write an entry with ``save(path_of_main_file)``; return its main file, or None when
        there is nowhere writable (the model is then simply converted at each start)."""
        if self.write_to is None:
            return None
        try:
            self.write_to.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{self.key}.", dir=self.write_to))
        except OSError:
            return None
        final = self.write_to / self.key
        try:
            save(staging / ENTRY_FILE)
            os.rename(staging, final)  # atomic; fails if another worker got there first
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            return final / ENTRY_FILE if (final / ENTRY_FILE).is_file() else None
        return final / ENTRY_FILE


def cache_for_weights(cache_dir: str, weights_sha256: str, input_size: int, runtime: str,
                      runtime_version: str) -> ConvertedModelCache | None:
    """The cache for these weights in MODEL_CACHE_DIR (the supervisor sets RUN_DIR/model-cache);
    unset (KServe's runtime, a bare TorchServe), every start converts again."""
    if not cache_dir:
        return None
    import torch  # the conversion traces through it, so its version is part of the key

    key = cache_key(weights_sha256, input_size, runtime, runtime_version, torch.__version__)
    return ConvertedModelCache(key=key, read_from=(Path(cache_dir),), write_to=Path(cache_dir))

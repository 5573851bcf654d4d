"""An optional, bounded LRU cache of class probabilities for byte-identical images.

Keyed by the SHA-256 of the image bytes (top_k is applied after the lookup, so one entry
serves every top_k). Each entry holds one float32 row (4 KB for 1000 classes) plus the image
facts, so the memory bound is about ``capacity`` x 4 KB per worker. Off (capacity 0) by default.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CachedResult:
    probabilities: torch.Tensor
    width: int
    height: int
    format: str


def content_key(image_bytes: bytes) -> str:
    return hashlib.sha256(image_bytes).hexdigest()


class ResultCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = max(0, capacity)
        self._entries: OrderedDict[str, CachedResult] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def get(self, key: str) -> CachedResult | None:
        if not self.enabled:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: str, entry: CachedResult) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._entries[key] = CachedResult(entry.probabilities.detach().clone(), entry.width, entry.height,
                                              entry.format)
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

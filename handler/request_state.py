"""Per-request state carried through the handler's three stages.

Kept out of the entry module: TorchServe's loader insists on exactly one class there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from handler.errors import ServiceError
from handler.pipeline import PreparedImage
from handler.request_parsing import ParsedRequest
from handler.result_cache import CachedResult


@dataclass
class RequestState:
    """One request of a TorchServe batch as it moves through the three stages."""

    index: int
    request_id: str
    started: float
    kind: str = "predict"  # "predict" | "health" | "describe"
    parsed: ParsedRequest | None = None
    prepared: PreparedImage | None = None
    probabilities: torch.Tensor | None = None
    error: ServiceError | None = None
    cache_key: str | None = None
    cached: CachedResult | None = None
    timing_ms: dict[str, float] = field(default_factory=dict)

"""Per-request state carried through the handler's three stages.

Kept out of the entry module: TorchServe's loader insists on exactly one class there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from handler.errors import ServiceError
from handler.pipeline import PreparedImage
from handler.request_parsing import ParsedRequest
from handler.result_cache import CachedResult

if TYPE_CHECKING:
    from handler.wire_formats import WireFormat


@dataclass
class ImageItem:
    """One image of a request (a request carries one, or several in the multi-image forms)."""

    position: int
    image_bytes: bytes = b""
    prepared: PreparedImage | None = None
    probabilities: torch.Tensor | None = None
    error: ServiceError | None = None
    cache_key: str | None = None
    cached: CachedResult | None = None

    @property
    def needs_inference(self) -> bool:
        return self.prepared is not None and self.error is None


@dataclass
class RequestState:
    """One request of a TorchServe batch as it moves through the three stages."""

    index: int
    request_id: str
    started: float
    kind: str = "predict"  # "predict" | "health" | "describe"
    parsed: ParsedRequest | None = None
    items: list[ImageItem] = field(default_factory=list)
    error: ServiceError | None = None  # the whole request failed (one status for it)
    timing_ms: dict[str, float] = field(default_factory=dict)
    wire: WireFormat | None = None  # how the request was read and is answered (handler/wire_formats.py)
    wire_request: Any = None  # what else its format's parser read (v2: the request id and requested output)

    @property
    def multi(self) -> bool:
        return self.parsed is not None and self.parsed.multi

    @property
    def image_bytes(self) -> int:
        return sum(len(item.image_bytes) for item in self.items)

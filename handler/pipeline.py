"""The classification pipeline without TorchServe: bytes -> tensor -> probabilities.

The handler drives it per TorchServe batch; benchmarks and the GPU check drive it
in-process. It owns the model metadata, the backend and the decode limits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from handler.backends import Backend
from handler.decoding import DecodedImage, DecodeLimits, decode_image
from handler.model_meta import ModelMeta
from handler.selftest import SelfTestResult, compare_logits, selftest_input
from handler.transforms import to_model_input


@dataclass(frozen=True)
class PreparedImage:
    tensor: torch.Tensor
    decoded: DecodedImage


class ClassificationPipeline:
    def __init__(self, meta: ModelMeta, backend: Backend, limits: DecodeLimits) -> None:
        self.meta = meta
        self.backend = backend
        self.limits = limits

    def prepare(self, image_bytes: bytes) -> PreparedImage:
        """Decode, validate and transform one image; raises the typed errors of ``decoding``."""
        decoded = decode_image(image_bytes, self.limits)
        return PreparedImage(tensor=to_model_input(decoded.image, self.meta.preprocessing), decoded=decoded)

    def probabilities(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """One forward pass over the batch; softmax over all classes, float32, shape (N, classes)."""
        logits = self.backend(torch.stack(tensors))
        return torch.softmax(logits.float(), dim=1)

    def run_selftest(self, tolerance: float, expected_logits: tuple[float, ...] | None = None) -> SelfTestResult:
        """Recompute the archived self-test logits (or ``expected_logits``) with the loaded backend."""
        test = self.meta.selftest
        actual = self.backend(selftest_input(test.seed, test.shape))
        reference = test.logits if expected_logits is None else expected_logits
        expected = torch.tensor(reference, dtype=torch.float32).reshape(actual.shape)
        return compare_logits(actual, expected, tolerance)

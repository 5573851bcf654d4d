"""The model's self-test: a fixed synthetic input whose logits are recorded at build time.

At worker start the handler recomputes them; a mismatch (corrupted, truncated or swapped
weights, a broken backend) stops the worker from ever becoming ready.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


class SelfTestFailed(RuntimeError):
    """The loaded model does not reproduce the archived reference output."""


@dataclass(frozen=True)
class SelfTestResult:
    relative_error: float
    tolerance: float
    top5_match: bool

    @property
    def passed(self) -> bool:
        return self.relative_error <= self.tolerance and self.top5_match

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "relative_error": self.relative_error,
            "tolerance": self.tolerance,
            "top5_match": self.top5_match,
        }


def selftest_input(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Deterministic input: same seed and shape give the same tensor on any machine."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float32)


def compare_logits(actual: torch.Tensor, expected: torch.Tensor, tolerance: float) -> SelfTestResult:
    """Relative L2 error of the logits, plus whether the top-5 classes agree."""
    actual = actual.detach().double().flatten()
    expected = expected.detach().double().flatten()
    if actual.shape != expected.shape:
        return SelfTestResult(relative_error=float("inf"), tolerance=tolerance, top5_match=False)
    error = float(torch.linalg.vector_norm(actual - expected) / torch.linalg.vector_norm(expected).clamp_min(1e-12))
    k = min(5, expected.numel())  # a custom model may have fewer than five classes
    top5_match = bool(torch.equal(actual.topk(k).indices, expected.topk(k).indices))
    if error != error:  # NaN never passes
        error = float("inf")
    return SelfTestResult(relative_error=error, tolerance=tolerance, top5_match=top5_match)

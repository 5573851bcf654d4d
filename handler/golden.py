"""The optional golden set: labelled images archived with the model, classified at worker start.

The synthetic self-test proves the weights are the archived ones; the golden set proves the
whole path (decode, preprocessing, backend, precision) still classifies real inputs as well as
it did at build time. ``scripts/archive/build_mar.py --golden DIR`` records the accuracy the eager
model reached; a worker whose accuracy falls below it minus the tolerance never serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

GOLDEN_DIR = "golden"  # inside the archive
DEFAULT_TOLERANCE = 0.05  # absolute accuracy; one flip in 20+ images passes, two in 20 do not
BATCH = 8


@dataclass(frozen=True)
class GoldenImage:
    file: str  # path inside the archive
    class_id: int


@dataclass(frozen=True)
class GoldenSet:
    images: tuple[GoldenImage, ...]
    recorded_accuracy: float  # the eager fp32 model's, at build time
    tolerance: float

    @classmethod
    def from_dict(cls, raw: dict) -> GoldenSet:
        return cls(images=tuple(GoldenImage(str(i["file"]), int(i["class_id"])) for i in raw["images"]),
                   recorded_accuracy=float(raw["accuracy"]), tolerance=float(raw["tolerance"]))

    def to_dict(self) -> dict:
        return {"images": [{"file": i.file, "class_id": i.class_id} for i in self.images],
                "accuracy": self.recorded_accuracy, "tolerance": self.tolerance}


@dataclass(frozen=True)
class GoldenResult:
    images: int
    correct: int
    recorded_accuracy: float
    tolerance: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.images if self.images else 0.0

    @property
    def passed(self) -> bool:
        return self.accuracy >= self.recorded_accuracy - self.tolerance - 1e-9

    def to_dict(self) -> dict:
        return {"passed": self.passed, "images": self.images, "correct": self.correct,
                "accuracy": round(self.accuracy, 4), "recorded_accuracy": round(self.recorded_accuracy, 4),
                "tolerance": self.tolerance}


def count_correct(samples: list[tuple[bytes, int]], prepare: Callable[[bytes], torch.Tensor],
                  logits: Callable[[torch.Tensor], torch.Tensor]) -> int:
    """How many images the model puts in their class (top-1), in batches of BATCH.
    Build time and worker start call it with the same ``prepare`` (decode + transform)."""
    correct = 0
    for start in range(0, len(samples), BATCH):
        chunk = samples[start:start + BATCH]
        batch = torch.stack([prepare(data) for data, _ in chunk])
        predicted = logits(batch).argmax(dim=1).tolist()
        correct += sum(int(p == class_id) for p, (_, class_id) in zip(predicted, chunk))
    return correct


def evaluate(golden: GoldenSet, model_dir: str | Path, prepare: Callable[[bytes], torch.Tensor],
             logits: Callable[[torch.Tensor], torch.Tensor]) -> GoldenResult:
    """Classify the archived golden images with the loaded model."""
    root = Path(model_dir)
    samples = [((root / image.file).read_bytes(), image.class_id) for image in golden.images]
    return GoldenResult(images=len(samples), correct=count_correct(samples, prepare, logits),
                        recorded_accuracy=golden.recorded_accuracy, tolerance=golden.tolerance)

"""The weights' own reference transform, parameterised by the archive's metadata.

``to_model_input`` computes exactly what torchvision's ``ImageClassification`` preset
computes on a PIL image (resize -> centre crop -> to tensor -> float -> normalise), with the
numbers read from ``model_meta.json`` so they are written down once, at archive build time.
It makes the same Pillow calls torchvision's functional API makes, without importing
torchvision: that import costs a worker about 2 s and 170 MB at every (re)start
(docs/performance.md, "Restarts"). tests/unit/test_transforms.py holds it equal, bit for bit,
to torchvision's own functions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image

# torchvision's InterpolationMode values -> the Pillow filter torchvision hands them to
# (torchvision.transforms.functional.pil_modes_mapping).
PIL_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class PreprocessSpec:
    """Parameters of the reference transform (torchvision ``weights.transforms()``)."""

    resize_size: int
    crop_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"
    antialias: bool = True

    @classmethod
    def from_dict(cls, raw: dict) -> PreprocessSpec:
        return cls(
            resize_size=int(raw["resize_size"]),
            crop_size=int(raw["crop_size"]),
            mean=tuple(float(v) for v in raw["mean"]),
            std=tuple(float(v) for v in raw["std"]),
            interpolation=str(raw.get("interpolation", "bilinear")),
            antialias=bool(raw.get("antialias", True)),
        )

    @classmethod
    def from_torchvision(cls, preset) -> PreprocessSpec:
        """Read the numbers off a torchvision ``ImageClassification`` preset object."""
        return cls(
            resize_size=int(preset.resize_size[0]),
            crop_size=int(preset.crop_size[0]),
            mean=tuple(float(v) for v in preset.mean),
            std=tuple(float(v) for v in preset.std),
            interpolation=preset.interpolation.value,
            antialias=bool(preset.antialias),
        )

    def __post_init__(self) -> None:
        # Checked once, where the numbers are read (archive metadata, build options), not per
        # image: torchvision would pad such a crop, this transform does not.
        if self.crop_size > self.resize_size:
            raise ValueError(f"crop {self.crop_size} is larger than resize {self.resize_size}; "
                             "the centre crop must fit in the resized image")

    def to_dict(self) -> dict:
        return asdict(self)


def resized_size(width: int, height: int, shorter_edge: int) -> tuple[int, int]:
    """(width, height) with the shorter edge at ``shorter_edge`` and the aspect ratio kept,
    the longer edge truncated as torchvision truncates it."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = shorter_edge, int(shorter_edge * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def to_model_input(image: Image.Image, spec: PreprocessSpec) -> torch.Tensor:
    """RGB PIL image -> normalised float tensor of shape (3, crop, crop)."""
    size = resized_size(image.width, image.height, spec.resize_size)
    if size != image.size:  # Pillow's filters antialias when shrinking, as torchvision notes
        image = image.resize(size, PIL_FILTERS[spec.interpolation])
    crop = spec.crop_size
    top = int(round((image.height - crop) / 2.0))
    left = int(round((image.width - crop) / 2.0))
    cropped = np.array(image.crop((left, top, left + crop, top + crop)), dtype=np.uint8)  # a writable copy
    tensor = torch.from_numpy(cropped).permute(2, 0, 1).to(torch.float) / 255.0
    mean = torch.as_tensor(spec.mean, dtype=torch.float).view(-1, 1, 1)
    std = torch.as_tensor(spec.std, dtype=torch.float).view(-1, 1, 1)
    return tensor.sub_(mean).div_(std)

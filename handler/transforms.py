"""The weights' own reference transform, parameterised by the archive's metadata.

``to_model_input`` makes exactly the calls torchvision's ``ImageClassification`` preset
makes (resize -> centre crop -> to tensor -> float -> normalise), with the numbers read
from ``model_meta.json`` so they are written down once, at archive build time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F


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

    def to_dict(self) -> dict:
        return asdict(self)


def to_model_input(image: Image.Image, spec: PreprocessSpec) -> torch.Tensor:
    """RGB PIL image -> normalised float tensor of shape (3, crop, crop)."""
    resized = F.resize(
        image,
        [spec.resize_size],
        interpolation=InterpolationMode(spec.interpolation),
        antialias=spec.antialias,
    )
    cropped = F.center_crop(resized, [spec.crop_size])
    tensor = F.convert_image_dtype(F.pil_to_tensor(cropped), torch.float)
    return F.normalize(tensor, mean=list(spec.mean), std=list(spec.std))

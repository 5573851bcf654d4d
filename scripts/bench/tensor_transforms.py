"""The reference transform on decoded tensors instead of PIL images: JPEGs decoded by
``torchvision.io.decode_jpeg`` (nvJPEG on CUDA, in batches) and resized, cropped and
normalised by torch on the same device.

Not the service's default path: torch's antialiased bilinear resize is close to, not equal
with, PIL's (the reference); ``scripts/bench/gpu_pipeline_bench.py`` measures the deviation
next to the speed. Only JPEGs go this way; other formats keep ``decoding``.
"""

from __future__ import annotations

import torch
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from handler.transforms import PreprocessSpec


def decode_jpegs(images: list[bytes], device: torch.device) -> list[torch.Tensor]:
    """JPEG bytes -> upright RGB uint8 tensors (3, H, W) on ``device``; one batched call."""
    data = [torch.frombuffer(bytearray(image), dtype=torch.uint8) for image in images]
    return decode_jpeg(data, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True)


def tensor_to_model_input(image: torch.Tensor, spec: PreprocessSpec) -> torch.Tensor:
    """RGB uint8 tensor (3, H, W) -> normalised float (3, crop, crop), on the tensor's device."""
    resized = F.resize(image, [spec.resize_size], interpolation=InterpolationMode(spec.interpolation),
                       antialias=spec.antialias)
    cropped = F.center_crop(resized, [spec.crop_size])
    return F.normalize(F.convert_image_dtype(cropped, torch.float), mean=list(spec.mean), std=list(spec.std))


def jpegs_to_batch(images: list[bytes], spec: PreprocessSpec, device: torch.device) -> torch.Tensor:
    """A model-input batch (N, 3, crop, crop) on ``device`` from N JPEGs."""
    return torch.stack([tensor_to_model_input(image, spec) for image in decode_jpegs(images, device)])

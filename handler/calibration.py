"""Calibration images for int8 quantisation, turned into model inputs by the reference transform.

``INT8_CALIBRATION_DIR`` names a folder of representative images (100 or so real photos
give ranges that fit real traffic); without it, a fixed set of synthetic images is used,
which lets int8 run offline and be tested, but fits real photos less well.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from handler.decoding import DecodeLimits, decode_image
from handler.errors import ServiceError
from handler.transforms import PreprocessSpec, to_model_input

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
SYNTHETIC_COUNT = 32


def synthetic_images(count: int = SYNTHETIC_COUNT, size: tuple[int, int] = (320, 240)) -> list[Image.Image]:
    """Deterministic photo-like stand-ins: colour gradients, blobs and grain, one seed each."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    images = []
    for seed in range(count):
        rng = np.random.default_rng(seed)
        channels = []
        for _ in range(3):
            fx, fy, phase = rng.uniform(0.2, 6.0), rng.uniform(0.2, 6.0), rng.uniform(0, 2 * np.pi)
            wave = np.sin(2 * np.pi * (fx * x / width + fy * y / height) + phase)
            channels.append(rng.uniform(40, 200) + rng.uniform(20, 60) * wave)
        pixels = np.stack(channels, axis=-1)
        for _ in range(int(rng.integers(2, 6))):  # a few blobs of flat colour, like objects
            cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(10, height / 2)
            mask = (x - cx) ** 2 + (y - cy) ** 2 < r * r
            pixels[mask] = rng.uniform(0, 255, size=3)
        pixels += rng.normal(0, rng.uniform(2, 20), size=pixels.shape)
        images.append(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB"))
    return images


def directory_images(directory: str | Path, limit: int = 256) -> list[Image.Image]:
    """The images of a folder (sorted, at most ``limit``), decoded like requests are."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ValueError(f"INT8_CALIBRATION_DIR {str(folder)!r} is not a directory")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    images = []
    for path in paths:
        try:
            images.append(decode_image(path.read_bytes(), DecodeLimits(max_bytes=1 << 30)).image)
        except ServiceError as error:  # name the file: the worker will not start without it
            raise ValueError(f"INT8_CALIBRATION_DIR: {path.name}: {error.message}") from error
    if not images:
        raise ValueError(f"INT8_CALIBRATION_DIR {str(folder)!r} holds no images")
    return images


def calibration_batches(spec: PreprocessSpec, directory: str | Path | None = None,
                        batch_size: int = 8) -> list[torch.Tensor]:
    """Model inputs for calibration, in batches, from ``directory`` or the synthetic set."""
    images = directory_images(directory) if directory else synthetic_images()
    tensors = [to_model_input(image, spec) for image in images]
    return [torch.stack(tensors[i:i + batch_size]) for i in range(0, len(tensors), batch_size)]

"""Bytes to an RGB PIL image: sniff the format, bound the work, decode, orient, convert.

Pure functions, no TorchServe. Every failure is one of the typed errors in ``errors``;
no other exception escapes ``decode_image`` (the fuzz tests hold it to that).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps

from handler.errors import InvalidImage, MissingImage, PayloadTooLarge, UnsupportedMediaType

# Truncated files are errors, never silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")

# Alpha is composited on this colour (documented in docs/api.md): white reads better
# than black for logos and cut-outs, which are the usual transparent inputs.
ALPHA_BACKGROUND = (255, 255, 255)


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds that keep one request from taking unbounded memory or time."""

    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    # Resizing the shorter side to ~232 px multiplies the longer side by the same factor,
    # so an extreme strip (1 x 20000) would explode in memory; such images are refused.
    max_aspect_ratio: float = 100.0
    # > 0: let the JPEG decoder skip detail (DCT scaling, 1/2..1/8) while the shorter side stays
    # at least this many pixels. Opt-in (FAST_JPEG_DECODE): close to, not equal to, the reference.
    jpeg_draft_min_side: int = 0


@dataclass(frozen=True)
class DecodedImage:
    """An RGB image ready for the transform, with what the client is told about it."""

    image: Image.Image
    width: int
    height: int
    format: str


def sniff_format(data: bytes) -> str | None:
    """The image format named by the magic bytes, or None when it is not a supported one."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data.startswith(b"BM"):
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return None


def decode_image(data: bytes, limits: DecodeLimits = DecodeLimits()) -> DecodedImage:
    """Decode ``data`` into an upright RGB image, or raise a typed ``ServiceError``."""
    if not data:
        raise MissingImage("The image is empty (0 bytes).")
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(f"The image is larger than {limits.max_bytes} bytes.")
    fmt = sniff_format(data)
    if fmt is None:
        raise UnsupportedMediaType()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # our own limits below are stricter than PIL's warning
            image = Image.open(io.BytesIO(data), formats=[fmt])
            _check_dimensions(image.size, limits)  # header only: bombs are refused before decoding
            original_size = image.size
            if fmt == "JPEG" and limits.jpeg_draft_min_side > 0:
                _draft_jpeg(image, limits.jpeg_draft_min_side)
            image.load()  # first frame for GIF/WebP/TIFF
            decoded_size = image.size
            image = _apply_exif_orientation(image)
            rgb = to_rgb(image)
    except (PayloadTooLarge, InvalidImage):
        raise
    except Image.DecompressionBombError as exc:
        # PIL's own guard fires inside open() above twice its default limit.
        raise PayloadTooLarge(f"The image has too many pixels; the limit is {limits.max_pixels}.") from exc
    except MemoryError as exc:
        raise PayloadTooLarge("The image needs more memory to decode than the service allows.") from exc
    except Exception as exc:  # noqa: BLE001 - PIL plugins raise many types on corrupt input
        raise InvalidImage(f"The {fmt} image could not be decoded (corrupt or truncated).") from exc
    # Report the image as sent (not as drafted), turned the way EXIF turned it.
    width, height = original_size if rgb.size == decoded_size else original_size[::-1]
    return DecodedImage(image=rgb, width=width, height=height, format=fmt)


def _draft_jpeg(image: Image.Image, min_side: int) -> None:
    width, height = image.size
    scale = min_side / min(width, height)
    if scale < 1:
        image.draft("RGB", (max(1, round(width * scale)), max(1, round(height * scale))))


def _check_dimensions(size: tuple[int, int], limits: DecodeLimits) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise InvalidImage("The image has no pixels.")
    if width * height > limits.max_pixels:
        raise PayloadTooLarge(
            f"The image has {width}x{height} pixels; the limit is {limits.max_pixels} pixels."
        )
    if max(width, height) / min(width, height) > limits.max_aspect_ratio:
        raise InvalidImage(
            f"The image is {width}x{height}; aspect ratios beyond "
            f"{limits.max_aspect_ratio:g}:1 are not accepted."
        )


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    """Rotate/flip as the EXIF Orientation tag says; a broken EXIF block is ignored."""
    try:
        return ImageOps.exif_transpose(image) or image
    except Exception:  # noqa: BLE001 - malformed EXIF must not fail an otherwise good image
        return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB.

    - alpha (RGBA, LA, PA, P with transparency) is composited on ``ALPHA_BACKGROUND``;
    - 16/32-bit integer greyscale (I;16*, I) is scaled to 8 bits (value / 256) rather
      than clipped, which is what ``Image.convert("RGB")`` would do;
    - everything else (L, 1, P, CMYK, YCbCr, LAB, HSV, F) uses PIL's own conversion,
      the same call torchvision's reference loader makes.
    """
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image, dtype=np.int64)
        scaled = np.clip(values >> 8, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled).convert("RGB")  # uint8 -> L
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, ALPHA_BACKGROUND + (255,))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return image.convert("RGB")

"""decode_image: every supported format and mode, EXIF orientation, every error class."""

import io

import numpy as np
import pytest
from PIL import Image

from handler.decoding import ALPHA_BACKGROUND, DecodeLimits, decode_image, sniff_format, to_rgb
from handler.errors import InvalidImage, MissingImage, PayloadTooLarge, UnsupportedMediaType
from tests.support import animated_gif, bomb_png, encode, exif_rotated_jpeg, jpeg_bytes, noise_image, png_bytes


@pytest.mark.parametrize("fmt, options", [
    ("JPEG", {"quality": 90}), ("PNG", {}), ("WEBP", {"lossless": True}), ("BMP", {}),
    ("GIF", {}), ("TIFF", {}),
])
def test_each_supported_format_decodes_to_rgb(fmt, options):
    decoded = decode_image(encode(noise_image(50, 30), fmt, **options))
    assert decoded.format == fmt
    assert decoded.image.mode == "RGB"
    assert (decoded.width, decoded.height) == (50, 30) == decoded.image.size


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "1", "I", "F", "YCbCr"])
def test_every_mode_converts_to_rgb(mode):
    image = noise_image(33, 21, mode=mode)
    fmt = {"CMYK": "JPEG", "YCbCr": "JPEG", "F": "TIFF", "I": "TIFF"}.get(mode, "PNG")
    decoded = decode_image(encode(image, fmt))
    assert decoded.image.mode == "RGB"
    assert decoded.image.size == (33, 21)


def test_alpha_is_composited_on_white():
    transparent = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgb = decode_image(encode(transparent, "PNG")).image
    assert rgb.getpixel((0, 0)) == ALPHA_BACKGROUND
    opaque = decode_image(encode(Image.new("RGBA", (4, 4), (255, 0, 0, 255)), "PNG")).image
    assert opaque.getpixel((0, 0)) == (255, 0, 0)


def test_sixteen_bit_grey_is_scaled_not_clipped():
    grey = Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16))
    assert grey.mode.startswith("I;16")
    assert to_rgb(grey).getpixel((0, 0)) == (128, 128, 128)


def test_exif_orientation_is_applied():
    decoded = decode_image(exif_rotated_jpeg(80, 40, orientation=6))
    assert (decoded.width, decoded.height) == (40, 80)


def test_animated_gif_uses_first_frame():
    decoded = decode_image(animated_gif())
    first = Image.open(io.BytesIO(animated_gif())).convert("RGB")
    assert decoded.format == "GIF"
    assert list(decoded.image.getdata()) == list(first.getdata())


@pytest.mark.parametrize("size", [(1, 1), (1, 100), (100, 1), (4000, 3000)])
def test_extreme_but_allowed_sizes(size):
    decoded = decode_image(encode(Image.new("RGB", size, (10, 20, 30)), "PNG"))
    assert decoded.image.size == size


def test_empty_bytes_is_missing_image():
    with pytest.raises(MissingImage):
        decode_image(b"")


@pytest.mark.parametrize("payload", [
    b"hello world", b"<html><body>hi</body></html>", b'{"image": 1}', b"%PDF-1.7\n1 0 obj",
    b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', b"PK\x03\x04" + b"\x00" * 40, b"\x00" * 100,
])
def test_non_images_are_unsupported_media_type(payload):
    with pytest.raises(UnsupportedMediaType):
        decode_image(payload)


@pytest.mark.parametrize("payload", [
    jpeg_bytes(200, 200)[:600],                       # truncated JPEG
    png_bytes(200, 200)[:300],                        # truncated PNG
    b"\xff\xd8\xff\xe0" + b"\x00" * 200,              # JPEG magic, garbage after
    b"\x89PNG\r\n\x1a\n" + b"\xff" * 100,             # PNG magic, corrupt header
    b"GIF89a" + b"\x00" * 5,                          # GIF header only
    b"BM" + b"\x00" * 60,                             # BMP magic, nonsense
    b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 20,   # WebP magic, no image
])
def test_corrupt_images_are_invalid_image(payload):
    with pytest.raises(InvalidImage):
        decode_image(payload)


def test_trailing_garbage_after_a_valid_jpeg_is_accepted():
    decoded = decode_image(jpeg_bytes() + b"GARBAGE" * 100)
    assert decoded.format == "JPEG"


def test_decompression_bomb_is_refused_without_decoding():
    with pytest.raises(PayloadTooLarge, match="pixels"):
        decode_image(bomb_png())
    with pytest.raises(PayloadTooLarge, match="8000x6000 pixels"):  # under PIL's own guard, over ours
        decode_image(bomb_png(8000, 6000))


def test_pixel_limit_is_configurable():
    data = png_bytes(100, 100)
    with pytest.raises(PayloadTooLarge):
        decode_image(data, DecodeLimits(max_pixels=9_999))
    assert decode_image(data, DecodeLimits(max_pixels=10_000)).width == 100


def test_byte_limit():
    with pytest.raises(PayloadTooLarge):
        decode_image(jpeg_bytes(), DecodeLimits(max_bytes=100))


def test_extreme_aspect_ratio_is_invalid():
    with pytest.raises(InvalidImage, match="aspect"):
        decode_image(encode(Image.new("L", (1, 20000)), "PNG"))


@pytest.mark.parametrize("data, fmt", [
    (b"\xff\xd8\xff\xdb", "JPEG"), (b"\x89PNG\r\n\x1a\nxxxx", "PNG"), (b"GIF87a", "GIF"),
    (b"RIFF\x10\x00\x00\x00WEBP", "WEBP"), (b"BM\x00", "BMP"), (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"), (b"<svg", None), (b"", None),
])
def test_sniff_format(data, fmt):
    assert sniff_format(data) == fmt


def test_fast_jpeg_decode_reports_original_size_and_stays_close():
    data = encode(noise_image(2000, 1500, seed=3), "JPEG", quality=90)
    exact = decode_image(data)
    fast = decode_image(data, DecodeLimits(jpeg_draft_min_side=464))
    assert (fast.width, fast.height) == (exact.width, exact.height) == (2000, 1500)
    assert 464 <= min(fast.image.size) < 1500  # decoded at a reduced DCT scale
    rotated = decode_image(exif_rotated_jpeg(2000, 1000), DecodeLimits(jpeg_draft_min_side=464))
    assert (rotated.width, rotated.height) == (1000, 2000)
    small = jpeg_bytes(640, 480)
    assert decode_image(small, DecodeLimits(jpeg_draft_min_side=464)).image.tobytes() == \
        decode_image(small).image.tobytes()

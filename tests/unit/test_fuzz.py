"""Property-based fuzzing of the request-facing pure code: whatever the bytes, decode_image and
parse_request return a result or raise one of the handler's typed errors, in bounded time and memory."""

from __future__ import annotations

import subprocess
import sys
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handler.decoding import DecodeLimits, decode_image
from handler.errors import ServiceError
from handler.request_parsing import parse_kserve_instances, parse_request
from scripts import REPO_ROOT
from tests.support import animated_gif, encode, jpeg_bytes, noise_image, png_bytes

SEEDS = {
    "jpeg": jpeg_bytes(48, 32),
    "png": png_bytes(48, 32),
    "gif": animated_gif(24, 16, frames=2),
    "webp": encode(noise_image(48, 32), "WEBP", quality=80),
    "tiff": encode(noise_image(24, 16), "TIFF"),
    "bmp": encode(noise_image(24, 16), "BMP"),
}
LIMITS = DecodeLimits(max_bytes=1 << 20, max_pixels=4_000_000)
FUZZ = settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def decode_bounded(data: bytes) -> None:
    started = time.monotonic()
    try:
        decoded = decode_image(data, LIMITS)
        assert decoded.image.mode == "RGB"
        assert decoded.width * decoded.height <= LIMITS.max_pixels
    except ServiceError:
        pass
    assert time.monotonic() - started < 2.0


@st.composite
def mutated_image(draw) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "overwrite"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=64))
        elif data:
            # Header fields (sizes, offsets) live early: overwrite with extreme values there.
            value = draw(st.sampled_from([b"\xff\xff", b"\x00\x00", b"\x7f\xff\xff\xff", b"\x00"]))
            start = min(position, 64)
            data[start:start + len(value)] = value
    return bytes(data)


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    decode_bounded(data)


@FUZZ
@given(st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*"]),
       st.binary(max_size=2048))
def test_valid_magic_then_random_bytes(magic, tail):
    decode_bounded(magic + tail)


@FUZZ
@given(mutated_image())
def test_mutated_valid_images(data):
    decode_bounded(data)


# Run in a fresh interpreter, measured against its own baseline: ru_maxrss is a lifetime high-water
# mark (raised by earlier tests, and by the imports themselves), so the child resets the kernel's
# peak-RSS mark (VmHWM; writing 5 to /proc/self/clear_refs) after a warm-up and prints how far it rose
# above the resident size at that moment while decoding one bomb.
MEMORY_PROBE = """
import re, sys
from handler.decoding import DecodeLimits, decode_image
from handler.errors import ServiceError
from tests.support import bomb_png, jpeg_bytes

def status_kb(field):
    return int(re.search(field + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))

width, height, max_pixels = map(int, sys.argv[1:4])
bomb = bomb_png(width, height)
decode_image(jpeg_bytes(64, 48), DecodeLimits())  # warm-up: every import and allocator pool in place
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")
before = status_kb("VmRSS")
try:
    decode_image(bomb, DecodeLimits(max_bytes=1 << 30, max_pixels=max_pixels))
except ServiceError:
    pass
print((status_kb("VmHWM") - before) * 1024)
"""


def peak_growth_decoding_bomb(width: int, height: int, max_pixels: int) -> int:
    """Bytes the decoding process's peak RSS grew by while decoding a width x height bomb."""
    result = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(width), str(height), str(max_pixels)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return int(result.stdout.strip().splitlines()[-1])


def test_pixel_guard_keeps_a_bomb_from_being_decoded():
    """A 48-megapixel bomb (a 6 KB PNG; under Pillow's own bomb threshold, so only our guard stands
    in its way) needs at least 144 MB as RGB. With the guard its decode grows the peak RSS by less
    than a quarter of that; with the guard lifted, in the same kind of process, by more: the bound
    is shown to be one the unguarded decode breaks."""
    width, height = 8000, 6000
    bound = width * height * 3 // 4
    guarded = peak_growth_decoding_bomb(width, height, LIMITS.max_pixels)
    unguarded = peak_growth_decoding_bomb(width, height, width * height)
    assert guarded < bound, f"peak RSS grew by {guarded / 1e6:.0f} MB with the guard (bound {bound / 1e6:.0f} MB)"
    assert unguarded > bound, f"without the guard the decode grew by only {unguarded / 1e6:.0f} MB: the bound proves nothing"


request_value = st.one_of(st.binary(max_size=256), st.text(max_size=64), st.integers(), st.none(),
                          st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
                          st.lists(st.integers(), max_size=3))


@FUZZ
@given(st.dictionaries(st.sampled_from(["file", "file_1", "file_7", "body", "data", "top_k", "image", "images", "x"]),
                       request_value, max_size=4),
       st.dictionaries(st.sampled_from(["content-type", "x-top-k", "x-request-id"]),
                       st.sampled_from(["application/json", "multipart/form-data", "image/png", "text/plain",
                                        "", "3", "abc", "-1", "1000", "2.5"]), max_size=3))
def test_parse_request_only_raises_typed_errors(data, headers):
    try:
        parsed = parse_request(data, headers, default_top_k=5, max_k=1000, max_images=4)
        assert 1 <= parsed.top_k <= 1000 and 1 <= len(parsed.images) <= 4
        assert parsed.multi or len(parsed.images) == 1
        # Each image is non-empty bytes or that image's own typed error (multi-image forms only).
        assert all((isinstance(i, bytes) and i) or (parsed.multi and isinstance(i, ServiceError))
                   for i in parsed.images)
    except ServiceError:
        pass


@FUZZ
@given(st.one_of(st.none(), request_value, st.lists(st.one_of(
    request_value, st.dictionaries(st.sampled_from(["data", "b64", "image", "top_k", "x"]), request_value,
                                   max_size=3)), max_size=6)))
def test_kserve_instances_only_raise_typed_errors(instances):
    try:
        parsed = parse_kserve_instances(instances, default_top_k=5, max_k=1000, max_images=4)
        assert parsed.multi and 1 <= len(parsed.images) <= 4 and 1 <= parsed.top_k <= 1000
        assert all((isinstance(i, bytes) and i) or isinstance(i, ServiceError) for i in parsed.images)
    except ServiceError:
        pass

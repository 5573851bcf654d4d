"""What many tests need: free loopback ports, waiting until something is true, test
images generated in memory (every format and mode the service must accept), and the opt-in
container checks' reports."""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
from PIL import Image

from scripts import REPO_ROOT
from scripts.service.ports import free_loopback_ports as free_ports  # noqa: F401 - the tests' name for it

T = TypeVar("T")


def no_private_mount_namespace() -> str | None:
    """Why this process cannot make a read-only bind mount in a private mount namespace (KServe's
    /mnt/models as root sees it), or None when it can. Root on a machine can; root in a container
    without CAP_SYS_ADMIN (a CI job's docker run) cannot, and the tests that need it say so by name."""
    if os.geteuid() != 0:
        return "needs root (a private mount namespace)"
    try:
        probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                               capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        return "needs unshare (util-linux)"
    if probe.returncode != 0:
        said = (probe.stderr.strip().splitlines() or ["no reason given"])[-1]
        return f"this root cannot make a mount namespace (a container without CAP_SYS_ADMIN?): {said}"
    return None


def wait_until(probe: Callable[[], T], timeout: float, interval: float = 0.1) -> T | None:
    """``probe()``'s first truthy value within ``timeout`` seconds, else its last value (falsy).
    Tests assert on the result, so a timeout fails where the condition is stated."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def noise_image(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    """A deterministic image with structure (gradients + noise), in the requested mode."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)),
                     ((x + y) * 127 // max(width + height - 2, 1))], axis=-1)
    noisy = np.clip(base + rng.integers(-40, 40, size=base.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(noisy)
    if mode == "RGB":
        return image
    if mode == "I;16":
        grey = np.asarray(image.convert("L"), dtype=np.uint16) * 257
        return Image.fromarray(grey)  # uint16 -> I;16
    if mode in ("RGBA", "LA"):
        converted = image.convert(mode)
        alpha = Image.fromarray((noisy[..., 0] // 2 + 64).astype(np.uint8), "L")
        converted.putalpha(alpha)
        return converted
    return image.convert(mode)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def jpeg_bytes(width: int = 64, height: int = 48, seed: int = 0, **options) -> bytes:
    return encode(noise_image(width, height, seed=seed), "JPEG", quality=90, **options)


def png_bytes(width: int = 64, height: int = 48, mode: str = "RGB", seed: int = 0) -> bytes:
    return encode(noise_image(width, height, mode=mode, seed=seed), "PNG")


def exif_rotated_jpeg(width: int = 80, height: int = 40, orientation: int = 6) -> bytes:
    image = noise_image(width, height)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", exif=exif.tobytes())


def animated_gif(width: int = 40, height: int = 30, frames: int = 3) -> bytes:
    images = [noise_image(width, height, seed=i).convert("P") for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=50, loop=0)
    return buffer.getvalue()


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A tiny file declaring a huge pixel count (a decompression bomb)."""
    return encode(Image.new("1", (width, height)), "PNG", optimize=True)


# ------------------------------------------------------------- the opt-in container checks' reports
def run_report_script(command: list[str], report_path: Path, timeout: float,
                      env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    """Run a host-side check (scripts/container/*) that writes a JSON report of named checks; print its
    summary (for CI's log, with -rA) and return (the run, the report)."""
    report_path.unlink(missing_ok=True)
    result = subprocess.run(command, cwd=REPO_ROOT, env={**os.environ, **(env or {})}, capture_output=True,
                            text=True, timeout=timeout, check=False)
    print(result.stdout[-6000:])
    assert report_path.exists(), f"no report; the script said:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result, json.loads(report_path.read_text())


def assert_every_check_passed(result: subprocess.CompletedProcess, report: dict, expected: set[str]) -> None:
    """Every check of the report passed, the expected ones are among them, and the script said so."""
    failed = {name: check for name, check in report["checks"].items() if not check["ok"]}
    assert not failed, json.dumps(failed, indent=2) + "\n" + result.stdout[-3000:]
    assert expected <= set(report["checks"]), sorted(expected - set(report["checks"]))
    assert report["result"] == "pass" and result.returncode == 0, result.stderr[-3000:]

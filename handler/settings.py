"""The handler's deployment settings, read from the worker's environment.

Model facts (labels, preprocessing, weights) come from the archive; these are the knobs
an operator turns per deployment. ``scripts/service/supervisor.py`` passes them to TorchServe, whose
workers inherit its environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from handler.settings_table import BY_NAME


def _setting(name: str):
    """A worker setting's typed value: the environment's (set by the supervisor) or the table's
    default; a bad value raises SettingsError naming it (the worker then logs model_load_failed)."""
    raw = os.environ.get(name, "").strip()
    if name == "LOG_LEVEL":
        raw = raw.upper()
    elif name == "FAST_JPEG_DECODE" and raw.lower() in ("true", "yes", "false", "no"):
        raw = "1" if raw.lower() in ("true", "yes") else "0"
    return BY_NAME[name].parse(raw or None)


def _default(name: str):
    return BY_NAME[name].parse()


@dataclass(frozen=True)
class HandlerSettings:
    """The worker's settings; names, defaults and bounds are handler/settings_table.py's."""

    device: str = _default("DEVICE")
    backend: str = _default("BACKEND")
    precision: str = _default("PRECISION")
    workers: int = _default("WORKERS")
    threads_per_worker: int = _default("THREADS_PER_WORKER")  # 0 = cores // workers
    max_file_size: int = _default("MAX_FILE_SIZE")
    max_image_pixels: int = _default("MAX_IMAGE_PIXELS")
    max_aspect_ratio: float = _default("MAX_ASPECT_RATIO")
    default_top_k: int = _default("DEFAULT_TOP_K")
    log_level: str = _default("LOG_LEVEL")
    log_format: str = _default("LOG_FORMAT")
    slow_request_ms: float = _default("SLOW_REQUEST_MS")
    selftest_tolerance: float = _default("SELFTEST_TOLERANCE")
    result_cache_size: int = _default("RESULT_CACHE_SIZE")  # entries per worker; 0 = off
    fast_jpeg_decode: bool = _default("FAST_JPEG_DECODE") == "1"
    max_images_per_request: int = _default("MAX_IMAGES_PER_REQUEST")
    model_cache_dir: str = ""  # converted models kept across worker starts; "" = none (handler/model_cache.py)

    @classmethod
    def from_env(cls) -> HandlerSettings:
        return cls(
            device=_setting("DEVICE"),
            backend=_setting("BACKEND"),
            precision=_setting("PRECISION"),
            workers=_setting("WORKERS"),
            threads_per_worker=_setting("THREADS_PER_WORKER"),
            max_file_size=_setting("MAX_FILE_SIZE"),
            max_image_pixels=_setting("MAX_IMAGE_PIXELS"),
            max_aspect_ratio=_setting("MAX_ASPECT_RATIO"),
            default_top_k=_setting("DEFAULT_TOP_K"),
            log_level=_setting("LOG_LEVEL"),
            log_format=_setting("LOG_FORMAT"),
            slow_request_ms=_setting("SLOW_REQUEST_MS"),
            selftest_tolerance=_setting("SELFTEST_TOLERANCE"),
            result_cache_size=_setting("RESULT_CACHE_SIZE"),
            fast_jpeg_decode=_setting("FAST_JPEG_DECODE") == "1",
            max_images_per_request=_setting("MAX_IMAGES_PER_REQUEST"),
            model_cache_dir=_setting("MODEL_CACHE_DIR"),
        )

"""The handler's deployment settings, read from the worker's environment.

Model facts (labels, preprocessing, weights) come from the archive; these are the knobs
an operator turns per deployment. ``scripts/service.py`` passes them to TorchServe, whose
workers inherit its environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


@dataclass(frozen=True)
class HandlerSettings:
    device: str = "cpu"
    backend: str = "auto"
    precision: str = "fp32"
    workers: int = 1
    threads_per_worker: int = 0  # 0 = cores // workers
    max_file_size: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    max_aspect_ratio: float = 100.0
    default_top_k: int = 5
    log_level: str = "INFO"
    log_format: str = "json"
    slow_request_ms: float = 1000.0
    selftest_tolerance: float = 1e-3
    result_cache_size: int = 0  # entries per worker; 0 = off
    fast_jpeg_decode: bool = False
    max_images_per_request: int = 16
    int8_calibration_dir: str = ""  # PRECISION=int8: representative images; "" = synthetic set
    model_cache_dir: str = ""  # converted models kept across worker starts; "" = none (handler/model_cache.py)
    request_envelope: str = ""  # "kserve": TorchServe's KServe v1 envelope hands over "instances"

    @classmethod
    def from_env(cls) -> HandlerSettings:
        return cls(
            device=os.environ.get("DEVICE", "cpu"),
            backend=os.environ.get("BACKEND", "auto"),
            precision=os.environ.get("PRECISION", "fp32"),
            workers=_int("WORKERS", 1),
            threads_per_worker=_int("THREADS_PER_WORKER", 0),
            max_file_size=_int("MAX_FILE_SIZE", cls.max_file_size),
            max_image_pixels=_int("MAX_IMAGE_PIXELS", cls.max_image_pixels),
            max_aspect_ratio=_float("MAX_ASPECT_RATIO", cls.max_aspect_ratio),
            default_top_k=_int("DEFAULT_TOP_K", cls.default_top_k),
            log_level=os.environ.get("LOG_LEVEL", "INFO"),
            log_format=os.environ.get("LOG_FORMAT", "json"),
            slow_request_ms=_float("SLOW_REQUEST_MS", cls.slow_request_ms),
            selftest_tolerance=_float("SELFTEST_TOLERANCE", cls.selftest_tolerance),
            result_cache_size=_int("RESULT_CACHE_SIZE", cls.result_cache_size),
            fast_jpeg_decode=os.environ.get("FAST_JPEG_DECODE", "0").strip().lower() in ("1", "true", "yes"),
            max_images_per_request=_int("MAX_IMAGES_PER_REQUEST", cls.max_images_per_request),
            int8_calibration_dir=os.environ.get("INT8_CALIBRATION_DIR", "").strip(),
            model_cache_dir=os.environ.get("MODEL_CACHE_DIR", "").strip(),
            # KServe's TorchServe runtime sets it (protocolVersion v1); workers inherit it.
            request_envelope=os.environ.get("TS_SERVICE_ENVELOPE", "").strip().lower(),
        )

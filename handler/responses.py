"""The JSON bodies of this service's answers (config/openapi.json), as pure functions.

Data in, dicts out: nothing here reads the clock, the context or the settings, and nothing logs,
so every body can be tested as a value. The Open Inference Protocol's answers are written by
handler/wire_v2.py; which format answers a request is handler/wire_formats.py's choice.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Sequence

import torch

from handler.errors import ServiceError

if TYPE_CHECKING:
    from handler.request_state import ImageItem

LABELS_SHOWN = 100


def predictions(probabilities: torch.Tensor, k: int, categories: Sequence[str]) -> list[dict]:
    """The k most probable classes of one image, most probable first."""
    values, indices = torch.topk(probabilities, k=min(k, probabilities.numel()))
    return [
        {
            "rank": rank,
            "class_id": int(index),
            "label": categories[int(index)],
            "probability": round(float(value), 6),
        }
        for rank, (value, index) in enumerate(zip(values.tolist(), indices.tolist()), start=1)
    ]


def model_facts(name: str, version: str, pretrained: bool) -> dict:
    return {"name": name, "version": version, "pretrained": pretrained}


def image_facts(item: ImageItem) -> dict:
    """Width, height and format of an image: as decoded, or as the result cache remembers it."""
    source = item.cached if item.cached is not None else item.prepared.decoded
    return {"width": source.width, "height": source.height, "format": source.format}


def utc_timestamp(moment: datetime) -> str:
    """``created_at``: ISO 8601 in UTC with milliseconds and a ``Z``."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def prediction_body(request_id: str, model: dict, top: list[dict], image: dict, timing_ms: dict,
                    created_at: str, cached: bool) -> dict:
    """One image's answer (Prediction)."""
    body = {
        "request_id": request_id,
        "model": model,
        "predictions": top,
        "image": image,
        "timing_ms": timing_ms,
        "created_at": created_at,
    }
    if cached:
        body["cached"] = True  # served from RESULT_CACHE_SIZE's cache: same bytes seen before
    return body


def image_result(position: int, top: list[dict], image: dict, cached: bool) -> dict:
    """One image's entry in a multi-image answer."""
    result = {"index": position, "status": 200, "predictions": top, "image": image}
    if cached:
        result["cached"] = True
    return result


def failed_image_result(position: int, error: ServiceError) -> dict:
    """A failed image's entry in a multi-image answer: its error inline, the others still answered."""
    return {"index": position, "status": error.status, "error": {"code": error.code, "message": error.message}}


def multi_prediction_body(request_id: str, model: dict, results: list[dict], timing_ms: dict,
                          created_at: str) -> dict:
    """Several images' answer (MultiPrediction): one result per image, in request order."""
    failed = sum(1 for result in results if result["status"] != 200)
    return {
        "request_id": request_id,
        "model": model,
        "results": results,
        "summary": {"images": len(results), "succeeded": len(results) - failed, "failed": failed},
        "timing_ms": timing_ms,
        "created_at": created_at,
    }


def health_body(model_name: str, model_version: str, pretrained: bool, worker_pid: int, request_id: str) -> dict:
    return {
        "status": "healthy",
        "model": {"name": model_name, "version": model_version},
        "pretrained": pretrained,
        "worker_pid": worker_pid,
        "request_id": request_id,
    }


def error_body(error: ServiceError, request_id: str) -> dict:
    """The JSON error body (Error): {"error": {"code", "message", "request_id"}}."""
    return {"error": {"code": error.code, "message": error.message, "request_id": request_id}}


def describe_body(meta: Any, runtime: dict, settings: Any, default_top_k: int, result_cache: dict,
                  selftest: dict, golden_set: dict | None) -> dict:
    """The handler's part of /info (TorchServe's ``customizedMetadata``).

    ``meta`` is the archive's ModelMeta, ``settings`` the worker's HandlerSettings, ``runtime``
    the backend's description with the worker's threads.
    """
    return {
        "architecture": meta.architecture,
        "weights": meta.weights.to_dict(),
        "pretrained": meta.weights.pretrained,
        "num_classes": meta.num_classes,
        "classes": {
            "count": meta.num_classes,
            "label_source": meta.labels_source,
            # All of a custom model's labels; ImageNet's 1000 would drown the rest of /info.
            "labels": list(meta.categories[:LABELS_SHOWN]),
            "labels_truncated": meta.num_classes > LABELS_SHOWN,
        },
        "preprocessing": meta.preprocessing.to_dict(),
        "preprocessing_source": meta.preprocessing_source,  # the reference, or build-time overrides
        # The archive's int8 model (quantised at build); "runtime" says whether it serves.
        "int8_model": meta.int8.to_dict() if meta.int8 else None,
        "runtime": runtime,
        "limits": {
            "max_file_size": settings.max_file_size,
            "max_image_pixels": settings.max_image_pixels,
            "max_aspect_ratio": settings.max_aspect_ratio,
            "top_k": {"min": 1, "max": meta.num_classes, "default": default_top_k},
        },
        "fast_jpeg_decode": settings.fast_jpeg_decode,
        "result_cache": result_cache,
        "selftest": selftest,
        "golden_set": golden_set,
    }

"""int8 for OpenVINO, made once at archive build: NNCF post-training quantisation of the
converted model, calibrated on images the user names (or the golden set), stored in the archive.

Workers with ``PRECISION=int8`` then read the quantised model: it is the only int8 path, and a
start with an archive that has none is refused in one line (handler/int8_policy.py). The
calibration images go through the archive's own preprocessing, so the activation ranges are the
ones real requests produce. The quantised model's logits on the self-test input are recorded
beside it: each worker checks that it loaded exactly that model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from handler.decoding import DecodeLimits, decode_image
from handler.errors import ServiceError
from handler.model_meta import sha256_of
from handler.transforms import PreprocessSpec, to_model_input

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
MAX_CALIBRATION_IMAGES = 300  # NNCF's default subset size: more adds build time, not accuracy
MIN_CALIBRATION_IMAGES = 8
INT8_DIR = "int8"
INT8_MODEL = f"{INT8_DIR}/model.xml"


class CalibrationError(ValueError):
    """The calibration folder cannot calibrate (missing, empty, an unreadable image)."""


def calibration_inputs(folder: Path, spec: PreprocessSpec) -> list[np.ndarray]:
    """Every image under ``folder`` (recursively, sorted, at most 300), as (1, 3, H, W) inputs."""
    if not folder.is_dir():
        raise CalibrationError(f"int8 calibration folder {str(folder)!r} is not a directory")
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if len(paths) < MIN_CALIBRATION_IMAGES:
        raise CalibrationError(f"int8 calibration needs at least {MIN_CALIBRATION_IMAGES} images under "
                               f"{folder}, found {len(paths)}")
    inputs = []
    for path in paths[:MAX_CALIBRATION_IMAGES]:
        try:
            image = decode_image(path.read_bytes(), DecodeLimits(max_bytes=1 << 30)).image
        except (OSError, ServiceError) as error:
            message = getattr(error, "message", str(error))
            raise CalibrationError(f"int8 calibration image {path}: {message}") from error
        inputs.append(to_model_input(image, spec).unsqueeze(0).numpy())
    return inputs


def quantize_to_archive(model: torch.nn.Module, inputs: list[np.ndarray], spec: PreprocessSpec,
                        stage: Path, selftest: torch.Tensor) -> dict:
    """Quantise ``model`` into ``stage/int8/model.xml`` (+ .bin); return what model_meta records."""
    sys.modules.setdefault("openvino_telemetry", None)  # no usage reports (handler/backends.py)
    import nncf
    import openvino

    size = spec.crop_size
    converted = openvino.convert_model(model.eval(), example_input=torch.zeros(1, 3, size, size),
                                       input=[(-1, 3, size, size)])
    # The classifier head (fc) stays fp32: it is the part a fine-tune changed, it holds the
    # decision, and it is 0.05 % of the compute; quantising it too cost the suite's trained
    # model far more agreement with fp32 (docs/performance.md, "int8").
    quantized = nncf.quantize(converted, nncf.Dataset(inputs), subset_size=len(inputs),
                              preset=nncf.QuantizationPreset.PERFORMANCE,
                              ignored_scope=nncf.IgnoredScope(types=["MatMul"]))
    target = stage / INT8_MODEL
    target.parent.mkdir(parents=True, exist_ok=True)
    openvino.save_model(quantized, str(target), compress_to_fp16=False)
    compiled = openvino.Core().compile_model(str(target), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    logits = compiled.create_infer_request().infer({0: selftest.numpy()})[0]
    return {
        "file": INT8_MODEL,
        "sha256": sha256_of(target.with_suffix(".bin")),
        "method": "NNCF post-training quantisation (OpenVINO), performance preset, fc kept fp32",
        "calibration_images": len(inputs),
        "nncf": nncf.__version__,
        "openvino": openvino.get_version(),
        "selftest_logits": [round(float(v), 6) for v in np.asarray(logits).flatten()],
    }


def int8_runner(stage: Path):
    """The staged int8 model as a function of a batch (for its golden-set accuracy at build)."""
    import openvino

    compiled = openvino.Core().compile_model(str(stage / INT8_MODEL), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()

    def logits(batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(request.infer({0: batch.numpy()})[0].copy())

    return logits

"""``PRECISION=int8`` has one path: the int8 model quantised once at archive build (NNCF, for
OpenVINO on the CPU; scripts/archive/openvino_int8.py), checked at worker start by its sha256,
its own self-test logits and the golden set.

What may not run int8 is said here once, so the supervisor (which refuses before TorchServe
starts), the settings check and the worker (which refuses too, should it be given int8 all the
same) all name the same fix in the same line. Plain Python: the supervisor imports it without torch.
"""

from __future__ import annotations

INT8_BACKENDS = ("auto", "openvino")
REBUILD_HINT = ("rebuild it with python -m scripts.archive.build_mar --force --int8-calibration DIR "
                "(100-300 representative images)")


def int8_model_missing(archive: str = "this archive") -> str:
    """The one line for an archive without an int8 model (``archive`` names it for the reader)."""
    return f"PRECISION=int8 needs an archive with an int8 model, and {archive} has none: {REBUILD_HINT}"


def int8_runtime_refusal(backend: str, device: str) -> str | None:
    """Why ``BACKEND``/``DEVICE`` cannot run the archive's int8 model (one line), or None."""
    if backend not in INT8_BACKENDS:
        return (f"PRECISION=int8 runs the archive's OpenVINO int8 model: BACKEND must be auto or openvino, "
                f"not {backend}")
    if not device.startswith("cpu"):
        return f"PRECISION=int8 runs the archive's OpenVINO int8 model on the CPU: DEVICE must be cpu, not {device}"
    return None

"""int8 post-training static quantisation of the eager model, for ``PRECISION=int8`` (CPU).

FX graph mode with PyTorch's x86 default config (per-channel int8 weights, uint8
activations; fbgemm/oneDNN kernels). Activation ranges come from observing the model on
calibration batches, so the result depends on them: ``calibration`` makes those batches.
"""

from __future__ import annotations

import copy
import warnings

import torch


def quantize_int8(model: torch.nn.Module, calibration_batches: list[torch.Tensor]) -> torch.nn.Module:
    """A quantised copy of ``model`` calibrated on the given (N, 3, H, W) normalised batches."""
    if not calibration_batches:
        raise ValueError("int8 quantisation needs at least one calibration batch")
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    with warnings.catch_warnings():
        # torch.ao.quantization announces its move to torchao on every call; it still works.
        warnings.simplefilter("ignore")
        prepared = prepare_fx(copy.deepcopy(model).eval(), get_default_qconfig_mapping("x86"),
                              (calibration_batches[0][:1],))
        with torch.inference_mode():
            for batch in calibration_batches:
                prepared(batch)
        return convert_fx(prepared)

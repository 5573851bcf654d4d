"""Runtime backends: small objects with one job each (load once, then turn a batch into logits).

The handler picks one from configuration (``BACKEND``, ``PRECISION``) once, at start;
``auto`` resolves to the fastest faithful one for the device (``resolve_backend_name``). New
runtimes are new classes here, not new branches in the handler. Every backend is built at
worker start from the archived eager weights, so they all compute with exactly those.

- ``eager``: plain PyTorch, the reference (CPU or CUDA; fp32, bf16/fp16 autocast).
- ``torchscript``: traced, frozen, oneDNN-optimised (CPU or CUDA).
- ``openvino``: the model converted in memory to OpenVINO and compiled for the CPU, fp32
  forced (OpenVINO would otherwise pick bf16 on CPUs that have it); with ``PRECISION=int8``,
  the archive's int8 model instead (the only int8 path, handler/int8_policy.py). Optional
  dependency, imported only when chosen, so the pipeline still imports where it is not installed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Callable, Protocol

import torch

from handler.int8_policy import int8_model_missing, int8_runtime_refusal
from handler.model_cache import ConvertedModelCache

log = logging.getLogger("resnet50.backends")


class Backend(Protocol):
    """Turns a normalised float batch (N, 3, H, W) into float32 logits (N, classes) on CPU."""

    name: str
    precision: str
    device: torch.device

    def __call__(self, batch: torch.Tensor) -> torch.Tensor: ...

    def describe(self) -> dict: ...

    def warm_up(self, batch_sizes: list[int]) -> None: ...


def build_architecture(architecture: str, num_classes: int) -> torch.nn.Module:
    """An untrained torchvision model of the named architecture.

    torchvision is imported here, not at module level: it costs a worker about 2 s and 170 MB
    (docs/performance.md, "Restarts"), and a worker that reads a converted model back from the
    cache never builds the eager one."""
    if architecture != "resnet50":
        raise ValueError(f"unsupported architecture {architecture!r}")
    import torchvision

    return torchvision.models.resnet50(weights=None, num_classes=num_classes)


def load_eager_model(weights_path: str | Path, architecture: str, num_classes: int) -> torch.nn.Module:
    """The eager model with the archived state dict loaded, in eval mode, on CPU."""
    model = build_architecture(architecture, num_classes)
    state = torch.load(str(weights_path), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


class EagerBackend:
    """Plain PyTorch eager execution; the reference every other backend is compared with."""

    name = "eager"

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: str = "fp32",
                 input_size: int = 224) -> None:
        if precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"unsupported precision {precision!r}")
        if precision == "fp16" and device.type != "cuda":
            raise ValueError("fp16 is only supported on CUDA; use bf16 on CPU")
        self.device = device
        self.precision = precision
        self.input_size = input_size  # the archive's crop size: what every request tensor is
        self.channels_last = True
        self._model = model.to(device).to(memory_format=torch.channels_last)
        self._autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self._autocast_dtype is not None:
                with torch.autocast(device_type=self.device.type, dtype=self._autocast_dtype):
                    logits = self._model(batch)
            else:
                logits = self._model(batch)
        return logits.float().cpu()

    def warm_up(self, batch_sizes: list[int]) -> None:
        """Run each batch size once so the first requests do not pay for allocation."""
        for batch_size in sorted(set(batch_sizes)):
            self(torch.zeros(batch_size, 3, self.input_size, self.input_size))

    def describe(self) -> dict:
        return {
            "name": self.name,
            "precision": self.precision,
            "device": str(self.device),
            "channels_last": self.channels_last,
            "torch": torch.__version__,
            "torchvision": importlib.metadata.version("torchvision"),
        }


class TorchScriptBackend(EagerBackend):
    """The eager model traced and frozen by TorchScript (conv+BN folded, weights as constants),
    channels_last, and on CPU ``optimize_for_inference`` (oneDNN convolutions); each step's gain
    is in docs/performance.md ("The runtimes considered")."""

    name = "torchscript"

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: str = "fp32",
                 input_size: int = 224) -> None:
        super().__init__(model, device, precision, input_size)
        example = torch.randn(1, 3, input_size, input_size, device=device).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            if self._autocast_dtype is not None:
                with torch.autocast(device_type=device.type, dtype=self._autocast_dtype):
                    traced = torch.jit.trace(self._model, example, check_trace=False)
            else:
                traced = torch.jit.trace(self._model, example, check_trace=False)
            self._model = torch.jit.freeze(traced)
            if device.type == "cpu" and self._autocast_dtype is None:
                self._model = torch.jit.optimize_for_inference(self._model)

    def warm_up(self, batch_sizes: list[int]) -> None:
        """TorchScript specialises on the first calls of each shape: pay that before serving."""
        for batch_size in sorted(set(batch_sizes)):
            for _ in range(2):
                self(torch.zeros(batch_size, 3, self.input_size, self.input_size))


class OpenVINOBackend:
    """The eager model converted with ``openvino.convert_model`` (or read back from the cache of
    converted models, or the archive's int8 model) and compiled for the CPU, one stream, as many
    inference threads as the worker's budget. The fastest faithful runtime measured here
    (docs/performance.md, "The runtimes considered")."""

    name = "openvino"

    def __init__(self, model: torch.nn.Module | Callable[[], torch.nn.Module], device: torch.device,
                 precision: str = "fp32", input_size: int = 224,
                 converted_cache: ConvertedModelCache | None = None, prebuilt: Path | None = None) -> None:
        """``model`` may be a function that loads it: it is then called only when the model must
        be converted (no cached conversion, no prebuilt int8 model), saving the load at restarts."""
        if device.type != "cpu":
            raise ValueError("BACKEND=openvino runs on the CPU; use torchscript or eager with DEVICE=cuda")
        if precision not in ("fp32", "bf16", "int8"):
            raise ValueError(f"BACKEND=openvino supports PRECISION fp32, bf16 or int8, not {precision!r}")
        if precision == "int8" and prebuilt is None:
            raise ValueError(int8_model_missing())
        try:
            openvino = _import_openvino_without_telemetry()
        except ImportError as exc:  # pragma: no cover - it is in requirements/runtime.txt
            raise ValueError("BACKEND=openvino needs the openvino package (requirements/runtime.txt)") from exc
        self.device = device
        self.precision = precision
        self.input_size = input_size
        self.channels_last = False
        self._version = openvino.get_version()
        self.threads = torch.get_num_threads()
        core = openvino.Core()
        self.converted_from = "conversion"
        cached = converted_cache.find() if converted_cache else None
        if prebuilt is not None:  # the int8 model quantised at archive build (scripts/archive/openvino_int8.py)
            converted = core.read_model(str(prebuilt))
            self.converted_from = "archive"
        elif cached is not None:
            converted = core.read_model(str(cached))
            self.converted_from = "cache"
        else:
            eager = model if isinstance(model, torch.nn.Module) else model()
            converted = openvino.convert_model(
                eager.eval(), example_input=torch.zeros(1, 3, input_size, input_size),
                input=[(-1, 3, input_size, input_size)])
            if converted_cache is not None:  # fp32 on disk: the precision is chosen at compile time
                converted_cache.store(lambda path: openvino.save_model(converted, str(path), compress_to_fp16=False))
        self._compiled = core.compile_model(converted, "CPU", {
            # fp32 must be asked for: OpenVINO defaults to bf16 on CPUs with bf16 units. (int8:
            # the quantised layers run in int8 whatever the hint; the rest stays fp32.)
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "INFERENCE_NUM_THREADS": self.threads,
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
        })
        self.effective_precision = self._compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        self._request = self._compiled.create_infer_request()
        self._calls = 0

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self._calls += 1
        array = batch.detach().cpu().contiguous().numpy()
        outputs = self._request.infer({0: array})
        # The result aliases OpenVINO's output buffer, which the next call overwrites.
        return torch.from_numpy(outputs[0].copy()).float()

    def warm_up(self, batch_sizes: list[int]) -> None:
        """The first inference builds the compiled model's kernels (about 0.3 s here): pay it
        before serving, unless the self-test already did. Other batch sizes are not run: a
        new shape's first call cost about 0.1 s more than its steady state (measured, see
        docs/performance.md "Restarts"), less than running it would add to every (re)start."""
        if not self._calls and batch_sizes:
            self(torch.zeros(min(batch_sizes), 3, self.input_size, self.input_size))

    def describe(self) -> dict:
        return {
            "name": self.name,
            "precision": self.precision,
            "effective_precision": self.effective_precision,
            "device": str(self.device),
            "threads": self.threads,
            "converted_from": self.converted_from,  # "cache" or "conversion" (handler/model_cache.py)
            "openvino": self._version,
            "torch": torch.__version__,
        }


def _import_openvino_without_telemetry():
    """``import openvino`` itself reports usage to Google Analytics (and writes a client id
    under ~/intel) unless the machine's user opted out: openvino_telemetry runs with no opt-in
    dialog. A model server must not phone home. With the telemetry client unimportable,
    OpenVINO falls back to its own no-op stub (it handles that ImportError itself)."""
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # None: importing it raises ImportError
    import openvino

    return openvino


BACKENDS = {"eager": EagerBackend, "torchscript": TorchScriptBackend, "openvino": OpenVINOBackend}


def resolve_backend_name(name: str, device: torch.device, precision: str) -> str:
    """``auto`` (the default) is the fastest faithful runtime for the device: OpenVINO on the
    CPU (docs/performance.md), and the only one for int8 (the archive's int8 model); TorchScript
    on CUDA, and where openvino is not installed."""
    if name != "auto":
        return name
    if device.type != "cpu" or precision not in ("fp32", "bf16", "int8"):
        return "torchscript"
    if precision == "int8":
        return "openvino"  # no fallback: without openvino int8 cannot run, and says so
    if importlib.util.find_spec("openvino") is None:
        log.warning("BACKEND=auto: openvino is not installed; using torchscript")
        return "torchscript"
    return "openvino"


def create_backend(
    name: str, weights_path: str | Path, architecture: str, num_classes: int,
    device: torch.device, precision: str = "fp32", input_size: int = 224,
    converted_cache: Callable[[str, str], ConvertedModelCache | None] | None = None,
    int8_model: Path | None = None,
) -> Backend:
    """Build the configured backend once; unknown names fail loudly at start.
    ``input_size`` is the archive's crop size (static shapes are compiled for it);
    ``converted_cache(runtime, version)`` says where a converted model may be kept;
    ``int8_model`` is the archive's int8 model, the one thing ``PRECISION=int8`` serves. The
    supervisor refuses int8 without it before TorchServe starts; a worker given int8 all the
    same refuses here with the same line (handler/int8_policy.py)."""
    if precision == "int8":
        refusal = int8_runtime_refusal(name, device.type) or (None if int8_model else int8_model_missing())
        if refusal:
            raise ValueError(refusal)
    name = resolve_backend_name(name, device, precision)
    try:
        backend_class = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown BACKEND {name!r}; choose one of {sorted(BACKENDS)}") from None
    if backend_class is OpenVINOBackend:
        # Loaded only if it must be converted: a restart with a cached conversion skips it.
        def load() -> torch.nn.Module:
            return load_eager_model(weights_path, architecture, num_classes)

        if precision == "int8":
            return OpenVINOBackend(load, device, precision, input_size=input_size, prebuilt=int8_model)
        cache = converted_cache("openvino", _openvino_version()) if converted_cache else None
        return OpenVINOBackend(load, device, precision, input_size=input_size, converted_cache=cache)
    model = load_eager_model(weights_path, architecture, num_classes)
    return backend_class(model, device, precision, input_size=input_size)


def _openvino_version() -> str:
    return _import_openvino_without_telemetry().get_version()

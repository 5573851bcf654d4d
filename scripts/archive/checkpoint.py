"""Read a user's weights file into a checked ResNet-50 state dict, or say in one line why not.

Accepted forms (what training code usually writes):
- a plain state dict (``torch.save(model.state_dict(), f)``);
- a checkpoint dict holding it under ``state_dict`` (PyTorch Lightning) or ``model``
  (torchvision's reference training scripts);
- keys prefixed ``model.`` / ``module.`` (a Lightning module's attribute, DataParallel/DDP),
  stripped when every key carries the prefix;
- a TorchScript module (``torch.jit.save``): its tensors are read back with ``torch.jit.load``.

Everything that is not TorchScript is read with ``torch.load(weights_only=True)``: a pickled
Python object (``torch.save(model)``) would run code to unpickle, so it is refused and the
message says how to save a state dict instead. Every refusal is a ``CheckpointError`` whose
message is a single line naming what was expected and what was found.
"""

from __future__ import annotations

import argparse
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision

RESNET50_FEATURES = 2048  # the width of ResNet-50's pooled features, fc's input
STRIPPED_PREFIXES = ("module.", "model.", "_orig_mod.")  # DDP, Lightning attribute, torch.compile
CHECKPOINT_KEYS = ("state_dict", "model")
SAVE_HINT = "save the state dict instead: torch.save(model.state_dict(), 'weights.pth')"
# torchvision's resnet family by (block kind, blocks per stage): how a wrong model is named.
RESNET_FAMILY = {
    ("basic", (2, 2, 2, 2)): "ResNet-18", ("basic", (3, 4, 6, 3)): "ResNet-34",
    ("bottleneck", (3, 4, 6, 3)): "ResNet-50", ("bottleneck", (3, 4, 23, 3)): "ResNet-101",
    ("bottleneck", (3, 8, 36, 3)): "ResNet-152",
}
SHOWN_KEYS = 3


class CheckpointError(ValueError):
    """The weights file cannot be archived as a ResNet-50; the message is one line."""


@dataclass(frozen=True)
class LoadedWeights:
    """A state dict that loads into ``resnet50(num_classes=num_classes)`` strictly."""

    state: dict[str, torch.Tensor]
    num_classes: int
    form: str  # how it was stored, for the archive's provenance record
    stripped_prefix: str


def load_resnet50_weights(path: Path) -> LoadedWeights:
    """Read, unwrap and check ``path``; raises CheckpointError with a one-line reason."""
    path = Path(path)
    raw, form = read_weights_file(path)
    state, where = unwrap_checkpoint(raw, path.name)
    if where:
        form = f"{form}[{where!r}]"
    state, prefix = strip_common_prefix(state)
    num_classes = check_resnet50(state, path.name)
    return LoadedWeights(state=_as_float32(state), num_classes=num_classes, form=form, stripped_prefix=prefix)


def read_weights_file(path: Path) -> tuple[object, str]:
    """The file's object and its form ("torchscript" or "torch.save"), never unpickling code."""
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist or is not a file")
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise CheckpointError(f"cannot read weights file {path}: {exc.strerror or exc}") from None
    if size == 0:
        raise CheckpointError(f"weights file {path.name} is empty (0 bytes); expected a PyTorch .pt/.pth file")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if _is_torchscript(names):
            return _read_torchscript(path), "torchscript"
        _refuse_other_zip(path.name, names)
    elif head.startswith(b"PK"):
        raise CheckpointError(f"{path.name} is a damaged zip archive (truncated or corrupt?); expected a complete "
                              "file written by torch.save or torch.jit.save")
    elif not head.startswith(b"\x80"):  # torch.save's legacy format starts with a pickle protocol byte
        raise CheckpointError(f"{path.name} is not a PyTorch weights file (starts with {head[:4]!r}); "
                              "expected a state dict saved with torch.save, or a TorchScript module")
    return _torch_load(path), "torch.save"


def _is_torchscript(names: list[str]) -> bool:
    """torch.jit.save archives carry compiled code and constants beside the tensors."""
    return any(name.endswith("/constants.pkl") for name in names) and any("/code/" in name for name in names)


def _refuse_other_zip(name: str, names: list[str]) -> None:
    """torch.save writes a zip whose entries sit in one folder with a data.pkl; any other zip
    (a TorchServe archive, a zipped folder) is named for what it is instead of torch's error."""
    if "MAR-INF/MANIFEST.json" in names:
        raise CheckpointError(f"{name} is a TorchServe model archive (.mar), not a weights file; expected the "
                              "state dict it was built from (serve the .mar itself by putting it in MODEL_STORE)")
    if not any(entry.count("/") == 1 and entry.endswith("/data.pkl") for entry in names):
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "") if names else "nothing"
        raise CheckpointError(f"{name} is a zip archive but not one written by torch.save (it holds {shown}); "
                              "expected a state dict saved with torch.save, or a TorchScript module")


def _read_torchscript(path: Path) -> dict:
    try:
        with warnings.catch_warnings():  # torch's deprecation notice is not the user's problem
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - corrupt or from an incompatible torch: one line
        raise CheckpointError(f"{path.name} looks like a TorchScript module but cannot be loaded: "
                              f"{_first_line(exc)}") from None
    return dict(module.state_dict())


def _torch_load(path: Path) -> object:
    try:
        # argparse.Namespace is the "args" entry of torchvision's reference-script checkpoints:
        # a plain attribute bag, safe to rebuild, so it is the one class allowed besides tensors.
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - classify, then one line
        text = str(exc)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:
            raise CheckpointError(
                f"{path.name} holds a pickled Python object ({found.group(1)}), e.g. from torch.save(model); "
                f"it is never unpickled here (that could run code): {SAVE_HINT}") from None
        raise CheckpointError(f"cannot read {path.name} as a PyTorch file (truncated or corrupt?): "
                              f"{_first_line(exc)}") from None


def unwrap_checkpoint(raw: object, name: str) -> tuple[dict, str]:
    """The state dict inside a checkpoint dict (``state_dict`` or ``model`` key), or ``raw``."""
    if not isinstance(raw, dict):
        raise CheckpointError(f"{name} holds a {type(raw).__name__}, not a dict of tensors; {SAVE_HINT}")
    if _is_tensor_dict(raw):
        return raw, ""
    for key in CHECKPOINT_KEYS:
        inner = raw.get(key)
        if isinstance(inner, dict) and _is_tensor_dict(inner):
            return inner, key
    keys = ", ".join(repr(k) for k in list(raw)[:5])
    raise CheckpointError(f"{name} is a dict ({keys}{', ...' if len(raw) > 5 else ''}) without tensors and "
                          f"without a {' or '.join(repr(k) for k in CHECKPOINT_KEYS)} state dict inside; {SAVE_HINT}")


def _is_tensor_dict(value: dict) -> bool:
    """Mostly tensors keyed by strings (a Lightning state dict may hold an _extra_state)."""
    tensors = sum(isinstance(v, torch.Tensor) for v in value.values())
    return bool(value) and all(isinstance(k, str) for k in value) and tensors >= len(value) / 2


def strip_common_prefix(state: dict) -> tuple[dict, str]:
    """Strip ``module.``/``model.`` (and torch.compile's ``_orig_mod.``) from the network's keys.
    A Lightning module may hold more than its network (a loss's weights, metrics): those keys
    keep their names and are then reported as unexpected, rather than hiding the network's."""
    stripped = ""
    while True:
        prefix = next((p for p in STRIPPED_PREFIXES if all(k.startswith(p) for k in state)), None)
        if prefix is None:
            prefix = next((p for p in STRIPPED_PREFIXES if f"{p}conv1.weight" in state and "conv1.weight" not in state),
                          None)
        if prefix is None:
            return state, stripped
        state = {k.removeprefix(prefix): v for k, v in state.items()}
        stripped += prefix


def check_resnet50(state: dict, name: str) -> int:
    """The number of classes (rows of ``fc.weight``), once ``state`` is known to be a ResNet-50."""
    family = resnet_family(state)
    if family is not None and family != "ResNet-50":
        raise CheckpointError(f"{name} is a {family} state dict, not a ResNet-50 (expected bottleneck blocks "
                              f"3-4-6-3 and fc over {RESNET50_FEATURES} features)")
    fc = state.get("fc.weight")
    if isinstance(fc, torch.Tensor) and fc.dim() == 2 and fc.shape[1] != RESNET50_FEATURES:
        raise CheckpointError(f"{name}: fc.weight is {list(fc.shape)}, expected [classes, {RESNET50_FEATURES}] "
                              "(a ResNet-50's pooled features); is this another architecture?")
    num_classes = int(fc.shape[0]) if isinstance(fc, torch.Tensor) and fc.dim() == 2 else 1000
    expected = resnet50_shapes(num_classes)
    # Checkpoints saved before BatchNorm counted its batches lack these; they are unused in eval.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) ({_first(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) ({_first(unexpected)})")
        raise CheckpointError(f"{name} does not match ResNet-50's {len(expected)} keys: {'; '.join(parts)}")
    wrong = [f"{k} {list(state[k].shape)} (expected {list(shape)})" for k, shape in expected.items()
             if k in state and (not isinstance(state[k], torch.Tensor) or tuple(state[k].shape) != shape)]
    if wrong:
        raise CheckpointError(f"{name} has {len(wrong)} tensor(s) of the wrong shape for a ResNet-50 with "
                              f"{num_classes} classes: {_first(wrong)}")
    for key, shape in expected.items():  # fill the optional counters so the load is strict
        state.setdefault(key, torch.zeros(shape, dtype=torch.long))
    return num_classes


def resnet_family(state: dict) -> str | None:
    """Which torchvision ResNet a state dict looks like, from its block layout; None if unknown."""
    if "conv1.weight" not in state or "layer1.0.conv1.weight" not in state:
        return None
    blocks = []
    for stage in range(1, 5):
        indices = {int(m.group(1)) for k in state if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
        blocks.append(len(indices))
    kind = "bottleneck" if "layer1.0.conv3.weight" in state else "basic"
    return RESNET_FAMILY.get((kind, tuple(blocks)), f"ResNet with {kind} blocks {'-'.join(map(str, blocks))}")


def resnet50_shapes(num_classes: int) -> dict[str, tuple[int, ...]]:
    """Key -> shape of torchvision's ResNet-50 (built on the meta device: no memory, no init cost)."""
    with torch.device("meta"):
        model = torchvision.models.resnet50(weights=None, num_classes=num_classes)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _as_float32(state: dict) -> dict:
    """fp16/bf16 checkpoints are served in fp32, like every other archive."""
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def _first(items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN_KEYS])
    return shown + (", ..." if len(items) > SHOWN_KEYS else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]

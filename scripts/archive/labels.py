"""Class labels for an archive: from a labels file, or defaults for the model's class count.

A labels file is TorchServe's ``index_to_name.json`` (``{"0": "cat"}`` or, as its ImageNet
example, ``{"0": ["n02123045", "tabby"]}``: the last element is the name) or a text file with
one label per line, line N being class N. Without one, a 1,000-class model keeps torchvision's
ImageNet names and any other gets ``class_0``, ``class_1``, ... Every refusal is a
``LabelsError`` whose message is one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

IMAGENET_CLASSES = 1000


class LabelsError(ValueError):
    """The labels cannot be used with these weights; the message is one line."""


@dataclass(frozen=True)
class Labels:
    names: tuple[str, ...]
    source: str  # "file:<name>", "imagenet-1k (torchvision)" or "generated"


def resolve_labels(path: str | Path | None, num_classes: int) -> Labels:
    """The labels file's names (its count checked against the model's), or the defaults."""
    if not path:
        return default_labels(num_classes)
    path = Path(path)
    names = read_labels_file(path)
    if len(names) != num_classes:
        count = f"{len(names)} label{'s' if len(names) != 1 else ''}"
        raise LabelsError(f"{path.name} has {count} but the weights' fc layer has {num_classes} "
                          f"classes (fc.weight is [{num_classes}, 2048]); give exactly one label per class")
    return Labels(names=tuple(names), source=f"file:{path.name}")


def default_labels(num_classes: int) -> Labels:
    if num_classes == IMAGENET_CLASSES:
        from torchvision.models import ResNet50_Weights

        return Labels(names=tuple(ResNet50_Weights.IMAGENET1K_V2.meta["categories"]),
                      source="imagenet-1k (torchvision)")
    return Labels(names=tuple(f"class_{i}" for i in range(num_classes)), source="generated")


def read_labels_file(path: Path) -> list[str]:
    """index_to_name.json (by content: a JSON object or list) or one label per line."""
    if not path.is_file():
        raise LabelsError(f"labels file {path} does not exist or is not a file")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise LabelsError(f"cannot read labels file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise LabelsError(f"labels file {path.name} is not UTF-8 text; expected index_to_name.json "
                          "or one label per line") from None
    if "\x00" in text:
        raise LabelsError(f"labels file {path.name} is binary, not text; expected index_to_name.json "
                          "or one label per line")
    stripped = text.lstrip()
    if path.suffix.lower() == ".json" or stripped.startswith(("{", "[")):
        return parse_index_to_name(text, path.name)
    return parse_label_lines(text, path.name)


def parse_index_to_name(text: str, name: str) -> list[str]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LabelsError(f"{name} is not valid JSON ({exc.msg} at line {exc.lineno}); expected "
                          '{"0": "cat", ...} or {"0": ["n02123045", "tabby"], ...}') from None
    if isinstance(document, list):
        document = {str(i): v for i, v in enumerate(document)}
    if not isinstance(document, dict) or not document:
        raise LabelsError(f'{name} must be a non-empty JSON object {{"0": "cat", ...}}, '
                          f"found {type(document).__name__}")
    try:
        indices = sorted(int(k) for k in document)
    except ValueError:
        bad = next(k for k in document if not k.lstrip("-").isdigit())
        raise LabelsError(f"{name}: key {bad!r} is not a class index; keys must be \"0\"..\"N-1\"") from None
    if indices != list(range(len(indices))):
        missing = sorted(set(range(len(indices))) - set(indices))
        raise LabelsError(f"{name}: keys must be the class indices 0..{len(indices) - 1} once each; "
                          f"missing {missing[:5] or 'none'}, found {indices[:3]}...{indices[-1]}")
    names = []
    for index in indices:
        value = document.get(str(index), document.get(index))
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            value = value[-1]  # TorchServe's ["n02123045", "tabby"]: id, then the name
        if not isinstance(value, str) or not value.strip():
            raise LabelsError(f'{name}: class {index} has no label (found {value!r}); expected "name" '
                              'or ["id", "name"]')
        names.append(value.strip())
    return names


def parse_label_lines(text: str, name: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise LabelsError(f"labels file {name} is empty; expected one label per line")
    if "" in lines:  # a blank line in the middle would shift every later class by one
        raise LabelsError(f"{name}: line {lines.index('') + 1} is empty; every line from the first to the "
                          "last must name one class")
    return lines

"""The archive's ``model_meta.json``: labels, preprocessing, weights provenance, self-test.

Written by ``scripts/archive/build_mar.py`` from the torchvision weights' own metadata and read
here by the handler, so nothing about the model is hard-coded in two places.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from handler.golden import GoldenSet
from handler.transforms import PreprocessSpec

META_FILENAME = "model_meta.json"


@dataclass(frozen=True)
class WeightsInfo:
    """Where the weights came from and whether they are really pretrained."""

    file: str
    source: str
    sha256: str
    pretrained: bool
    # How the user's file was read (form, stripped key prefix, its own sha256), for /info.
    provenance: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"file": self.file, "source": self.source, "sha256": self.sha256, "pretrained": self.pretrained,
                **self.provenance}


@dataclass(frozen=True)
class SelfTest:
    """A fixed synthetic input and the logits the archived weights gave on it at build time."""

    seed: int
    shape: tuple[int, ...]
    logits: tuple[float, ...]


@dataclass(frozen=True)
class Int8Model:
    """The OpenVINO int8 model quantised at build (scripts/archive/openvino_int8.py), if the archive has one:
    its file, its own sha256, and its logits on the self-test input (a tight check at start)."""

    file: str
    sha256: str
    selftest_logits: tuple[float, ...]
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"file": self.file, "sha256": self.sha256, **self.details}


@dataclass(frozen=True)
class ModelMeta:
    """Everything the handler needs to know about the model besides its tensors."""

    architecture: str
    categories: tuple[str, ...]
    preprocessing: PreprocessSpec
    weights: WeightsInfo
    selftest: SelfTest
    # Archives built before custom models existed record neither: they hold ImageNet's labels
    # and the reference transform.
    labels_source: str = "imagenet-1k (torchvision)"
    preprocessing_source: str = "reference"
    golden: GoldenSet | None = None
    int8: Int8Model | None = None

    @property
    def num_classes(self) -> int:
        return len(self.categories)


def parse_model_meta(raw: dict) -> ModelMeta:
    """Validate and convert the JSON document; raises ValueError on a malformed one."""
    try:
        categories = tuple(str(c) for c in raw["categories"])
        if not categories:
            raise ValueError("categories is empty")
        weights = raw["weights"]
        selftest = raw["selftest"]
        return ModelMeta(
            architecture=str(raw["architecture"]),
            categories=categories,
            preprocessing=PreprocessSpec.from_dict(raw["preprocessing"]),
            weights=WeightsInfo(
                file=str(weights["file"]),
                source=str(weights["source"]),
                sha256=str(weights["sha256"]),
                pretrained=bool(weights["pretrained"]),
                provenance={k: v for k, v in weights.items() if k not in ("file", "source", "sha256", "pretrained")},
            ),
            selftest=SelfTest(
                seed=int(selftest["seed"]),
                shape=tuple(int(v) for v in selftest["shape"]),
                logits=tuple(float(v) for v in selftest["logits"]),
            ),
            labels_source=str(raw.get("labels_source", ModelMeta.labels_source)),
            preprocessing_source=str(raw.get("preprocessing_source", ModelMeta.preprocessing_source)),
            golden=GoldenSet.from_dict(raw["golden"]) if raw.get("golden") else None,
            int8=_int8(raw["int8"]) if raw.get("int8") else None,
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"model_meta.json is malformed: {exc!r}") from exc


def _int8(raw: dict) -> Int8Model:
    return Int8Model(file=str(raw["file"]), sha256=str(raw["sha256"]),
                     selftest_logits=tuple(float(v) for v in raw["selftest_logits"]),
                     details={k: v for k, v in raw.items() if k not in ("file", "sha256", "selftest_logits")})


def load_model_meta(model_dir: str | Path) -> ModelMeta:
    """Read ``model_meta.json`` from an extracted archive (or any directory)."""
    path = Path(model_dir) / META_FILENAME
    return parse_model_meta(json.loads(path.read_text(encoding="utf-8")))


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def mismatched_files(model_dir: Path, meta: ModelMeta) -> list[str]:
    """The archive's weight files (the weights, and the int8 model's if it has one) whose bytes
    are not the ones the archive recorded. Checked before any backend is built, so it holds at
    every precision (int8's self-test tolerance is too wide to notice, say, a final layer scaled
    by 10 %)."""
    recorded = [(meta.weights.file, meta.weights.sha256)]
    if meta.int8 is not None:
        recorded.append((str(Path(meta.int8.file).with_suffix(".bin")), meta.int8.sha256))
    bad = []
    for name, digest in recorded:
        path = Path(model_dir) / name
        if not path.is_file() or sha256_of(path) != digest:
            bad.append(name)
    return bad


def weights_match_record(model_dir: Path, meta: ModelMeta) -> bool:
    return not mismatched_files(model_dir, meta)

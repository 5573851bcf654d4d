"""``--preprocessing KEY=VALUE ...``: the transform a model was fine-tuned with.

The default is the weights' reference (IMAGENET1K_V2: resize 232 bilinear with antialias,
centre crop 224, ImageNet mean and std). A model trained with other transforms must be served
with them, or its accuracy silently drops; the result is recorded in the archive.
"""

from __future__ import annotations

from dataclasses import replace

from torchvision.models import ResNet50_Weights
from torchvision.transforms import InterpolationMode

from handler.transforms import PreprocessSpec

KEYS = ("resize", "crop", "interpolation", "mean", "std")
INTERPOLATIONS = tuple(mode.value for mode in (InterpolationMode.BILINEAR, InterpolationMode.BICUBIC,
                                                InterpolationMode.NEAREST, InterpolationMode.NEAREST_EXACT))
MAX_SIDE = 4096


class PreprocessingError(ValueError):
    """An override that cannot be served; the message is one line."""


def reference_spec() -> PreprocessSpec:
    return PreprocessSpec.from_torchvision(ResNet50_Weights.IMAGENET1K_V2.transforms())


def preprocessing_from_overrides(pairs: list[str] | None) -> tuple[PreprocessSpec, str]:
    """The spec and a description of where it came from ("reference" or the overridden keys)."""
    spec = reference_spec()
    if not pairs:
        return spec, "reference (IMAGENET1K_V2)"
    changes: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().lower()
        if not sep or key not in KEYS:
            raise PreprocessingError(f"--preprocessing {pair!r}: expected KEY=VALUE with KEY one of {', '.join(KEYS)}")
        changes.update(_parse(key, value.strip()))
    try:
        spec = replace(spec, **changes)
    except ValueError as exc:  # PreprocessSpec refuses a crop larger than the resize
        raise PreprocessingError(f"--preprocessing: {exc}") from None
    overridden = ", ".join(sorted(pair.partition("=")[0].strip().lower() for pair in pairs))
    return spec, f"overridden ({overridden}) over reference (IMAGENET1K_V2)"


def _parse(key: str, value: str) -> dict:
    if key in ("resize", "crop"):
        if not value.isdigit() or not 16 <= int(value) <= MAX_SIDE:
            raise PreprocessingError(f"--preprocessing {key}={value!r}: expected an integer from 16 to {MAX_SIDE}")
        return {"resize_size" if key == "resize" else "crop_size": int(value)}
    if key == "interpolation":
        if value.lower() not in INTERPOLATIONS:
            raise PreprocessingError(f"--preprocessing interpolation={value!r}: expected one of {', '.join(INTERPOLATIONS)}")
        return {"interpolation": value.lower()}
    try:
        numbers = tuple(float(v) for v in value.split(","))
    except ValueError:
        numbers = ()
    if len(numbers) != 3 or (key == "std" and min(numbers) <= 0):
        raise PreprocessingError(f"--preprocessing {key}={value!r}: expected three comma-separated numbers "
                                 f"(R,G,B){', all above 0' if key == 'std' else ''}, e.g. {key}=0.5,0.5,0.5")
    return {key: numbers}

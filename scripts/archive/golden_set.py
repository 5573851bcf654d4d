"""``--golden DIR``: collect a labelled golden set (one subfolder per class) for the archive.

A subfolder names its class by label (``cat/``), by index (``3/``) or as ``class_3/``. Its
images are copied into the archive as ``golden/000.jpg``, ... with their class ids; the
handler classifies them at every worker start (``handler/golden.py``). Every refusal is a
``GoldenSetError`` whose message is one line.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from handler.decoding import DecodeLimits, decode_image
from handler.errors import ServiceError
from handler.golden import GOLDEN_DIR, GoldenImage

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
MAX_IMAGES = 256  # every worker classifies them at start: keep that to seconds
MAX_IMAGE_BYTES = 10 * 1024 * 1024


class GoldenSetError(ValueError):
    """The golden set cannot be archived; the message is one line."""


def collect_golden_set(directory: str | Path, labels: tuple[str, ...]) -> list[tuple[Path, int]]:
    """(image path, class id) for every image under DIR/<class>/, sorted; each one decodable."""
    root = Path(directory)
    if not root.is_dir():
        raise GoldenSetError(f"--golden {root}: not a directory; expected one subfolder per class")
    samples = []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise GoldenSetError(f"--golden {root}: no class subfolders; expected e.g. {root.name}/{labels[0]}/img.jpg")
    for folder in folders:
        class_id = class_of_folder(folder.name, labels)
        images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise GoldenSetError(f"--golden: {folder.name}/ holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        samples += [(image, class_id) for image in images]
    if len(samples) > MAX_IMAGES:
        raise GoldenSetError(f"--golden: {len(samples)} images; at most {MAX_IMAGES} (each worker classifies "
                             "them at start)")
    for image, _ in samples:
        check_image(image, root)
    return samples


def class_of_folder(name: str, labels: tuple[str, ...]) -> int:
    if name in labels:
        return labels.index(name)
    match = re.fullmatch(r"(?:class_)?(\d+)", name)
    if match and int(match.group(1)) < len(labels):
        return int(match.group(1))
    shown = ", ".join(labels[:5]) + (", ..." if len(labels) > 5 else "")
    raise GoldenSetError(f"--golden: folder {name!r} names no class of this model; expected a label ({shown}), "
                         f"an index 0..{len(labels) - 1} or class_<index>")


def check_image(path: Path, root: Path) -> None:
    """Decoded as requests are, so a file the service would refuse is refused here."""
    data = path.read_bytes()
    try:
        decode_image(data, DecodeLimits(max_bytes=MAX_IMAGE_BYTES))
    except ServiceError as error:
        raise GoldenSetError(f"--golden: {path.relative_to(root)}: {error.message}") from None


def stage_golden_set(samples: list[tuple[Path, int]], extra: Path) -> list[GoldenImage]:
    """Copy the images under ``extra/golden/`` with neutral names; their archive paths and classes."""
    target = extra / GOLDEN_DIR
    target.mkdir(parents=True, exist_ok=True)
    staged = []
    for number, (source, class_id) in enumerate(samples):
        name = f"{number:03d}{source.suffix.lower()}"
        shutil.copyfile(source, target / name)
        staged.append(GoldenImage(file=f"{GOLDEN_DIR}/{name}", class_id=class_id))
    return staged

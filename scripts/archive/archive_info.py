"""What an archive holds, read without importing torch (fast enough for every start)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path

from handler.int8_policy import int8_model_missing
from scripts import REPO_ROOT
from scripts.service.render_config import served_archive

META_FILENAME = "model_meta.json"


def handler_fingerprint(handler_dir: Path = REPO_ROOT / "handler") -> str:
    """sha256 over the handler package's sources: tells whether an archive holds stale code."""
    digest = hashlib.sha256()
    for path in sorted(handler_dir.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def read_archive_meta(archive: Path) -> dict | None:
    """The archive's model_meta.json, or None when the archive or its record cannot be read."""
    try:
        with zipfile.ZipFile(archive) as mar:
            return json.loads(mar.read(META_FILENAME))
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        return None


def archive_is_stale(archive: Path) -> bool:
    """True when the archive's handler code differs from handler/ (or predates fingerprints)."""
    meta = read_archive_meta(archive)
    return meta is None or meta.get("handler_sha256") != handler_fingerprint()


def int8_refusal(settings: Mapping[str, str]) -> str | None:
    """Why this start cannot serve ``PRECISION=int8`` (one line naming the fix), or None.

    Asked before anything starts: otherwise TorchServe would start, its worker refuse (with the
    same line) and be retried, and /health never turn 200. The archive is the one a start loads
    (a version deployed by scripts/manage/deploy_model.py wins). A missing archive is built by the
    start itself, with an int8 model only when INT8_CALIBRATION_DIR is set (build_mar's default
    for --int8-calibration). A stale archive is repacked keeping its int8 model, if it has one, so
    its record answers for it. An unreadable record is left to the build or the worker to name.
    """
    if settings["PRECISION"] != "int8":
        return None
    name, _ = served_archive(settings)
    archive = Path(settings["MODEL_STORE"]) / name
    if not archive.exists():
        return None if settings.get("INT8_CALIBRATION_DIR") else int8_model_missing(f"{name} (not built yet)")
    meta = read_archive_meta(archive)
    if meta is None or meta.get("int8"):
        return None
    return int8_model_missing(str(archive))

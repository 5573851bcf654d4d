"""What an archive holds, read without importing torch (fast enough for every start)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

from scripts import REPO_ROOT
META_FILENAME = "model_meta.json"


def handler_fingerprint(handler_dir: Path = REPO_ROOT / "handler") -> str:
    """sha256 over the handler package's sources: tells whether an archive holds stale code."""
    digest = hashlib.sha256()
    for path in sorted(handler_dir.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def read_archive_meta(archive: Path) -> dict | None:
    try:
        with zipfile.ZipFile(archive) as mar:
            return json.loads(mar.read(META_FILENAME))
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        return None


def archive_is_stale(archive: Path) -> bool:
    """True when the archive's handler code differs from handler/ (or predates fingerprints)."""
    meta = read_archive_meta(archive)
    return meta is None or meta.get("handler_sha256") != handler_fingerprint()

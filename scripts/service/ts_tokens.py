"""TorchServe's API tokens: the key file it writes at start, read by the supervisor (for
nginx's config) and by scripts/manage/deploy_model.py (for the management API).

TorchServe makes new keys at every start and writes them to ``key_file.json`` in its working
directory (RUN_DIR). Nothing else should hold them: the supervisor makes it private (0600).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

KEY_FILE = "key_file.json"


@dataclass(frozen=True)
class ApiKeys:
    inference: str
    management: str

    def header(self, api: str) -> dict[str, str]:
        """The Authorization header for the "inference" or "management" API."""
        return {"Authorization": f"Bearer {getattr(self, api)}"}


def key_file(run_dir: Path) -> Path:
    return Path(run_dir) / KEY_FILE


def read_keys(run_dir: Path) -> ApiKeys | None:
    """The current keys, or None if TorchServe has not written them (yet)."""
    path = key_file(run_dir)
    try:
        document = json.loads(path.read_text())
        keys = ApiKeys(inference=document["inference"]["key"], management=document["management"]["key"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return keys


def wait_for_keys(run_dir: Path, alive: Callable[[], bool], timeout: float) -> ApiKeys:
    """Wait until TorchServe (still ``alive``) has written its key file."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        keys = read_keys(run_dir)
        if keys is not None:
            key_file(run_dir).chmod(0o600)  # TorchServe writes it with the default umask
            return keys
        time.sleep(0.1)
    if not alive():
        raise RuntimeError("TorchServe exited before it issued its API keys: its own lines above say why")
    raise RuntimeError(f"TorchServe wrote no {KEY_FILE} in {run_dir} within {timeout:.0f} s")

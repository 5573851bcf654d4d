"""MODEL_STORE at start: what the supervisor may do about the archive it is going to serve.

A store this process may write (a checkout's model_store/, a volume of its own) keeps the old
behaviour: a missing MODEL_NAME.mar is built, one holding older handler code is repacked.

A read-only store is never written. That is KServe's /mnt/models: the storage initializer's volume
or a PersistentVolumeClaim, mounted read-only into the predictor container. There the archive
TorchServe will load (MODEL_NAME.mar, or the default of a version set that
scripts/manage/deploy_model.py recorded in MODEL_NAME.deployed.json) must already be present: a
missing one is one line and a failed start; one with older handler code is served as it is (an
archive carries its own handler) with a warning. Everything a start writes goes to the instance's
own RUN_DIR instead: rendered configs, TorchServe's unpacked archives (its temp dir) and the
converted-model cache (MODEL_CACHE_DIR, RUN_DIR/model-cache by default).

Pure decisions, tested without a server (tests/unit/test_model_store.py); the supervisor's prepare()
acts on them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SERVE, BUILD, REPACK, REFUSE = "serve", "build", "repack", "refuse"


@dataclass(frozen=True)
class ArchivePlan:
    action: str  # SERVE, BUILD, REPACK or REFUSE
    message: str = ""  # what to log ("" = nothing to say); for REFUSE the reason the start fails
    level: str = "INFO"
    event: str = ""


def store_is_writable(store: Path) -> bool:
    """Whether this process may create files in the store (or create the store itself).

    access(2) answers EROFS on a read-only mount even to root, and EACCES for a directory of
    another user, which is what a write would meet."""
    path = store
    while not path.exists():
        if path.parent == path:
            return False
        path = path.parent
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def plan_archive(store: Path, served: str, own: str, writable: bool,
                 is_stale: Callable[[Path], bool]) -> ArchivePlan:
    """What to do before TorchServe starts.

    ``served``: the archive the start loads (render_config.served_archive); ``own``: MODEL_NAME.mar,
    the one a writable store builds and repacks (build_mar writes only that name)."""
    if writable:
        archive = store / own
        if not archive.exists():
            return ArchivePlan(BUILD, f"{own} not found: building it", "INFO", "build_archive")
        if is_stale(archive):
            # The archive carries the handler code: repack it (same weights) when handler/ changed.
            return ArchivePlan(REPACK, f"{own} holds older handler code: repacking it", "WARNING", "repack_archive")
        return ArchivePlan(SERVE)
    archive = store / served
    if not archive.is_file():
        return ArchivePlan(
            REFUSE, f"{served} is not in MODEL_STORE {store}, which is read-only, so nothing is built there: "
            "put the archive in the model's storage (scripts/archive/build_mar.py --output-dir DIR) "
            "or set MODEL_STORE to a writable directory", "CRITICAL", "archive_missing")
    if is_stale(archive):
        return ArchivePlan(
            SERVE, f"{served} holds handler code older than this image's handler/: serving it as it is "
            f"(it carries its own handler; MODEL_STORE {store} is read-only, so it is not repacked). "
            "Rebuild the archive with scripts/archive/build_mar.py to serve this handler",
            "WARNING", "stale_archive_served")
    return ArchivePlan(SERVE)

"""scripts/service/model_store.py: what a start may do about the archive, on a writable and on a
read-only MODEL_STORE (KServe's /mnt/models). The real read-only mount is exercised end to end in
tests/integration/test_kserve_read_only_store.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scripts.service.model_store import BUILD, REFUSE, REPACK, SERVE, plan_archive, store_is_writable
from tests.support import no_private_mount_namespace

CANNOT_MOUNT = no_private_mount_namespace()

OWN = "resnet50.mar"


def never_stale(_archive: Path) -> bool:
    return False


def always_stale(_archive: Path) -> bool:
    return True


def test_writable_store_builds_and_repacks_its_own_archive(tmp_path):
    assert plan_archive(tmp_path, OWN, OWN, True, never_stale).action == BUILD
    (tmp_path / OWN).write_bytes(b"mar")
    assert plan_archive(tmp_path, OWN, OWN, True, never_stale) == plan_archive(tmp_path, OWN, OWN, True, never_stale)
    assert plan_archive(tmp_path, OWN, OWN, True, never_stale).action == SERVE
    repack = plan_archive(tmp_path, OWN, OWN, True, always_stale)
    assert (repack.action, repack.level, repack.event) == (REPACK, "WARNING", "repack_archive")


def test_read_only_store_never_builds_a_missing_archive(tmp_path):
    plan = plan_archive(tmp_path, OWN, OWN, False, never_stale)
    assert plan.action == REFUSE and plan.level == "CRITICAL"
    assert "\n" not in plan.message  # one line
    assert OWN in plan.message and str(tmp_path) in plan.message and "read-only" in plan.message


def test_read_only_store_serves_a_stale_archive_as_it_is(tmp_path):
    (tmp_path / OWN).write_bytes(b"mar")
    stale = plan_archive(tmp_path, OWN, OWN, False, always_stale)
    assert (stale.action, stale.level, stale.event) == (SERVE, "WARNING", "stale_archive_served")
    assert "not repacked" in stale.message
    fresh = plan_archive(tmp_path, OWN, OWN, False, never_stale)
    assert (fresh.action, fresh.message) == (SERVE, "")


def test_read_only_store_checks_the_version_set_default_not_the_own_name(tmp_path):
    """With resnet50.deployed.json the served archive is its default (e.g. resnet50-2.0.mar)."""
    (tmp_path / "resnet50-2.0.mar").write_bytes(b"mar")
    assert plan_archive(tmp_path, "resnet50-2.0.mar", OWN, False, never_stale).action == SERVE
    missing = plan_archive(tmp_path, "resnet50-3.0.mar", OWN, False, never_stale)
    assert missing.action == REFUSE and "resnet50-3.0.mar" in missing.message


def test_a_directory_named_like_the_archive_is_no_archive(tmp_path):
    (tmp_path / OWN).mkdir()
    assert plan_archive(tmp_path, OWN, OWN, False, never_stale).action == REFUSE


def test_store_is_writable_for_own_and_missing_directories(tmp_path):
    assert store_is_writable(tmp_path)
    assert store_is_writable(tmp_path / "not" / "made" / "yet")  # the build would create it
    (tmp_path / "file").write_text("x")
    assert not store_is_writable(tmp_path / "file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write a 0555 directory (the read-only mount test below is root's)")
def test_store_is_not_writable_without_permission(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert not store_is_writable(locked)
        assert not store_is_writable(locked / "below")
    finally:
        locked.chmod(0o755)


@pytest.mark.skipif(CANNOT_MOUNT is not None, reason=f"a read-only bind mount: {CANNOT_MOUNT}")
def test_store_is_not_writable_on_a_read_only_mount_even_for_root(tmp_path):
    """A read-only bind mount in a private mount namespace: what KServe's /mnt/models is to root."""
    import subprocess
    import sys

    from scripts import REPO_ROOT

    source, mount = tmp_path / "source", tmp_path / "mnt"
    source.mkdir()
    mount.mkdir()
    probe = ("import sys; from pathlib import Path; from scripts.service.model_store import store_is_writable; "
             "p = Path(sys.argv[1]); print(store_is_writable(p), store_is_writable(p / 'below'))\n"
             "try:\n    (p / 'x').write_text('x')\nexcept OSError as e:\n    print(e.strerror)")
    script = (f'mount --bind "{source}" "{mount}" && mount -o remount,bind,ro "{mount}" && '
              f'exec "{sys.executable}" -c "$0" "{mount}"')
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, probe],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["False False", "Read-only file system"]
    assert list(source.iterdir()) == []


def test_a_failed_build_is_one_line_naming_the_archive(tmp_path, monkeypatch):
    """The supervisor's prepare(): build_mar refuses (here: weights that do not exist) and the start fails
    with ArchiveBuildFailed naming the archive, after build_mar's own line; no traceback of its own.
    (build_mar reads the same settings as the supervisor: the environment and .env.)"""
    from scripts.service.settings import load_settings
    from scripts.service.supervisor import ArchiveBuildFailed, LogRelay, Supervisor

    store = tmp_path / "store"
    store.mkdir()
    for name, value in (("RUN_DIR", tmp_path / "run"), ("MODEL_STORE", store), ("ENV_FILE", tmp_path / "none.env"),
                        ("MODEL_WEIGHTS", tmp_path / "no such weights.pt")):
        monkeypatch.setenv(name, str(value))
    settings = load_settings()
    with pytest.raises(ArchiveBuildFailed) as raised:
        Supervisor(settings, LogRelay("json")).prepare()
    message = str(raised.value)
    assert message.startswith(f"building {store / 'resnet50.mar'} failed (exit 1)") and "\n" not in message
    assert not list(store.iterdir())  # nothing half-built left in the store

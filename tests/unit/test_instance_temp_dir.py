"""TorchServe's temp dir holds the workers' Unix sockets, whose paths Linux caps at 107 bytes:
a deep checkout gets a short private directory instead, the same one at every restart."""

from __future__ import annotations

import os

from scripts.service.supervisor import UNIX_SOCKET_PATH_MAX, instance_temp_dir


def test_a_short_run_dir_keeps_its_own_tmp(tmp_path):
    assert instance_temp_dir(tmp_path) == tmp_path / "tmp"
    assert (tmp_path / "tmp").is_dir()


def test_a_deep_run_dir_gets_a_short_private_dir_reused_at_restart(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    chosen = instance_temp_dir(deep)
    try:
        assert chosen != deep / "tmp" and chosen.is_dir()
        assert len(os.fsencode(str(chosen / ".ts.sock.65535"))) <= UNIX_SOCKET_PATH_MAX
        assert chosen.stat().st_mode & 0o777 == 0o700  # mkdtemp: nobody else's
        assert instance_temp_dir(deep) == chosen  # the same instance, restarted
    finally:
        chosen.rmdir()

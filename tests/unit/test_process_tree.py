"""The memory report's process-tree split (scripts/bench/process_tree.py): a fake supervisor tree
sorted into its parts, and the real readers on this test's own processes."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

from scripts.bench.process_tree import (classify, descendants, import_rss_mb, split_rss, supervisor_pid,
                                  tree_cpu_seconds, tree_memory)

MB = 1024 * 1024
VENV_PY = "/srv/app/.venv/bin/python"


def proc(pid, ppid, name, cmdline, rss_mb, pss_mb=None):
    return {"pid": pid, "ppid": ppid, "name": name, "cmdline": cmdline, "rss": rss_mb * MB,
            "pss": None if pss_mb is None else pss_mb * MB}


def fake_tree(pss=True):
    p = (lambda v: v) if pss else (lambda v: None)
    return [
        proc(1, 0, "systemd", ["/sbin/init"], 10, p(5)),
        proc(100, 1, "python", [VENV_PY, "-m", "scripts.service.supervisor"], 60, p(40)),
        proc(101, 100, "python", [VENV_PY, "-m", "ts.model_server", "--start", "--foreground"], 30, p(20)),
        proc(102, 101, "java", ["/usr/lib/jvm/bin/java", "-Xmx512m", "org.pytorch.serve.ModelServer"], 280, p(270)),
        proc(103, 102, "python", [VENV_PY, "/srv/app/.venv/lib/ts/model_service_worker.py", "--sock-type", "unix"],
             1000, p(900)),
        proc(104, 102, "python", [VENV_PY, "/srv/app/.venv/lib/ts/model_service_worker.py", "--sock-type", "unix"],
             1100, p(950)),
        proc(105, 100, "nginx", ["nginx: master process /usr/sbin/nginx -p /run/x -c nginx.conf"], 8, p(4)),
        proc(106, 105, "nginx", ["nginx: worker process"], 6, p(3)),
        proc(107, 105, "nginx", ["nginx: worker process"], 6, p(3)),
        # not under the supervisor: another service's JVM and worker on the same machine
        proc(200, 1, "java", ["/usr/bin/java", "-jar", "other.jar"], 500, p(500)),
        proc(201, 200, "python", [VENV_PY, "model_service_worker.py"], 900, p(900)),
    ]


def test_the_tree_splits_into_jvm_workers_nginx_and_the_rest():
    split = split_rss(fake_tree(), 100)
    parts = split["parts"]
    assert split["process_count"] == 8  # 200 and 201 are someone else's
    assert parts["frontend_jvm"]["rss_mb"] == 280
    assert parts["workers"]["rss_mb"] == 2100 and [w["pid"] for w in parts["workers"]["processes"]] == [103, 104]
    assert parts["nginx"]["rss_mb"] == 20 and parts["nginx"]["pss_mb"] == 10
    assert [p.get("role") for p in parts["nginx"]["processes"]] == ["master", None, None]
    assert parts["torchserve_launcher"]["rss_mb"] == 30 and parts["supervisor"]["rss_mb"] == 60
    assert "other" not in parts
    assert split["service_rss_mb"] == 280 + 2100 + 20
    assert split["total_rss_mb"] == 280 + 2100 + 20 + 30 + 60
    assert split["total_pss_mb"] == 270 + 1850 + 10 + 20 + 40
    assert list(parts) == ["frontend_jvm", "workers", "nginx", "torchserve_launcher", "supervisor"]


def test_pss_is_left_out_where_it_could_not_be_read():
    split = split_rss(fake_tree(pss=False), 100)
    assert split["total_pss_mb"] is None and split["parts"]["workers"]["pss_mb"] is None
    assert split["total_rss_mb"] == 2490


def test_a_subtree_root_counts_only_what_is_below_it():
    split = split_rss(fake_tree(), 102)  # the JVM: itself and its workers
    assert set(split["parts"]) == {"frontend_jvm", "workers"} and split["total_rss_mb"] == 2380


def test_a_tree_without_jvm_workers_or_nginx_has_no_service_subtotal():
    peer = [proc(7, 1, "python", ["/v/bin/python", "scripts/bench/kserve_peer.py", "--http_port", "9"], 900, 880)]
    split = split_rss(peer, 7)
    assert list(split["parts"]) == ["kserve_server"] and split["total_rss_mb"] == 900
    assert split["service_rss_mb"] is None and split["service_pss_mb"] is None


def test_an_unknown_root_is_an_empty_tree():
    assert descendants(fake_tree(), 999) == []
    assert split_rss(fake_tree(), 999)["process_count"] == 0


def test_classification_by_command_line():
    launcher = {"pid": 5, "name": "torchserve", "cmdline": ["/v/bin/python", "/v/bin/torchserve", "--start"]}
    assert classify(launcher, 1) == "torchserve_launcher"
    assert classify({"pid": 5, "name": "python", "cmdline": ["/v/bin/python", "app.py", "torchserve"]}, 1) == "other"
    assert classify({"pid": 5, "name": "python", "cmdline": ["/v/bin/torchserve", "--start"]}, 1) == "torchserve_launcher"
    assert classify({"pid": 5, "name": "python", "cmdline": ["py", "scripts/bench/kserve_peer.py"]}, 5) == "kserve_server"
    assert classify({"pid": 5, "name": "bash", "cmdline": ["bash"]}, 5) == "supervisor"
    assert classify({"pid": 6, "name": "bash", "cmdline": ["bash"]}, 5) == "other"


def test_the_real_tree_of_this_process_holds_its_children():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            memory = tree_memory(os.getpid())
            pids = [p["pid"] for part in memory["parts"].values() for p in part["processes"]]
            if child.pid in pids:
                break
            time.sleep(0.1)
        assert child.pid in pids and os.getpid() in pids
        assert memory["parts"]["supervisor"]["processes"][0]["pid"] == os.getpid()
        assert memory["total_rss_mb"] > 5
    finally:
        child.kill()
        child.wait()
    assert tree_cpu_seconds(os.getpid()) > 0
    assert tree_cpu_seconds(None) is None


def test_supervisor_pid_reads_a_live_pid_only(tmp_path):
    assert supervisor_pid(tmp_path) is None
    (tmp_path / "service.pid").write_text(f"{os.getpid()}\n")
    assert supervisor_pid(tmp_path) == os.getpid()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "service.pid").write_text(str(dead.pid))
    assert supervisor_pid(tmp_path) is None
    (tmp_path / "service.pid").write_text("garbage")
    assert supervisor_pid(tmp_path) is None


def test_import_rss_compares_with_a_bare_interpreter():
    # a module of the standard library that is not loaded at start: quick, and it must cost something
    probe = import_rss_mb(sys.executable, ("decimal", "email.mime.multipart", "xml.dom.minidom"))
    assert probe["bare_interpreter_mb"] > 1
    assert probe["after_import_mb"] > probe["bare_interpreter_mb"]
    assert probe["import_cost_mb"] == pytest.approx(probe["after_import_mb"] - probe["bare_interpreter_mb"], abs=0.11)

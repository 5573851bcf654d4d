"""Memory (and CPU) of a running service, from the process tree under its supervisor.

``scripts/service/supervisor.py`` writes its pid to ``RUN_DIR/service.pid``; under it run TorchServe's
launcher (``python -m ts.model_server``), the Java frontend it starts, the frontend's Python
workers (``model_service_worker.py``), and nginx (master + workers). :func:`split_rss` sorts
the tree's processes into those parts from a plain list (unit-tested on a fake tree);
:func:`snapshot` reads the real one with psutil.

RSS counts a shared page in every process that maps it, so the sum of RSS over-counts what
several processes share (libraries, a forked nginx's pages); PSS divides each shared page
among its users and adds up to the tree's real footprint. Both are reported where readable.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MB = 1024 * 1024
PARTS = ("frontend_jvm", "workers", "nginx", "torchserve_launcher", "supervisor", "kserve_server", "other")
# the parts the issue counts as "the service": JVM + worker(s) + nginx
CORE_PARTS = ("frontend_jvm", "workers", "nginx")


def classify(process: dict, root_pid: int) -> str:
    """Which part of the service a process is, from its name and command line."""
    name = (process.get("name") or "").lower()
    cmdline = [str(arg) for arg in (process.get("cmdline") or [])]
    joined = " ".join(cmdline)
    program = os.path.basename(cmdline[0]) if cmdline else ""
    if name == "java" or program == "java":
        return "frontend_jvm"
    if "model_service_worker" in joined:
        return "workers"
    if name.startswith("nginx") or program.startswith("nginx"):
        return "nginx"
    # `python -m ts.model_server` (scripts/service/supervisor.py), or the `torchserve` console script
    # (argv: the interpreter of its shebang line, then the script)
    if "ts.model_server" in cmdline or name == "torchserve" or "torchserve" in map(os.path.basename, cmdline[:2]):
        return "torchserve_launcher"
    if any(arg.endswith("kserve_peer.py") for arg in cmdline):  # the benchmark's peer baseline
        return "kserve_server"
    if process["pid"] == root_pid:
        return "supervisor"
    return "other"


def descendants(processes: list[dict], root_pid: int) -> list[dict]:
    """The root and everything below it, by parent links; other processes are left out."""
    children: dict[int, list[dict]] = {}
    by_pid = {}
    for process in processes:
        by_pid[process["pid"]] = process
        children.setdefault(process.get("ppid"), []).append(process)
    if root_pid not in by_pid:
        return []
    tree, stack, seen = [], [by_pid[root_pid]], set()
    while stack:
        process = stack.pop()
        if process["pid"] in seen:
            continue
        seen.add(process["pid"])
        tree.append(process)
        stack.extend(children.get(process["pid"], []))
    return sorted(tree, key=lambda p: p["pid"])


def _mb(value: int | None) -> float | None:
    return None if value is None else round(value / MB, 1)


def split_rss(processes: list[dict], root_pid: int) -> dict:
    """Sum RSS (and PSS where every process of a part has it) per part of the tree under
    ``root_pid``. ``processes``: dicts with pid, ppid, name, cmdline, rss (bytes) and
    optionally pss (bytes)."""
    tree = descendants(processes, root_pid)
    parts: dict[str, dict] = {}
    for process in tree:
        part = classify(process, root_pid)
        entry = parts.setdefault(part, {"rss": 0, "pss": 0, "processes": []})
        entry["rss"] += int(process.get("rss") or 0)
        pss = process.get("pss")
        entry["pss"] = None if pss is None or entry["pss"] is None else entry["pss"] + int(pss)
        role = "master" if part == "nginx" and "master" in " ".join(process.get("cmdline") or []) else None
        entry["processes"].append({"pid": process["pid"], "rss_mb": _mb(process.get("rss") or 0),
                                   "pss_mb": _mb(pss), **({"role": role} if role else {})})

    def total(key: str, names) -> float | None:
        values = [parts[name][key] for name in names if name in parts]
        return None if not values or None in values else _mb(sum(values))

    ordered = {name: {"rss_mb": _mb(parts[name]["rss"]), "pss_mb": _mb(parts[name]["pss"]),
                      "processes": parts[name]["processes"]} for name in PARTS if name in parts}
    return {
        "root_pid": root_pid, "process_count": len(tree), "parts": ordered,
        "total_rss_mb": total("rss", parts), "total_pss_mb": total("pss", parts),
        "service_rss_mb": total("rss", CORE_PARTS), "service_pss_mb": total("pss", CORE_PARTS),
    }


def snapshot(root_pid: int) -> list[dict]:
    """The process tree under ``root_pid`` as split_rss wants it (psutil; PSS needs the same
    user or root, otherwise it is None)."""
    import psutil

    try:
        root = psutil.Process(root_pid)
        members = [root] + root.children(recursive=True)
    except psutil.Error:
        return []
    out = []
    for process in members:
        try:
            with process.oneshot():
                info = {"pid": process.pid, "ppid": process.ppid(), "name": process.name(),
                        "cmdline": process.cmdline(), "rss": process.memory_info().rss, "pss": None}
        except psutil.Error:
            continue
        try:
            info["pss"] = process.memory_full_info().pss
        except (psutil.Error, AttributeError):
            pass
        out.append(info)
    return out


def tree_memory(root_pid: int) -> dict:
    return split_rss(snapshot(root_pid), root_pid)


def tree_cpu_seconds(root_pid: int | None) -> float | None:
    """User + system CPU seconds of the live processes under ``root_pid`` (None without one)."""
    if root_pid is None:
        return None
    import psutil

    try:
        root = psutil.Process(root_pid)
        members = [root] + root.children(recursive=True)
    except psutil.Error:
        return None
    total = 0.0
    for process in members:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def supervisor_pid(run_dir: Path) -> int | None:
    """The pid in RUN_DIR/service.pid when that process is alive."""
    try:
        pid = int((Path(run_dir) / "service.pid").read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


IMPORT_PROBE = """
import sys
{imports}
rss_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
print(rss_kb)
"""


def import_rss_mb(python: str = sys.executable, modules: tuple[str, ...] = ("torch",), timeout: float = 120) -> dict:
    """RSS of a fresh ``python -c "import torch"`` (read by the interpreter itself right after
    the import), next to that of a bare interpreter: what one import of the module costs every
    process that makes it (each TorchServe worker does)."""
    def run(imports: str) -> float:
        out = subprocess.run([python, "-c", IMPORT_PROBE.format(imports=imports)], capture_output=True, text=True,
                             timeout=timeout, check=True, env={k: v for k, v in os.environ.items()
                                                                 if k not in ("PYTHONPATH", "PYTHONSTARTUP")})
        return round(int(out.stdout.strip().splitlines()[-1]) / 1024, 1)

    bare = run("")
    loaded = run("\n".join(f"import {name}" for name in modules))
    version = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], capture_output=True,
                             text=True, timeout=timeout).stdout.strip() if "torch" in modules else None
    return {"python": python, "modules": list(modules), "bare_interpreter_mb": bare, "after_import_mb": loaded,
            "import_cost_mb": round(loaded - bare, 1), **({"torch": version} if version else {})}

#!/usr/bin/env python3
"""Run the image built by scripts/container/container_smoke.sh the way production does, check it, report.

    python3 -m scripts.container.container_smoke --image resnet50-serve:smoke --report FILE ...

The container gets its own entrypoint, user and HEALTHCHECK, a read-only root filesystem
with a tmpfs /tmp, and port 5000 on a free loopback port. Checks: the HEALTHCHECK passes,
/health 200, /info 200 with customizedMetadata, POST /predict of a generated JPEG 200 with DEFAULT_TOP_K
predictions, a text file 415 JSON, every process runs as uid 10001, nothing written outside
/tmp, `podman stop -t 45` (SIGTERM) ends it in time with exit code 0. Records the image size,
its layers and the cold start (run -> first 200 /health). Standard library only; exit 0 when
every check passed. Needs CONTAINERS_CONF from container_smoke.sh on hosts like ours.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from handler.settings_table import BY_NAME
from scripts.container.podman_calls import free_port, http, podman, write_report

SERVICE_UID = 10001
READY_DEADLINE_S = 300  # run -> HEALTHCHECK passing; the image's own start-period is 90 s
STOP_TIMEOUT_S = 45  # docs/deployment.md: docker stop -t 45 (REQUEST_TIMEOUT + 5 s of draining, then TorchServe)
TMPFS = "/tmp:rw,size=512m"
PODMAN_MOUNTPOINTS = {"/etc", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run", "/run/.containerenv",
                      "/tmp"}

# A 320x240 JPEG, made by the image's own Pillow so the host needs nothing but podman.
MAKE_JPEG = """
import io, sys
from PIL import Image
gradient = Image.linear_gradient("L")
image = Image.merge("RGB", (gradient, Image.radial_gradient("L"), gradient.rotate(90))).resize((320, 240))
buffer = io.BytesIO()
image.save(buffer, "JPEG", quality=90)
sys.stdout.buffer.write(buffer.getvalue())
"""

# uid and command line of every process in the container but this probe itself.
LIST_PROCESSES = """
import json, os
rows = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    if int(pid) == os.getpid():
        continue
    try:
        uid = os.stat(f"/proc/{pid}").st_uid
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ").decode(errors="replace")
    except OSError:
        continue
    rows.append({"pid": int(pid), "uid": uid, "cmd": cmd.strip()[:100]})
print(json.dumps(rows))
"""


class Smoke:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.image = args.image
        self.container = f"resnet50-smoke-{os.getpid()}"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.checks: dict[str, dict] = {}
        self.timings: dict[str, float | None] = {"base_image_s": args.base_seconds,
                                                 "build_s": args.build_seconds}
        self.report: dict = {"image": {"tag": self.image}, "checks": self.checks, "timings": self.timings,
                             # timings depend on what else runs: the host's load, for the record
                             "host": {"cpus": os.cpu_count(), "load_avg_1m_at_start": os.getloadavg()[0]}}

    def check(self, name: str, ok: bool, **detail) -> bool:
        self.checks[name] = {"ok": bool(ok), **detail}
        print(f"  {'ok  ' if ok else 'FAIL'} {name} {json.dumps(detail, default=str)[:300]}", flush=True)
        return bool(ok)

    # ------------------------------------------------------------------ image facts
    def describe_image(self) -> None:
        size = int(podman("image", "inspect", "--format", "{{.Size}}", self.image).stdout)
        history = json.loads(podman("history", "--format", "json", self.image).stdout or b"[]")
        layers = [{"size_bytes": int(entry.get("size", 0)),
                   "created_by": " ".join(str(entry.get("CreatedBy") or entry.get("createdBy") or "").split())}
                  for entry in reversed(history)]  # oldest first, as in the Dockerfile
        config = json.loads(podman("image", "inspect", self.image).stdout)[0]
        python = podman("run", "--rm", "--network", "none", "--entrypoint", "python", self.image,
                        "-c", "import sys; print(sys.version.split()[0], sys.executable)").stdout.decode().strip()
        self.report["image"].update({
            "id": config.get("Id", "")[:12], "size_bytes": size, "size_gb": round(size / 1e9, 2),
            "layers": layers, "user": config.get("Config", {}).get("User"),
            "python": python, "base": self.args.base,
            "base_cached": self.args.base_cached == "true",
            "base_description": config.get("Labels", {}).get("org.opencontainers.image.description"),
        })

    # ------------------------------------------------------------------ the run
    def start(self) -> float:
        started = time.monotonic()
        podman("run", "-d", "--name", self.container, "--label", self.args.label,
               "-p", f"127.0.0.1:{self.port}:5000", "--read-only", "--tmpfs", TMPFS, self.image)
        return started

    def running(self) -> bool:
        result = podman("inspect", "--format", "{{.State.Running}}", self.container, check=False)
        return result.stdout.decode().strip() == "true"

    def wait_ready(self, started: float) -> bool:
        """Loop on the image's own HEALTHCHECK; meanwhile poll /health for the cold start."""
        first_200: list[float] = []
        done = threading.Event()

        def poll_health() -> None:
            while not done.is_set():
                if http("GET", f"{self.base_url}/health", timeout=3)[0] == 200:
                    first_200.append(time.monotonic() - started)
                    return
                time.sleep(0.1)

        poller = threading.Thread(target=poll_health, daemon=True)
        poller.start()
        attempts, last = 0, ""
        passed_after = None
        try:
            while time.monotonic() - started < READY_DEADLINE_S:
                if not self.running():
                    last = "container exited during start-up"
                    break
                result = podman("healthcheck", "run", self.container, timeout=30, check=False)
                attempts += 1
                last = (result.stdout + result.stderr).decode(errors="replace").strip()
                if result.returncode == 0:
                    passed_after = time.monotonic() - started
                    break
                if result.returncode not in (0, 1):  # 125: e.g. the image has no HEALTHCHECK
                    break
                time.sleep(1)
            poller.join(timeout=5)
        finally:
            done.set()
        self.timings["cold_start_s"] = round(first_200[0], 2) if first_200 else None
        self.timings["healthcheck_pass_s"] = round(passed_after, 2) if passed_after else None
        return self.check("healthcheck_passes", passed_after is not None, attempts=attempts,
                          after_s=self.timings["healthcheck_pass_s"], last_output=last[-300:])

    def check_api(self, jpeg: bytes) -> None:
        status, body = http("GET", f"{self.base_url}/health")
        self.check("health_200", status == 200 and (body or {}).get("status") == "healthy",
                   status=status, pretrained=(body or {}).get("pretrained"))
        status, body = http("GET", f"{self.base_url}/info")
        meta = _find_customized_metadata(body)
        self.check("info_200_customized_metadata", status == 200 and isinstance(meta, dict), status=status,
                   keys=sorted(meta)[:12] if isinstance(meta, dict) else None)
        if isinstance(meta, dict):
            self.report["service"] = {"pretrained": meta.get("weights", {}).get("pretrained"),
                                      "weights_source": meta.get("weights", {}).get("source"),
                                      "runtime": meta.get("runtime")}
        status, body = http("POST", f"{self.base_url}/predict", jpeg, "image/jpeg")
        predictions = (body or {}).get("predictions") or []
        classes = meta.get("num_classes", 0) if isinstance(meta, dict) else 0
        expected = min(BY_NAME["DEFAULT_TOP_K"].parse(), classes)  # DEFAULT_TOP_K, or every class of a small model
        self.check("predict_jpeg_200_default_top_k", status == 200 and len(predictions) == expected
                   and all({"rank", "class_id", "label", "probability"} <= set(p) for p in predictions),
                   status=status, predictions=len(predictions), expected=expected, image=(body or {}).get("image"),
                   top1=predictions[0]["label"] if predictions else None)
        status, body = http("POST", f"{self.base_url}/predict", b"just some text, not an image\n", "text/plain")
        code = ((body or {}).get("error") or {}).get("code")
        self.check("predict_text_415_json", status == 415 and code == "unsupported_media_type",
                   status=status, code=code)

    def check_processes(self) -> None:
        top = podman("top", self.container, "pid", "user", "huser", "args", check=False)
        self.report["podman_top"] = top.stdout.decode(errors="replace").strip().splitlines()
        probe = podman("exec", self.container, "python", "-c", LIST_PROCESSES, check=False)
        try:
            rows = json.loads(probe.stdout)
        except ValueError:
            rows = []
        uids = sorted({row["uid"] for row in rows})
        self.check("processes_run_as_uid_10001", bool(rows) and uids == [SERVICE_UID],
                   processes=len(rows), uids=uids, pid1=next((r["cmd"] for r in rows if r["pid"] == 1), None))
        tmp = podman("exec", self.container, "du", "-sm", "/tmp", check=False).stdout.decode().split()
        self.report["tmpfs_used_mb"] = int(tmp[0]) if tmp and tmp[0].isdigit() else None
        # Read-only root: nothing may have been written outside the tmpfs but the mountpoints
        # podman itself makes before the root goes read-only (/etc/hosts, /etc/resolv.conf, ...).
        lines = podman("diff", self.container, check=False).stdout.decode().splitlines()
        changes = [line.split(None, 1)[-1] for line in lines if line.strip()]
        unexpected = [path for path in changes if path not in PODMAN_MOUNTPOINTS]
        self.check("rootfs_unchanged", not unexpected, unexpected=unexpected[:20],
                   podman_mountpoints=[path for path in changes if path in PODMAN_MOUNTPOINTS])

    def stop(self) -> None:
        began = time.monotonic()
        result = podman("stop", "-t", str(STOP_TIMEOUT_S), self.container, timeout=STOP_TIMEOUT_S + 30, check=False)
        took = round(time.monotonic() - began, 2)
        self.timings["stop_s"] = took
        state = json.loads(podman("inspect", "--format", "{{json .State}}", self.container).stdout)
        logs = podman("logs", self.container, check=False)
        lines = (logs.stdout + logs.stderr).decode(errors="replace").splitlines()
        events = [_event(line) for line in lines]
        ready = next((e for e in events if e.get("event") == "ready"), {})
        self.timings["service_reported_startup_s"] = ready.get("startup_s")
        self.report["log_tail"] = lines[-8:]
        self.check("sigterm_stop_exit_0", result.returncode == 0 and state.get("ExitCode") == 0
                   and took < STOP_TIMEOUT_S and any(e.get("event") == "stopped" for e in events),
                   exit_code=state.get("ExitCode"), stop_s=took, grace_s=STOP_TIMEOUT_S,
                   logged_stopping=any(e.get("event") == "stopping" for e in events),
                   logged_stopped=any(e.get("event") == "stopped" for e in events))

    def run(self) -> int:
        self.describe_image()
        jpeg = podman("run", "--rm", "--network", "none", "--read-only", "--entrypoint", "python",
                      self.image, "-c", MAKE_JPEG).stdout
        started = self.start()
        try:
            if self.wait_ready(started):
                self.check_api(jpeg)
                self.check_processes()
            else:
                self.report["log_tail"] = podman("logs", "--tail", "30", self.container,
                                                 check=False).stdout.decode(errors="replace").splitlines()
            self.stop()
        finally:
            podman("rm", "-f", "-t", "0", self.container, check=False)
        return 0 if all(c["ok"] for c in self.checks.values()) else 1


def _find_customized_metadata(body) -> dict | None:
    """The handler's metadata wherever /info puts it (TorchServe's describe answer is a list of
    versions; the proxy may wrap it): the first "customizedMetadata" found, depth first."""
    if isinstance(body, dict):
        if "customizedMetadata" in body:
            meta = body["customizedMetadata"]
            if isinstance(meta, str):
                try:
                    meta = json.loads(meta)
                except ValueError:
                    return None
            return meta if isinstance(meta, dict) else None
        body = list(body.values())
    if isinstance(body, list):
        for item in body:
            found = _find_customized_metadata(item)
            if found is not None:
                return found
    return None


def _event(line: str) -> dict:
    try:
        entry = json.loads(line)
        return entry if isinstance(entry, dict) else {}
    except ValueError:
        return {}


def summary(report: dict) -> str:
    image, timings = report["image"], report["timings"]
    rows = [(f"container smoke: {report['result'].upper()}  ({image.get('tag')}, "
             f"{image.get('size_gb')} GB, python {image.get('python', '?').split()[0]})")]
    for name, check in report["checks"].items():
        rows.append(f"  {'ok  ' if check['ok'] else 'FAIL'} {name}")
    rows.append("  timings (s): " + ", ".join(f"{k}={v}" for k, v in timings.items()))
    rows.append("  layers (MB, oldest first):")
    for layer in image.get("layers", []):
        rows.append(f"    {layer['size_bytes'] / 1e6:9.1f}  {layer['created_by'][:90]}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", required=True)
    parser.add_argument("--base", default="")
    parser.add_argument("--label", default="resnet50-container-smoke=1", help="key=value put on the container")
    parser.add_argument("--report", type=Path, default=Path("test-artifacts/container_smoke.json"))
    parser.add_argument("--base-seconds", type=float, default=None)
    parser.add_argument("--base-cached", default="")
    parser.add_argument("--build-seconds", type=float, default=None)
    parser.add_argument("--started-epoch", type=float, default=None, help="when the whole smoke run began")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup in `finally`

    smoke = Smoke(args)
    code = 1
    try:
        code = smoke.run()
    except Exception as error:  # noqa: BLE001 - reported, then the run fails
        smoke.check("smoke_run_completed", False, error=f"{type(error).__name__}: {error}")
    finally:
        report = smoke.report
        report["result"] = "pass" if code == 0 else "fail"
        if args.started_epoch:
            smoke.timings["total_s"] = round(time.time() - args.started_epoch, 1)
        write_report(report, args.report, summary(report))
    return code


if __name__ == "__main__":
    sys.exit(main())

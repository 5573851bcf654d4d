#!/usr/bin/env python3
"""The README's two commands on a fresh Debian 13, in a podman container (scripts/container/debian_first_run.sh).

    python3 -m scripts.container.debian_first_run --image IMAGE --source CLONE --ca-bundle FILE --report FILE [--suite]

In one container of IMAGE (a trixie minbase: no Python, Java or nginx), sharing the host's network so
its ports are the host's loopback ports:

1. as root, from a checkout at "/root/first run/resnet50 serve" (0700 /root, a space in the path):
   `scripts/serve.sh --detach` installs everything and serves; every public route is asked;
2. as an unprivileged user from a 0700 home, beside root's instance, on another PORT: the same;
3. with --suite, root's `scripts/test.sh` runs there too (the whole suite).

pip reaches its index through the host's CA bundle (PIP_CERT), the only thing handed in from the host;
root's pip cache is handed to the user afterwards (PIP_CACHE_DIR), so the second install downloads
nothing. Standard library only (the host's python3); exit 0 when every check passed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

from handler.settings_table import BY_NAME
from scripts.container.podman_calls import free_port, http, podman, write_report

ROOT_CHECKOUT = "/root/first run/resnet50 serve"
USER = "firstrun"
USER_CHECKOUT = f"/home/{USER}/my models/resnet50 serve"
PIP_CACHE = "/var/cache/pip-first-run"
CA_IN_CONTAINER = "/run/host-ca-certificates.crt"
INSTALL_TIMEOUT_S = 1800  # apt + a venv with PyTorch from pip's index + the archive build
SUITE_TIMEOUT_S = 3600
SAMPLE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "sample.jpg"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the container's writable layer grows to, in GB, seen here on Debian 13 (Python 3.13 takes
# PyPI's CUDA build of torch): two venvs of about 5.6 GB, pip's shared cache of about 3 GB and apt's
# packages; the suite adds its test packages and its temporary model stores. Checked before the first
# install, so a full disk is one line at the start, not "No space left on device" twenty minutes in.
NEEDS_GB = {"serve": 16, "suite": 26}


class FirstRun:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.container = f"resnet50-first-run-{os.getpid()}"
        self.checks: dict[str, dict] = {}
        self.timings: dict[str, float | None] = {"base_image_s": args.base_seconds}
        self.report: dict = {"image": args.image, "checks": self.checks, "timings": self.timings,
                             "host": {"cpus": os.cpu_count(), "load_avg_1m_at_start": os.getloadavg()[0]}}

    def check(self, name: str, ok: bool, **detail) -> bool:
        self.checks[name] = {"ok": bool(ok), **detail}
        print(f"  {'ok  ' if ok else 'FAIL'} {name} {json.dumps(detail, default=str)[:400]}", flush=True)
        return bool(ok)

    def exec(self, command: str, *, user: str | None = None, env: dict[str, str] | None = None,
             timeout: float = 300) -> tuple[int, str]:
        """A shell command in the container (as root, or as ``user`` with a clean login-like env)."""
        if user:
            variables = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
            command = f"runuser -u {user} -- env -i HOME=/home/{user} PATH={PATH} LANG=C.UTF-8 {variables} " \
                      f"bash -c {shlex.quote(command)}"
            env = None
        options = [item for key, value in (env or {}).items() for item in ("-e", f"{key}={value}")]
        result = podman("exec", *options, self.container, "bash", "-c", command, timeout=timeout, check=False)
        return result.returncode, (result.stdout + result.stderr).decode(errors="replace")

    # ----------------------------------------------------------------------------- steps
    def start_container(self) -> None:
        # SYS_ADMIN: root on a machine may make mount namespaces, which the suite's read-only model
        # store tests use (KServe's /mnt/models); a container's root may not without it.
        podman("run", "-d", "--name", self.container, "--label", self.args.label, "--network", "host",
               "--cap-add", "SYS_ADMIN",
               "-v", f"{self.args.source}:/src:ro", "-v", f"{self.args.ca_bundle}:{CA_IN_CONTAINER}:ro",
               self.args.image, "sleep", "infinity")
        code, release = self.exec("cat /etc/debian_version; command -v python3 java nginx || true")
        self.report["fresh_system"] = release.strip().splitlines()
        self.check("fresh_debian_13", code == 0 and release.startswith("13"), release=release.strip())

    def disk_space(self) -> bool:
        store = podman("info", "--format", "{{.Store.GraphRoot}}").stdout.decode().strip()
        free_gb = round(shutil.disk_usage(store).free / 1e9, 1)
        needs_gb = NEEDS_GB["suite" if self.args.suite else "serve"]
        return self.check("disk_space_for_two_installs", free_gb >= needs_gb, store=store, free_gb=free_gb,
                          needs_gb=needs_gb, expected=f"at least {needs_gb} GB free under {store}",
                          found=f"{free_gb} GB")

    def container_size(self) -> None:
        """How much the two installs (and the suite) wrote: the figure NEEDS_GB is kept beside."""
        result = podman("ps", "-a", "--size", "--filter", f"name={self.container}", "--format", "{{.Size}}",
                        check=False, timeout=300)
        self.report["container_size"] = result.stdout.decode().strip()

    def serve(self, name: str, checkout: str, port: int, user: str | None) -> bool:
        env = {"PORT": str(port), "PIP_CERT": CA_IN_CONTAINER, "PIP_CACHE_DIR": PIP_CACHE}
        started = time.monotonic()
        code, output = self.exec(f"cd {shlex.quote(checkout)} && scripts/serve.sh --detach", user=user, env=env,
                                 timeout=INSTALL_TIMEOUT_S)
        self.timings[f"{name}_first_serve_s"] = round(time.monotonic() - started, 1)
        tail = [line for line in output.splitlines() if not line.startswith("WARNING: Location")][-12:]
        return self.check(f"{name}_serve_detach_exit_0", code == 0, exit_code=code, output_tail=tail)

    def check_routes(self, name: str, port: int) -> None:
        base = f"http://127.0.0.1:{port}"
        status, health = http("GET", f"{base}/health")
        self.check(f"{name}_health_200", status == 200 and (health or {}).get("status") == "healthy",
                   status=status, pretrained=(health or {}).get("pretrained"))
        status, info = http("GET", f"{base}/info")
        classes = _num_classes(info)
        self.check(f"{name}_info_200_json", status == 200 and classes is not None, status=status, classes=classes)
        status, body = http("POST", f"{base}/predict", SAMPLE.read_bytes(), "image/jpeg")
        predictions = (body or {}).get("predictions") or []
        expected = min(BY_NAME["DEFAULT_TOP_K"].parse(), classes or 1)
        self.check(f"{name}_predict_200", status == 200 and len(predictions) == expected,
                   status=status, predictions=len(predictions), expected=expected,
                   top1=predictions[0]["label"] if predictions else None)
        status, body = http("POST", f"{base}/predict", b"not an image\n", "text/plain")
        self.check(f"{name}_text_415_json", status == 415
                   and ((body or {}).get("error") or {}).get("code") == "unsupported_media_type", status=status)
        for path in ("/", "/openapi.json"):
            status, _ = http("GET", base + path)
            self.check(f"{name}_get_{path.strip('/') or 'page'}_200", status == 200, status=status)

    def versions(self) -> None:
        code, output = self.exec(f"cd {shlex.quote(ROOT_CHECKOUT)} && .venv/bin/python --version; "
                                 "java -version 2>&1 | head -1; nginx -v 2>&1; "
                                 "dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\\n' 'nginx*' "
                                 "'default-jre*' 'openjdk-*' python3 python3-venv 2>/dev/null | sed -n 's/^ii *//p'")
        self.report["versions"] = output.strip().splitlines()
        java = re.search(r'version "(\d+)', output)
        python = re.search(r"Python 3\.(\d+)", output)
        self.check("python_3_11_to_3_13_and_java_17_plus", code == 0 and bool(java and python)
                   and int(java.group(1)) >= 17 and 11 <= int(python.group(1)) <= 13,
                   python=python.group(0) if python else None, java=java.group(1) if java else None)

    def unprivileged_user(self, port: int) -> bool:
        script = (f"useradd --create-home --shell /bin/bash {USER} && chmod 700 /home/{USER} "
                  f"&& mkdir -p {shlex.quote(os.path.dirname(USER_CHECKOUT))} "
                  f"&& cp -a /src {shlex.quote(USER_CHECKOUT)} && chown -R {USER}: /home/{USER} "
                  f"&& chown -R {USER}: {PIP_CACHE}")
        code, output = self.exec(script)
        if not self.check("user_created_with_private_home", code == 0, output=output.strip()[-300:]):
            return False
        return self.serve("user", USER_CHECKOUT, port, USER)

    def nginx_workers_run_as(self) -> list[str]:
        """Users of the nginx workers of both instances (from /proc: a minbase has no ps)."""
        code, output = self.exec("for d in /proc/[0-9]*; do tr '\\0' ' ' <\"$d/cmdline\" 2>/dev/null "
                                 "| grep -q '^nginx: worker' && stat -c %U \"$d\"; done | sort -u")
        return output.split() if code == 0 else []

    def suite(self) -> None:
        started = time.monotonic()
        # -rfE: pytest names every failed and erroring test, so the report says which, not only how many.
        # FIRST_RUN_SUITE_ARGS: pytest arguments of one's own (a module to rerun), after the defaults.
        extra = os.environ.get("FIRST_RUN_SUITE_ARGS", "")
        code, output = self.exec(f"cd {shlex.quote(ROOT_CHECKOUT)} && scripts/test.sh -q -rfE -p no:cacheprovider "
                                 f"{extra}",
                                 env={"PIP_CERT": CA_IN_CONTAINER, "PIP_CACHE_DIR": PIP_CACHE},
                                 timeout=SUITE_TIMEOUT_S)
        self.timings["suite_s"] = round(time.monotonic() - started, 1)
        summary = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
        named = [line for line in output.splitlines() if line.startswith(("FAILED ", "ERROR "))]
        log = self.args.report.with_suffix(".suite.log")  # pytest's whole output, tracebacks included
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(output)
        self.report["suite_log"] = str(log)
        self.check("suite_passes", code == 0, exit_code=code, summary=summary[-1:] or output.splitlines()[-20:],
                   failed=named[:60])

    def stop(self, name: str, checkout: str, port: int, user: str | None) -> None:
        code, output = self.exec(f"cd {shlex.quote(checkout)} && scripts/serve.sh --stop", user=user,
                                 env={"PORT": str(port)}, timeout=180)
        self.check(f"{name}_stop_exit_0", code == 0, output=output.strip()[-200:])

    def run(self) -> int:
        if not self.disk_space():
            return 1
        self.start_container()
        root_port, user_port = free_port(), free_port()
        while user_port == root_port:
            user_port = free_port()
        self.exec(f"mkdir -p {shlex.quote(os.path.dirname(ROOT_CHECKOUT))} {PIP_CACHE} && chmod 700 /root "
                  f"&& cp -a /src {shlex.quote(ROOT_CHECKOUT)}")
        if self.serve("root", ROOT_CHECKOUT, root_port, None):
            self.check_routes("root", root_port)
            self.versions()
            if self.unprivileged_user(user_port):
                self.check_routes("user", user_port)
                workers = self.nginx_workers_run_as()
                self.check("nginx_workers_run_as_each_instance_user", workers == sorted([USER, "root"]),
                           workers=workers)
                self.check_routes("root_beside_user", root_port)
                self.stop("user", USER_CHECKOUT, user_port, USER)
            if self.args.suite:
                self.suite()
            self.stop("root", ROOT_CHECKOUT, root_port, None)
        return 0 if self.checks and all(c["ok"] for c in self.checks.values()) else 1


def _num_classes(info) -> int | None:
    try:
        return int(info["default"][0]["customizedMetadata"]["num_classes"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def summary(report: dict) -> str:
    rows = [f"Debian 13 first run: {report['result'].upper()}  ({report['image']})"]
    for name, check in report["checks"].items():
        rows.append(f"  {'ok  ' if check['ok'] else 'FAIL'} {name}")
    rows.append("  versions: " + "; ".join(report.get("versions", [])))
    if report.get("container_size"):
        rows.append(f"  container's writable layer: {report['container_size']}")
    rows.append("  timings (s): " + ", ".join(f"{k}={v}" for k, v in report["timings"].items()))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", required=True)
    parser.add_argument("--label", default="resnet50-first-run=1")
    parser.add_argument("--source", required=True, type=Path, help="a clean clone of the repository")
    parser.add_argument("--ca-bundle", required=True, type=Path)
    parser.add_argument("--report", type=Path, default=Path("test-artifacts/debian13_first_run.json"))
    parser.add_argument("--base-seconds", type=float, default=None)
    parser.add_argument("--suite", action="store_true", help="also run scripts/test.sh as root in the container")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    first_run = FirstRun(args)
    started = time.monotonic()
    code = 1
    try:
        code = first_run.run()
    except Exception as error:  # noqa: BLE001 - reported, then the run fails
        first_run.check("first_run_completed", False, error=f"{type(error).__name__}: {error}")
    finally:
        first_run.container_size()  # also after a failure: a full disk shows here
        podman("rm", "-f", "-t", "0", first_run.container, check=False)
        first_run.timings["total_s"] = round(time.monotonic() - started, 1)
        report = first_run.report
        report["result"] = "pass" if code == 0 else "fail"
        write_report(report, args.report, summary(report))
    return code


if __name__ == "__main__":
    sys.exit(main())

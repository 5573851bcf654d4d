#!/usr/bin/env python3
"""Run the service: render config, build the archive if missing, supervise TorchServe + nginx.

    service.py             foreground: logs on stdout; SIGINT/SIGTERM drain and stop both;
                           if either process dies, stop the other and exit 1 (so a container
                           runtime or supervisor restarts the whole service)
    service.py --detach    the same in the background (log: RUN_DIR/service.log); returns 0
                           once GET /health is 200, else prints why and exits 1
    service.py --stop      stop a detached service (graceful, then forced)
    service.py --status    running? healthy? (exit 0 healthy, 1 unhealthy, 3 not running)

``scripts/serve.sh`` installs what is needed and calls this file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from scripts.archive.archive_info import archive_is_stale, int8_refusal
from scripts.service.ports import PortInUse, check_public_ports, resolve_ports, write_ports
from scripts.service.model_store import REFUSE, REPACK, SERVE, plan_archive, store_is_writable
from scripts.service.readiness import ReadinessServer
from scripts.service.shedding import ShedTarpit
from scripts.service.render_config import render_all, served_archive
from scripts.service.settings import REPO_ROOT, SettingsError, handler_environment, load_settings
from scripts.service.ts_tokens import key_file, wait_for_keys

SUPERVISOR_PID = "service.pid"
TORCHSERVE_PGID = "torchserve.pgid"
DETACHED_LOG = "service.log"
STOP_GRACE_S = 30
KEYS_TIMEOUT_S = 60


# ----------------------------------------------------------------------------- logs
class LogRelay:
    """Turns every child's output lines into one stream of JSON (or text) lines on stdout."""

    _FRONTEND = re.compile(r"^(\d{4}-\d\d-\d\dT[\d:.]+) \[(\w+)\s*\] (\S+) - (.*)$")
    _MODEL = re.compile(r"^\[(\w+)\s*\] (.*)$")
    _NGINX = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] (.*)$")
    _LEVELS = {"WARN": "WARNING", "EMERG": "CRITICAL", "ALERT": "CRITICAL", "CRIT": "CRITICAL",
               "NOTICE": "INFO", "FATAL": "CRITICAL"}

    def __init__(self, fmt: str, stream=None) -> None:
        self.fmt = fmt
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()

    def emit(self, entry: dict) -> None:
        entry.setdefault("time", _utc_now())
        if self.fmt == "text":
            extras = " ".join(f"{k}={v}" for k, v in entry.items()
                              if k not in ("time", "level", "logger", "message"))
            line = f"{entry['time']} {entry.get('level', 'INFO'):<8} {entry.get('logger', '-')}: " \
                   f"{entry.get('message', '')} {extras}".rstrip()
        else:
            line = json.dumps(entry, separators=(",", ":"), default=str)
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def log(self, level: str, message: str, **fields) -> None:
        self.emit({"time": _utc_now(), "level": level, "logger": "service", "message": message, **fields})

    def parse(self, source: str, raw: str) -> dict | None:
        line = raw.rstrip("\r\n")
        if not line.strip():
            return None
        level = "INFO"
        logger = source
        match = self._MODEL.match(line)
        if source == "torchserve":
            frontend = self._FRONTEND.match(line)
            if frontend:
                _, level, logger_name, line = frontend.groups()
                logger = f"torchserve.{logger_name}"
            elif match:
                level, line = match.groups()
                logger = "torchserve.worker"
        elif source == "nginx":
            nginx = self._NGINX.match(line)
            if nginx:
                level, line = nginx.groups()
                logger = "nginx.error"
        if line.startswith("{"):
            try:
                entry = json.loads(line)
                if isinstance(entry, dict):
                    return entry
            except json.JSONDecodeError:
                pass
        level = level.upper()
        return {"level": self._LEVELS.get(level, level), "logger": logger, "message": line}

    def follow(self, source: str, pipe) -> threading.Thread:
        def pump() -> None:
            for raw in iter(pipe.readline, ""):
                entry = self.parse(source, raw)
                if entry is not None:
                    self.emit(entry)
            pipe.close()

        thread = threading.Thread(target=pump, name=f"log-{source}", daemon=True)
        thread.start()
        return thread


# ----------------------------------------------------------------------- processes
# TorchServe's frontend talks to each worker over a Unix socket in its temp dir
# (".ts.sock.<port>"); Linux caps such a path at 107 bytes.
UNIX_SOCKET_PATH_MAX = 107
SOCKET_NAME_ROOM = len("/.ts.sock.65535")


def instance_temp_dir(run_dir: Path) -> Path:
    """TorchServe's temp dir (its pid file, unpacked archives, worker sockets): one per instance.

    RUN_DIR/tmp, unless a deep checkout would make the worker sockets' paths too long: then a
    private directory under the system's temp dir, named after this instance.
    """
    preferred = run_dir / "tmp"
    if len(os.fsencode(str(preferred))) + SOCKET_NAME_ROOM <= UNIX_SOCKET_PATH_MAX:
        preferred.mkdir(parents=True, exist_ok=True)
        return preferred
    import tempfile  # only for this rare case

    pointer = run_dir / "tmp.path"  # reused across restarts of the same instance
    try:
        previous = Path(pointer.read_text().strip())
        if previous.is_dir() and previous.stat().st_uid == os.geteuid():
            return previous
    except OSError:
        pass
    short = Path(tempfile.mkdtemp(prefix="resnet50-ts-"))
    pointer.write_text(str(short))
    return short


def child_environment(settings: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(handler_environment(settings))
    tmp = str(instance_temp_dir(Path(settings["RUN_DIR"])))
    # TorchServe keeps its pid file and unpacked archives in the temp dir: one per instance.
    env.update({"TMPDIR": tmp, "TEMP": tmp, "TS_DECODE_INPUT_REQUEST": "false",
                "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = f"{venv_bin}:{env.get('PATH', '')}:/usr/sbin"
    return env


def torchserve_command(settings: dict[str, str], config_dir: Path) -> list[str]:
    # The launcher as a module of this interpreter, not the `torchserve` console script: the
    # script's first line names the interpreter's path, which breaks when the environment was
    # moved or lies where this user cannot read it.
    return [
        sys.executable, "-m", "ts.model_server",
        "--start", "--foreground", "--ncs",
        "--ts-config", str(config_dir / "config.properties"),
        "--model-store", settings["MODEL_STORE"],
        "--log-config", str(config_dir / "log4j2.xml"),
    ]


def nginx_command(settings: dict[str, str], config_dir: Path) -> list[str]:
    binary = next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), "nginx")
    return [binary, "-p", str(Path(settings["RUN_DIR"]) / "nginx"), "-c", str(config_dir / "nginx.conf"),
            "-e", "stderr"]


def spawn(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """A child in its own process group (so TorchServe's workers can be signalled together)."""
    return subprocess.Popen(command, env=env, cwd=str(cwd), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", start_new_session=True)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def reap_children() -> None:
    """Collect exited children (ours, and orphans adopted when we run as PID 1 in a container):
    a zombie still counts as a member of its process group."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def wait_group(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap_children()
        if not group_alive(pgid):
            return True
        time.sleep(0.1)
    return not group_alive(pgid)


def health(port: str, timeout: float = 4.0) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read() or b"{}")
        except json.JSONDecodeError:
            return error.code, {}
    except (urllib.error.URLError, OSError, json.JSONDecodeError) as error:
        return 0, {"error": str(error)}


# ----------------------------------------------------------------------- supervisor
class ArchiveBuildFailed(RuntimeError):
    """python -m scripts.archive.build_mar refused or failed; it printed why."""


class Supervisor:
    """Starts TorchServe and nginx, relays their logs, stops both on a signal or a death."""

    def __init__(self, settings: dict[str, str], relay: LogRelay) -> None:
        self.settings = settings
        self.relay = relay
        self.run_dir = Path(settings["RUN_DIR"])
        self.stopping = threading.Event()
        self.torchserve: subprocess.Popen | None = None
        self.nginx: subprocess.Popen | None = None
        self.grpc_front = None  # scripts/service/grpc_front/server.py while GRPC_PORT is served

    def prepare(self) -> Path:
        """Render the configs into RUN_DIR; build or repack the archive where MODEL_STORE may be
        written; on a read-only store (KServe's /mnt/models) write nothing there: a missing archive
        fails the start, a stale one is served as it is (scripts/service/model_store.py)."""
        config_dir = render_all(self.settings)
        store = Path(self.settings["MODEL_STORE"])
        plan = plan_archive(store, served_archive(self.settings)[0], f"{self.settings['MODEL_NAME']}.mar",
                            store_is_writable(store), archive_is_stale)
        if plan.action == REFUSE:
            raise ArchiveBuildFailed(plan.message)
        if plan.message:
            self.relay.log(plan.level, plan.message, event=plan.event)
        if plan.action == SERVE:
            return config_dir
        command = [sys.executable, "-m", "scripts.archive.build_mar"]
        if plan.action == REPACK:
            command.append("--refresh-handler")
        result = subprocess.run(command, cwd=REPO_ROOT)
        if result.returncode != 0:
            raise ArchiveBuildFailed(f"building {store / (self.settings['MODEL_NAME'] + '.mar')} failed "
                                     f"(exit {result.returncode}): "
                                     "the build's own message is just above")
        return config_dir

    def run(self) -> int:
        # PRECISION=int8 on an archive without an int8 model: one line, before anything starts or is built.
        if refusal := int8_refusal(self.settings):
            self.relay.log("CRITICAL", refusal, event="int8_model_missing")
            return 2
        # GET /health, /live and the v2 metadata routes: answered from the management API, never
        # through TorchServe's job queue (scripts/service/readiness.py); its port goes into nginx's config.
        # Started first, so the free ports chosen for TorchServe avoid the one it holds.
        tarpit = ShedTarpit(int(self.settings["MAX_INFLIGHT"]), int(self.settings["SHED_HOLD_MS"]) / 1000)
        self.readiness = ReadinessServer(self.settings["MODEL_NAME"], Path(self.settings["MODEL_STORE"]),
                                         tarpit=tarpit).start()
        self.settings["READINESS_PORT"] = str(self.readiness.port)
        try:
            self.settings = resolve_ports(self.settings)
            if self.settings.get("GRPC_PORT"):  # bound before nginx's config is rendered (it routes the front)
                from scripts.service.grpc_front.server import start_grpc_front  # grpc is imported only when served

                self.grpc_front = start_grpc_front(self.settings, self.readiness, self.relay)
        except PortInUse as error:
            self.relay.log("CRITICAL", str(error), event="port_in_use")
            return 2
        write_ports(self.run_dir, self.settings)
        try:
            config_dir = self.prepare()
        except ArchiveBuildFailed as error:
            self.relay.log("CRITICAL", str(error), event="archive_build_failed")
            return 1
        env = child_environment(self.settings)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        started = time.monotonic()
        key_file(self.run_dir).unlink(missing_ok=True)  # a stale file from the last start must not be read
        self.torchserve = spawn(torchserve_command(self.settings, config_dir), env, self.run_dir)
        (self.run_dir / TORCHSERVE_PGID).write_text(str(self.torchserve.pid))
        self.relay.follow("torchserve", self.torchserve.stdout)
        # nginx needs TorchServe's API keys, issued anew by each TorchServe start.
        try:
            keys = wait_for_keys(self.run_dir, lambda: self.torchserve.poll() is None, KEYS_TIMEOUT_S)
        except RuntimeError as error:
            self.relay.log("CRITICAL", str(error), event="no_api_keys")
            self.stopping.set()
            self.shutdown()
            return 1
        self.readiness.connect(int(self.settings["TS_MANAGEMENT_PORT"]), keys.management)
        config_dir = render_all(self.settings, keys)
        self.nginx = spawn(nginx_command(self.settings, config_dir), env, self.run_dir)
        self.relay.follow("nginx", self.nginx.stdout)
        self.relay.log("INFO", "service starting", event="starting", port=self.settings["PORT"],
                       torchserve_pid=self.torchserve.pid, nginx_pid=self.nginx.pid)
        threading.Thread(target=self._announce_ready, args=(started,), daemon=True).start()
        exit_code = 0
        while not self.stopping.is_set():
            for name, process in (("torchserve", self.torchserve), ("nginx", self.nginx)):
                if process.poll() is not None:
                    self.relay.log("CRITICAL", f"{name} exited unexpectedly (code {process.returncode}); "
                                   "stopping the service", event="child_died", child=name)
                    exit_code = 1
                    self.stopping.set()
                    break
            if self.grpc_front and not self.grpc_front.alive() and not self.stopping.is_set():
                self.relay.log("CRITICAL", "the gRPC front stopped unexpectedly; stopping the service",
                               event="child_died", child="grpc_front")
                exit_code = 1
                self.stopping.set()
            self.stopping.wait(0.5)
        self.shutdown()
        return exit_code

    def _on_signal(self, signum: int, _frame) -> None:
        if not self.stopping.is_set():
            self.relay.log("INFO", f"received {signal.Signals(signum).name}: draining and stopping",
                           event="stopping")
        self.stopping.set()

    def _announce_ready(self, started: float) -> None:
        while not self.stopping.is_set():
            status, _ = health(self.settings["PORT"], timeout=3)
            if status == 200:
                self.relay.log("INFO", "service ready", event="ready",
                               startup_s=round(time.monotonic() - started, 2),
                               url=f"http://{self.settings['BIND_ADDRESS']}:{self.settings['PORT']}")
                return
            time.sleep(0.5)

    def shutdown(self) -> None:
        """nginx and the gRPC front (each finishes its in-flight requests, accepts no new ones), then TorchServe."""
        grace = int(self.settings["REQUEST_TIMEOUT"]) + 5
        grpc_draining = None
        if self.grpc_front:  # at once with nginx: its calls in flight finish through nginx's own drain
            grpc_draining = threading.Thread(target=self.grpc_front.stop, args=(grace,), daemon=True)
            grpc_draining.start()
        if self.nginx and self.nginx.poll() is None:
            signal_group(self.nginx.pid, signal.SIGQUIT)  # graceful: drain open requests
            if not wait_group(self.nginx.pid, grace):
                signal_group(self.nginx.pid, signal.SIGKILL)
        if grpc_draining:
            grpc_draining.join(grace)
        if self.torchserve:
            signal_group(self.torchserve.pid, signal.SIGTERM)
            if not wait_group(self.torchserve.pid, STOP_GRACE_S):
                self.relay.log("WARNING", "TorchServe did not stop in time: killing it", event="kill")
                signal_group(self.torchserve.pid, signal.SIGKILL)
                wait_group(self.torchserve.pid, 5)
        for process in (self.nginx, self.torchserve):
            if process:
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        (self.run_dir / TORCHSERVE_PGID).unlink(missing_ok=True)
        self.relay.log("INFO", "service stopped", event="stopped")


# --------------------------------------------------------------------------- commands
def read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def foreground(settings: dict[str, str]) -> int:
    relay = LogRelay(settings["LOG_FORMAT"])
    run_dir = Path(settings["RUN_DIR"])
    run_dir.mkdir(parents=True, exist_ok=True)
    pid_file = run_dir / SUPERVISOR_PID
    other = read_pid(pid_file)
    if other and other != os.getpid():
        relay.log("ERROR", f"already running (pid {other}); stop it with scripts/serve.sh --stop")
        return 1
    pid_file.write_text(str(os.getpid()))
    try:
        return Supervisor(settings, relay).run()
    finally:
        if read_pid(pid_file) == os.getpid():
            pid_file.unlink(missing_ok=True)


def detach(settings: dict[str, str]) -> int:
    run_dir = Path(settings["RUN_DIR"])
    run_dir.mkdir(parents=True, exist_ok=True)
    if read_pid(run_dir / SUPERVISOR_PID):
        print(f"already running; see scripts/serve.sh --status (log: {run_dir / DETACHED_LOG})")
        return 1
    # Said here in one line, before anything starts (the supervisor checks every port again).
    try:
        check_public_ports(settings)
    except PortInUse as error:
        print(error, file=sys.stderr)
        return 2
    if refusal := int8_refusal(settings):  # said here too, in one line (the log's tail would be more)
        print(refusal, file=sys.stderr)
        return 2
    log_path = run_dir / DETACHED_LOG
    with log_path.open("ab") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "scripts.service.supervisor"], cwd=REPO_ROOT,
                                   stdin=subprocess.DEVNULL,
                                   stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    started = time.monotonic()
    deadline = started + int(settings["STARTUP_TIMEOUT"])
    status, body = 0, {}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            print(f"the service exited during start-up (code {process.returncode}). Last log lines:")
            print(_tail(log_path))
            return 1
        status, body = health(settings["PORT"], timeout=3)
        if status == 200:
            print(f"ready in {time.monotonic() - started:.1f} s: http://127.0.0.1:{settings['PORT']} "
                  f"(pid {process.pid}, log {log_path})")
            if body.get("pretrained") is False:
                print("WARNING: serving RANDOM weights (offline build); see docs/own-model.md 'Real weights'.")
            return 0
        time.sleep(0.5)
    print(f"/health was not 200 within {settings['STARTUP_TIMEOUT']} s (last: {status} {body}). "
          f"Stopping. Last log lines:")
    print(_tail(log_path))
    stop(settings)
    return 1


def stop(settings: dict[str, str]) -> int:
    run_dir = Path(settings["RUN_DIR"])
    pid = read_pid(run_dir / SUPERVISOR_PID)
    if pid is None:
        # The supervisor may have been killed hard: clean up a TorchServe left behind.
        pgid = read_pid(run_dir / TORCHSERVE_PGID)
        if pgid:
            signal_group(pgid, signal.SIGTERM)
            wait_group(pgid, STOP_GRACE_S) or signal_group(pgid, signal.SIGKILL)
            (run_dir / TORCHSERVE_PGID).unlink(missing_ok=True)
            print("stopped a TorchServe left behind")
            return 0
        print("not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + int(settings["REQUEST_TIMEOUT"]) + STOP_GRACE_S + 15
    while time.monotonic() < deadline:
        if read_pid(run_dir / SUPERVISOR_PID) != pid:
            break
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        print(f"supervisor {pid} did not stop in time: killing it")
        os.kill(pid, signal.SIGKILL)
        return 1
    print("stopped")
    return 0


def status(settings: dict[str, str]) -> int:
    pid = read_pid(Path(settings["RUN_DIR"]) / SUPERVISOR_PID)
    code, body = health(settings["PORT"])
    print(json.dumps({"running": pid is not None, "pid": pid, "port": int(settings["PORT"]),
                      "health_status": code, "health": body}, indent=2))
    if pid is None and code != 200:
        return 3
    return 0 if code == 200 else 1


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--detach", action="store_true", help="run in the background; return when healthy")
    mode.add_argument("--stop", action="store_true", help="stop a detached service")
    mode.add_argument("--status", action="store_true", help="print whether it runs and is healthy")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    if args.stop:
        return stop(settings)
    if args.status:
        return status(settings)
    if args.detach:
        return detach(settings)
    return foreground(settings)


if __name__ == "__main__":
    sys.exit(main())

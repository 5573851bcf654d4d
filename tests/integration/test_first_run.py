"""First run anywhere: the README's serve command where users really run it.

- as the suite's user (root in CI) from a directory only it can enter (mode 0700, like every
  ``mktemp -d`` and ``/root``) whose path has a space;
- a second instance of the same checkout on another PORT, beside the first;
- as an unprivileged user from their own 0700 home, beside the root instance (when the suite
  runs as root);
- a PORT that is taken: one clear line, nothing started.

Every instance leaves TorchServe's internal ports at their default (``auto``) and RUN_DIR at
its default (``.run/<PORT>``), as a user who sets nothing would.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import requests

from tests.integration.service import DEFAULT_TOP_K, REPO_ROOT, copy_checkout
from tests.support import free_ports

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INTERNAL = ("TS_INFERENCE_PORT", "TS_MANAGEMENT_PORT", "TS_METRICS_PORT", "TS_GRPC_INFERENCE_PORT",
            "TS_GRPC_MANAGEMENT_PORT")
TEST_USER = "resnet50-firstrun"
TO_REMOVE: list[Path] = []  # made for the test user outside its home
SAMPLE = (REPO_ROOT / "tests" / "fixtures" / "sample.jpg").read_bytes()


def user_environment(port: int, home: str, venv: Path) -> dict[str, str]:
    """What a user's shell would have: no settings but PORT, the suite's environment, no .env."""
    env = {"HOME": home, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
           "PORT": str(port), "VENV_DIR": str(venv), "STARTUP_TIMEOUT": "300"}
    return env


class Instance:
    """One checkout started with its own scripts/serve.sh, optionally as another user."""

    def __init__(self, checkout: Path, port: int, env: dict[str, str], user: str | None = None) -> None:
        self.checkout, self.port, self.env, self.user = checkout, port, env, user
        self.base = f"http://127.0.0.1:{port}"
        self.run_dir = checkout / ".run" / str(port)  # RUN_DIR's default

    def serve(self, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
        command = [str(self.checkout / "scripts" / "serve.sh"), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", "env", "-i",
                       *(f"{k}={v}" for k, v in self.env.items()), *command]
            env = None
        else:
            env = self.env
        return subprocess.run(command, env=env, cwd="/", capture_output=True, text=True, timeout=timeout)

    def start(self) -> None:
        result = self.serve("--detach")
        assert result.returncode == 0, result.stdout + result.stderr

    def stop(self) -> None:
        self.serve("--stop", timeout=180)

    def ports(self) -> dict[str, int]:
        return json.loads((self.run_dir / "ports.json").read_text())

    def supervisor(self) -> psutil.Process:
        return psutil.Process(int((self.run_dir / "service.pid").read_text()))


def assert_serves_every_public_route(instance: Instance) -> None:
    page = requests.get(instance.base + "/", timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower()
    script = requests.get(instance.base + "/static/app.js", timeout=10)
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("application/javascript")
    contract = requests.get(instance.base + "/openapi.json", timeout=10)
    assert contract.status_code == 200
    assert contract.json() == json.loads((instance.checkout / "config" / "openapi.json").read_text())
    info = requests.get(instance.base + "/info", timeout=10)
    assert info.status_code == 200
    body = json.loads(info.text)  # the SSI include must complete: the whole body is JSON
    assert body["default"][0]["modelName"] == "resnet50" and body["versions"]
    assert requests.get(instance.base + "/health", timeout=10).status_code == 200
    prediction = requests.post(instance.base + "/predict", files={"file": ("s.jpg", SAMPLE)}, timeout=60)
    classes = body["default"][0]["customizedMetadata"]["num_classes"]
    assert prediction.status_code == 200 and len(prediction.json()["predictions"]) == min(DEFAULT_TOP_K, classes)


def assert_owns_its_torchserve(instance: Instance) -> None:
    """Every internal port in ports.json is held by this instance's own processes, and its
    nginx proxies to them (not to another instance's TorchServe)."""
    ports = instance.ports()
    listening = listening_ports(instance)
    assert {ports[name] for name in INTERNAL} <= listening, (ports, listening)
    nginx_conf = (instance.run_dir / "config" / "nginx.conf").read_text()
    assert f"server 127.0.0.1:{ports['TS_INFERENCE_PORT']} " in nginx_conf


LISTENING = """
import json, sys, psutil
tree = psutil.Process(int(sys.argv[1]))
print(json.dumps(sorted({c.laddr.port for p in [tree, *tree.children(recursive=True)]
                         for c in p.net_connections("inet") if c.status == "LISTEN"})))
"""


def listening_ports(instance: Instance) -> set[int]:
    """The ports the instance's supervisor and its children listen on, read by a process of the
    instance's own user: root in a container without CAP_SYS_PTRACE may not read another user's
    sockets (psutil's AccessDenied), while a user may always read its own."""
    pid = str(instance.supervisor().pid)
    if instance.user:
        command = ["runuser", "-u", instance.user, "--", f"{instance.env['VENV_DIR']}/bin/python", "-c", LISTENING, pid]
    else:
        command = [sys.executable, "-c", LISTENING, pid]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"cannot list the ports of {instance.user or 'root'}'s instance: {result.stderr}"
    return set(json.loads(result.stdout))


def nginx_worker_users(instance: Instance) -> set[str]:
    workers = [p for p in instance.supervisor().children(recursive=True)
               if p.name() == "nginx" and "worker" in " ".join(p.cmdline())]
    assert workers, "no nginx worker found under the supervisor"
    return {p.username() for p in workers}


@pytest.fixture(scope="module")
def private_checkout():
    """A copy of the working tree at '<mktemp -d>/first run/resnet50 serve' (the parent is 0700)."""
    private = Path(tempfile.mkdtemp(prefix="first-run-"))
    assert private.stat().st_mode & 0o777 == 0o700
    checkout = copy_checkout(private / "first run" / "resnet50 serve")
    yield checkout
    shutil.rmtree(private, ignore_errors=True)


@pytest.fixture(scope="module")
def first(private_checkout):
    port = free_ports(1)[0]
    instance = Instance(private_checkout, port, {**user_environment(port, os.environ.get("HOME", "/root"),
                                                                     Path(sys.prefix))})
    instance.start()
    yield instance
    instance.stop()


def test_private_directory_with_a_space_serves_every_route(first):
    assert " " in str(first.checkout)
    assert_serves_every_public_route(first)
    assert_owns_its_torchserve(first)
    # nginx's workers run as the user who started the service (nobody could not read this tree).
    assert nginx_worker_users(first) == {pwd.getpwuid(os.geteuid()).pw_name}


def test_second_instance_of_the_same_checkout_beside_the_first(first):
    port = free_ports(1)[0]
    second = Instance(first.checkout, port, {**first.env, "PORT": str(port)})
    second.start()
    try:
        assert_serves_every_public_route(second)
        assert_owns_its_torchserve(second)
        assert second.run_dir != first.run_dir
        assert not set(second.ports().values()) & set(first.ports().values())
        assert requests.get(first.base + "/health", timeout=10).status_code == 200  # the first is untouched
    finally:
        second.stop()
    assert requests.get(first.base + "/health", timeout=10).status_code == 200


def test_busy_port_is_one_clear_line_and_starts_nothing(private_checkout):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        instance = Instance(private_checkout, port, user_environment(port, os.environ.get("HOME", "/root"),
                                                                     Path(sys.prefix)))
        started = time.monotonic()
        result = instance.serve("--detach", timeout=120)
        elapsed = time.monotonic() - started
    assert result.returncode == 2
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and f"PORT {port} " in lines[0] and "already in use" in lines[0], lines
    assert "Traceback" not in result.stderr
    assert elapsed < 60
    assert not (instance.run_dir / "service.pid").exists() and not (instance.run_dir / "ports.json").exists()


def test_busy_fixed_internal_port_is_named(private_checkout):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        port = free_ports(1)[0]
        env = {**user_environment(port, os.environ.get("HOME", "/root"), Path(sys.prefix)),
               "TS_MANAGEMENT_PORT": str(busy)}
        instance = Instance(private_checkout, port, env)
        result = instance.serve("--detach", timeout=200)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"TS_MANAGEMENT_PORT={busy} is already in use" in output
    assert "Traceback" not in output
    with pytest.raises(requests.ConnectionError):
        requests.get(instance.base + "/health", timeout=5)


# ------------------------------------------------------------------ an unprivileged user
def run_as(user: str, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user, "--", *command], capture_output=True, text=True, timeout=120)


def user_interpreter(user: str) -> str:
    """The suite's own interpreter, or one of the same version the user can run: the user's
    environment reads the suite's installed packages, which are built for that version.
    (A pyenv or other build under /root is the suite's but not the user's to run.)"""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    system = "/usr/local/bin:/usr/bin:/bin"
    candidates = [getattr(sys, "_base_executable", ""), os.path.realpath(getattr(sys, "_base_executable", "")),
                  shutil.which(f"python{version}", path=system), shutil.which("python3", path=system)]
    tried = []
    for candidate in filter(None, dict.fromkeys(candidates)):
        check = run_as(user, candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])")
        tried.append(f"{candidate}: {(check.stdout or check.stderr).strip()[:80]}")
        if check.returncode == 0 and check.stdout.strip() == version:
            return candidate
    pytest.fail(f"no Python {version} (the suite's) that {user} can run: " + "; ".join(tried))


def same_filesystem_directory(of: Path, user: str) -> Path:
    """A new directory the user can read, on the filesystem of ``of`` (hard links cannot cross
    filesystems) and outside the user's home (it is chown'ed to the user, which would change the
    links' owner too): the system's temp dir, /var/tmp, or the top of that filesystem."""
    device = of.stat().st_dev
    mount_point = of
    while mount_point != mount_point.parent and mount_point.parent.stat().st_dev == device:
        mount_point = mount_point.parent
    for candidate in (Path(tempfile.gettempdir()), Path("/var/tmp"), mount_point):
        try:
            if candidate.stat().st_dev != device:
                continue
        except OSError:
            continue
        made = Path(tempfile.mkdtemp(prefix="first-run-packages-", dir=candidate))
        made.chmod(0o755)
        if run_as(user, "test", "-r", str(made)).returncode == 0:
            return made
        shutil.rmtree(made, ignore_errors=True)
    pytest.fail(f"no directory {user} can read on the filesystem of {of} (tried the temp dir, /var/tmp, {mount_point})")


def shared_environment(user: str, home: Path) -> Path:
    """A virtual environment of the user's own whose packages are the suite's.

    A user's first run installs the same pinned packages with pip (minutes, several GB);
    this test is about where the service runs, so the user's environment reads the suite's
    installed packages through a .pth file instead. When the suite's packages lie where the
    user cannot read them (a clone under /root or in a 0700 mktemp -d), a hard-linked copy (no
    extra space) on the same filesystem is read.
    """
    python = user_interpreter(user)
    venv = home / "venv"
    created = run_as(user, python, "-m", "venv", "--without-pip", str(venv))
    assert created.returncode == 0, created.stderr
    packages = Path(sysconfig.get_paths()["purelib"])
    if run_as(user, "test", "-r", str(packages / "torch" / "__init__.py")).returncode != 0:
        # Removed at teardown, or the links would keep a deleted clone's 6 GB alive.
        readable = same_filesystem_directory(packages, user)
        TO_REMOVE.append(readable)
        copied = subprocess.run(["cp", "-al", str(packages), str(readable / "site-packages")],
                                capture_output=True, text=True)
        assert copied.returncode == 0, f"cannot share the suite's packages with {user}: {copied.stderr.strip()}"
        packages = readable / "site-packages"
    version = run_as(user, str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    site = Path(version.stdout.strip())
    (site / "suite-packages.pth").write_text(f"{packages}\n")
    shutil.copy(Path(sys.prefix) / ".requirements-stamp", venv / ".requirements-stamp")
    subprocess.run(["chown", "-R", f"{user}:", str(venv)], check=True)
    check = run_as(user, str(venv / "bin" / "python"), "-c", "import torch, torchvision, ts")
    assert check.returncode == 0, check.stderr
    return venv


@pytest.fixture(scope="module")
def unprivileged_user():
    if os.geteuid() != 0:
        pytest.skip("the suite does not run as root, so it cannot start the service as another user "
                    "(it already runs as an unprivileged one)")
    # As root this check must run: a missing tool fails it, never skips it silently.
    missing = [tool for tool in ("runuser", "useradd", "userdel", "cp") if not shutil.which(tool)]
    assert not missing, f"cannot set up the unprivileged user: {missing} not found"
    created = False
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", TEST_USER], check=True)
        created = True
    home = Path(pwd.getpwnam(TEST_USER).pw_dir)
    home.chmod(0o700)  # as Debian's and Ubuntu's recent useradd make it
    yield TEST_USER, home
    subprocess.run(["pkill", "-u", TEST_USER], capture_output=True)
    for made in ("my models", "venv"):
        shutil.rmtree(home / made, ignore_errors=True)
    while TO_REMOVE:
        shutil.rmtree(TO_REMOVE.pop(), ignore_errors=True)
    if created:
        subprocess.run(["userdel", "--remove", TEST_USER], capture_output=True)


def test_unprivileged_user_from_a_private_home_beside_the_root_instance(first, unprivileged_user):
    user, home = unprivileged_user
    checkout = home / "my models" / "resnet50 serve"
    for leftover in ("my models", "venv"):  # from an earlier run that kept the user
        shutil.rmtree(home / leftover, ignore_errors=True)
    copy_checkout(checkout)
    venv = shared_environment(user, home)
    subprocess.run(["chown", "-R", f"{user}:", str(home)], check=True)
    port = free_ports(1)[0]
    instance = Instance(checkout, port, user_environment(port, str(home), venv), user=user)
    instance.start()
    try:
        assert_serves_every_public_route(instance)
        assert_owns_its_torchserve(instance)
        assert nginx_worker_users(instance) == {user}
        assert instance.supervisor().username() == user
        assert not set(instance.ports().values()) & set(first.ports().values())
        assert_serves_every_public_route(first)  # the root instance still answers for itself
    finally:
        instance.stop()

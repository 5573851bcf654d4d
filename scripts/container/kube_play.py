"""Run the Kubernetes Deployment's pod with `podman kube play`, check what really applied, report.

    python -m scripts.container.kube_play [--image localhost/resnet50-serve:smoke] [--report FILE]

The image is the one scripts/container/container_smoke.sh builds. The Pod given to podman is the
Deployment's pod template (deploy/kubernetes/deployment.yaml) unchanged except for three things:
the image is the local tag, imagePullPolicy is Never, and every container port gets
hostPort=<free port> + hostIP=127.0.0.1. The manifest rightly has no hostPort, and the pod's
bridge address is not loopback, so this is the only way to reach it from here.

Checks from outside, once /health answers 200 on the loopback port: /health, /live, /info,
POST /predict of a JPEG, the v2 readiness routes. Checks from inside: whatever the manifest's
securityContext sets (the uid every process runs as, non-root, read-only root filesystem,
capabilities, no_new_privs, seccomp) plus its env and resource limits. The livenessProbe is a
check too: podman 4.3 makes it the container's healthcheck (httpGet -> `curl -f` inside the
container), and one `podman healthcheck run` of it must pass (podman runs nothing on its own
without systemd). The other probes are findings: podman 4.3 applies neither. Then the pod is stopped as the kubelet would stop it (SIGTERM, the manifest's grace
period), taken down with `podman kube down`, and nothing may be left: pod, containers, the
emptyDir volumes, the kube network and pause image if this run created them. JSON report like the smoke test's
(default test-artifacts/kube_play.json, or KUBE_PLAY_REPORT); exit 0 when every check passed.
The pure parts (the Pod, the comparisons) are in scripts/container/kube_pod.py.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import yaml

from scripts import REPO_ROOT
from scripts.container.podman_calls import free_port, http, podman, write_report
from scripts.container.kube_pod import (
    DEPLOYMENT,
    LOOPBACK,
    container_ports,
    env_check,
    expected_security,
    grace_period_finding,
    k8s_file_message,
    liveness_check,
    load_deployment,
    parse_proc_status,
    pod_from_deployment,
    probe_findings,
    resource_check,
    security_checks,
    service_events,
    startup_budget_s,
)

DEFAULT_IMAGE = "localhost/resnet50-serve:smoke"
DEFAULT_REPORT = REPO_ROOT / "test-artifacts" / "kube_play.json"
# podman kube play puts pods without a --network on this bridge and creates it when missing.
KUBE_NETWORK = "podman-default-kube-network"
# ... and builds this pod-infra image (catatonit) when none is there: left behind, tagged, after kube down.
PAUSE_IMAGE = "localhost/podman-pause"
SERVICE_MODEL_NAME = "resnet50"  # the image's MODEL_NAME default, when the manifest sets none

# uid, capability sets, no_new_privs and seccomp mode of every process but this probe itself.
LIST_PROCESSES = """
import json, os
rows = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    if int(pid) == os.getpid():
        continue
    try:
        status = open(f"/proc/{pid}/status").read()
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ").decode(errors="replace")
    except OSError:
        continue
    rows.append({"pid": int(pid), "cmd": cmd.strip()[:100], "status": status})
print(json.dumps(rows))
"""


# --------------------------------------------------------------------------------- the real run


def make_jpeg() -> bytes:
    from PIL import Image  # only the real run needs Pillow

    gradient = Image.linear_gradient("L")
    image = Image.merge("RGB", (gradient, Image.radial_gradient("L"), gradient.rotate(90))).resize((320, 240))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_containers_conf(directory: Path) -> Path:
    """The host limits container_smoke.sh works around, the same way: Debian's crun refuses hybrid
    cgroups (so runc), and root cannot raise rlimits past the hard limit (so ulimits at or below
    it). Written to our own temp dir; /etc is not touched."""
    def capped(limit: int, cap: int) -> int:
        return cap if limit == resource.RLIM_INFINITY or limit > cap else limit

    nofile = capped(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 65536)
    nproc = capped(resource.getrlimit(resource.RLIMIT_NPROC)[1], 8192)
    lines = ["[engine]"]
    if shutil.which("runc"):
        lines.append('runtime = "runc"')
    lines += ["[containers]", f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]']
    path = directory / "containers.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


class KubePlay:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="resnet50-kube-play-"))
        self.pod, self.host_ports, source = self.make_pod()
        self.pod_name = self.pod["metadata"]["name"]
        self.container = self.pod["spec"]["containers"][0]
        self.container_name = f"{self.pod_name}-{self.container['name']}"  # podman's naming for kube pods
        self.port = self.host_ports[self.container["ports"][0]["containerPort"]]
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        self.pod_file = self.work / "pod.yaml"
        self.played = False  # a pod of ours may exist: cleanup must take it down
        self.tried_play = False
        self.network_existed = True
        self.pause_images_before: set[str] | None = None
        # The container's log goes to a file of ours: `kube down` removes the container and would
        # take the log of its stop with it.
        self.log_path = self.work / "container.log"
        self.checks: dict[str, dict] = {}
        self.timings: dict[str, float | None] = {}
        self.report: dict = {
            "image": args.image, **source, "pod": self.pod_name,
            "host_ports": {str(k): v for k, v in self.host_ports.items()}, "checks": self.checks,
            "timings": self.timings, "host": {"cpus": os.cpu_count(), "load_avg_1m_at_start": os.getloadavg()[0]}}

    def make_pod(self) -> tuple[dict, dict[int, int], dict]:
        """(the Pod to play, containerPort -> free loopback port, where it came from, for the report)."""
        deployment = load_deployment(self.args.deployment)
        host_ports = {port: free_port() for port in container_ports(deployment)}
        return (pod_from_deployment(deployment, self.args.image, host_ports), host_ports,
                {"deployment": str(self.args.deployment)})

    def check(self, name: str, ok: bool, **detail) -> bool:
        self.checks[name] = {"ok": bool(ok), **detail}
        print(f"  {'ok  ' if ok else 'FAIL'} {name} {json.dumps(detail, default=str)[:300]}", flush=True)
        return bool(ok)

    # ------------------------------------------------------------------ before
    def preflight(self) -> None:
        version = podman("version", "--format", "{{.Client.Version}}").stdout.decode().strip()
        self.report["podman_version"] = version
        if podman("image", "exists", self.args.image, check=False).returncode != 0:
            raise RuntimeError(f"image {self.args.image} not found: build it with scripts/container/container_smoke.sh")
        if podman("pod", "exists", self.pod_name, check=False).returncode == 0:
            raise RuntimeError(f"a pod named {self.pod_name} already exists; remove it (podman kube down) first")
        # podman 4.3 makes each emptyDir a volume named after it: an existing volume of that name
        # would be reused (state from elsewhere in an "empty" dir) and then removed with the pod.
        for volume in self.pod["spec"].get("volumes", []):
            if "emptyDir" in volume and podman("volume", "exists", volume["name"], check=False).returncode == 0:
                raise RuntimeError(f"a podman volume named {volume['name']!r} already exists; "
                                   "it would stand in for the manifest's emptyDir")
        self.network_existed = podman("network", "exists", KUBE_NETWORK, check=False).returncode == 0
        self.pause_images_before = set(self.pause_images())
        self.pod_file.write_text(yaml.safe_dump(self.pod, sort_keys=False))
        self.report["pod_yaml"] = self.pod

    # ------------------------------------------------------------------ play and wait
    def play(self) -> float:
        started = time.monotonic()
        self.tried_play = self.played = True
        result = podman("kube", "play", "--log-driver", "k8s-file", "--log-opt", f"path={self.log_path}",
                        str(self.pod_file), timeout=300, check=False)
        self.timings["kube_play_s"] = round(time.monotonic() - started, 2)
        # Without systemd, podman cannot schedule healthchecks; it says so on stderr and goes on.
        self.report["kube_play_stderr"] = [line for line in result.stderr.decode(errors="replace").splitlines()
                                           if line.strip()][-10:]
        if result.returncode != 0:
            raise RuntimeError(f"podman kube play exited {result.returncode}: {self.report['kube_play_stderr']}")
        return started

    def state(self, name: str) -> str:
        result = podman("inspect", "--format", "{{.State.Status}}", name, check=False)
        return result.stdout.decode().strip() or "missing"

    def wait_ready(self, started: float) -> bool:
        """Poll /health on the loopback port within the manifest's own startup budget."""
        budget = startup_budget_s(self.container)
        while time.monotonic() - started < budget:
            if http("GET", f"{self.base_url}/health", timeout=3)[0] == 200:
                self.timings["time_to_ready_s"] = round(time.monotonic() - started, 2)
                return self.check("ready_within_startup_budget", True, after_s=self.timings["time_to_ready_s"],
                                  budget_s=budget)
            if self.state(self.container_name) not in ("running", "created", "configured"):
                break
            time.sleep(0.25)
        return self.check("ready_within_startup_budget", False, budget_s=budget,
                          state=self.state(self.container_name), log_tail=self.log_tail(20))

    def log_tail(self, lines: int) -> list[str]:
        if not self.log_path.exists():
            return []
        return [k8s_file_message(line) for line in self.log_path.read_text(errors="replace").splitlines()[-lines:]]

    # ------------------------------------------------------------------ from outside
    def check_api(self, model_name: str) -> None:
        status, body = http("GET", f"{self.base_url}/health")
        self.check("health_200", status == 200 and (body or {}).get("status") == "healthy", status=status)
        status, body = http("GET", f"{self.base_url}/live")
        self.check("live_200", status == 200, status=status, body=body)
        status, body = http("GET", f"{self.base_url}/info")
        self.check("info_200", status == 200 and body is not None, status=status)
        status, body = http("POST", f"{self.base_url}/predict", make_jpeg(), "image/jpeg")
        predictions = (body or {}).get("predictions") or []
        self.check("predict_jpeg_200", status == 200 and bool(predictions)
                   and all({"class_id", "label", "probability"} <= set(p) for p in predictions),
                   status=status, predictions=len(predictions),
                   top1=predictions[0].get("label") if predictions else None)
        for name, route in (("v2_health_ready_200", "/v2/health/ready"),
                            ("v2_model_ready_200", f"/v2/models/{model_name}/ready")):
            status, _ = http("GET", f"{self.base_url}{route}")
            self.check(name, status == 200, route=route, status=status)
        metrics_port = next((p["containerPort"] for p in self.container["ports"] if p.get("name") == "metrics"), None)
        if metrics_port is not None:
            # Through podman's port mapping a request arrives from the bridge's gateway, a private
            # address the manifest's METRICS_ALLOW admits, as one through an Ingress would: the
            # metrics port answers it, the public port must not.
            status, _ = http("GET", f"http://{LOOPBACK}:{self.host_ports[metrics_port]}/metrics")
            public, _ = http("GET", f"{self.base_url}/metrics")
            self.check("metrics_on_metrics_port_only", status == 200 and public == 404,
                       metrics_port_status=status, public_port_status=public)

    # ------------------------------------------------------------------ from inside
    def check_inside(self, inspect: dict) -> None:
        self.report["inspect"] = {
            "user": inspect["Config"].get("User"), "healthcheck": inspect["Config"].get("Healthcheck"),
            "startup_healthcheck": inspect["Config"].get("StartupHealthCheck"),
            "healthcheck_on_failure": inspect["Config"].get("HealthcheckOnFailureAction"),
            "stop_timeout_s": inspect["Config"].get("StopTimeout"),
            "restart_policy": inspect["HostConfig"].get("RestartPolicy"),
            "readonly_rootfs": inspect["HostConfig"].get("ReadonlyRootfs"),
            "cap_drop": inspect["HostConfig"].get("CapDrop"), "security_opt": inspect["HostConfig"].get("SecurityOpt"),
            "mounts": [{key: mount.get(key) for key in ("Type", "Name", "Source", "Destination", "Options")}
                       for mount in inspect.get("Mounts", [])],
            "ports": inspect.get("NetworkSettings", {}).get("Ports")}
        probe = podman("exec", self.container_name, "python", "-c", LIST_PROCESSES, check=False)
        try:
            processes = json.loads(probe.stdout)
        except ValueError:
            processes = []
        self.report["processes"] = [{"pid": row["pid"], "cmd": row["cmd"], **parse_proc_status(row["status"])}
                                    for row in processes]
        # The write must fail with EROFS; the path is one nobody else uses, and removed if it did not.
        marker = "/.kube-play-write-probe"
        write = podman("exec", self.container_name, "sh", "-c", f"touch {marker} && rm -f {marker}", check=False)
        write_error = write.stderr.decode(errors="replace").strip() if write.returncode else ""
        expected = expected_security(self.pod["spec"], self.container)
        self.report["expected_security"] = expected
        for name, result in security_checks(expected, inspect, processes, write_error).items():
            self.check(name, result.pop("ok"), **result)
        env = env_check(self.container, inspect)
        self.check("env_as_manifest", env.pop("ok"), **env)
        limits = resource_check(self.container, inspect)
        self.check("resource_limits_as_manifest", limits.pop("ok"), **limits)
        bindings = [binding for entries in (inspect.get("NetworkSettings", {}).get("Ports") or {}).values()
                    for binding in entries or []]
        self.check("ports_on_loopback_only", bool(bindings) and all(b.get("HostIp") == LOOPBACK for b in bindings),
                   bindings=bindings)
        self.report["empty_dirs"] = self.empty_dir_findings(inspect)

    def empty_dir_findings(self, inspect: dict) -> list[dict]:
        """What each emptyDir became (podman 4.3: a volume on the host disk) and its filesystem inside."""
        findings = []
        for volume in self.pod["spec"].get("volumes", []):
            if "emptyDir" not in volume:
                continue
            mounts = [m for m in self.container.get("volumeMounts", []) if m["name"] == volume["name"]]
            for mount in mounts:
                podman_mount = next((m for m in inspect.get("Mounts", [])
                                     if m.get("Destination") == mount["mountPath"]), {})
                fs = podman("exec", self.container_name, "sh", "-c",
                            f"awk '$2 == \"{mount['mountPath']}\" {{print $3}}' /proc/mounts", check=False)
                findings.append({"name": volume["name"], "mount_path": mount["mountPath"],
                                 "manifest": volume["emptyDir"], "podman_type": podman_mount.get("Type"),
                                 "podman_name": podman_mount.get("Name"), "podman_source": podman_mount.get("Source"),
                                 "filesystem_inside": fs.stdout.decode().strip() or None})
        return findings

    # ------------------------------------------------------------------ probes
    def probes(self, inspect: dict) -> None:
        findings = probe_findings(self.container, inspect)
        if any(f["applied_as"] == ["healthcheck"] for f in findings.values()):
            # Run it once now, as podman's systemd timer would every interval on a systemd host.
            run = podman("healthcheck", "run", self.container_name, timeout=60, check=False)
            health = json.loads(podman("inspect", "--format", "{{json .State.Health}}", self.container_name,
                                       check=False).stdout or b"{}")
            last = (health.get("Log") or [{}])[-1]
            for finding in findings.values():
                if finding["applied_as"] == ["healthcheck"]:
                    finding["run_once"] = {"exit_code": run.returncode, "passed": run.returncode == 0,
                                           "health_status": health.get("Status"),
                                           "output": (last.get("Output") or "").strip()[-300:]}
        liveness = liveness_check(findings)
        if liveness is not None:
            self.check("liveness_healthcheck_passes", liveness.pop("ok"), **liveness)
        if self.args.liveness_consequence:
            self.report["liveness_consequence"] = self.liveness_consequence(findings)
        self.report["probes"] = findings
        self.report["grace_period"] = grace_period_finding(self.pod["spec"], inspect)
        for kind, finding in findings.items():
            run = finding.get("run_once")
            said = f", one run: {'passed' if run['passed'] else 'FAILED: ' + run['output']}" if run else ""
            print(f"  probe {kind}: {'applied as ' + '+'.join(finding['applied_as']) if finding['applied'] else 'not applied'}"
                  f"{said}", flush=True)

    def liveness_consequence(self, findings: dict) -> dict:
        """What a failing healthcheck does to the pod: run it as many times as its retries allow
        (what podman's timer would do in retries x interval), then look at container and pod."""
        liveness = findings.get("livenessProbe", {})
        if not liveness.get("run_once") or liveness["run_once"]["passed"]:
            return {"ran": False, "why": "the liveness healthcheck passes (or podman did not apply it)"}
        runs = []
        for _ in range(int(liveness.get("podman_retries") or 3)):
            result = podman("healthcheck", "run", self.container_name, timeout=120, check=False)
            runs.append({"exit_code": result.returncode,
                         "said": (result.stdout + result.stderr).decode(errors="replace").strip()[-400:]})
            if result.returncode not in (0, 1):
                break
        time.sleep(3)
        pod = json.loads(podman("pod", "inspect", self.pod_name, check=False).stdout or b"{}")
        containers = {c.get("Name"): c.get("State") for c in pod.get("Containers", [])}
        restarts = podman("inspect", "--format", "{{.RestartCount}}", self.container_name, check=False)
        return {"ran": True, "healthcheck_runs": runs, "pod_state": pod.get("State"), "containers": containers,
                "restart_count": restarts.stdout.decode().strip(),
                "serving_after": http("GET", f"{self.base_url}/health", timeout=3)[0] == 200}

    # ------------------------------------------------------------------ after
    def down(self) -> None:
        """Stop as the kubelet would (SIGTERM, then the manifest's grace period), then kube down.

        podman 4.3's `kube down` alone stops the pod with a 0 s timeout: SIGKILL right after
        SIGTERM, no drain (measured: exit 137). --plain-down shows that instead."""
        grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        stopping_since = time.time()
        stop = None
        if not self.args.plain_down:
            began = time.monotonic()
            stop = podman("pod", "stop", "-t", str(grace), self.pod_name, timeout=grace + 60, check=False)
            self.timings["pod_stop_s"] = round(time.monotonic() - began, 2)
        began = time.monotonic()
        result = podman("kube", "down", str(self.pod_file), timeout=grace + 60, check=False)
        self.timings["kube_down_s"] = round(time.monotonic() - began, 2)
        self.played = result.returncode != 0  # failed: cleanup tries once more
        lines = self.log_tail(100000)
        events = [entry.get("event") for entry in service_events(lines)]
        ready = next((e for e in service_events(lines) if e.get("event") == "ready"), {})
        self.timings["service_reported_startup_s"] = ready.get("startup_s")
        self.report["service_events"] = events
        exit_codes = self.died_exit_codes(stopping_since)
        self.report["stop"] = {"method": "kube down" if stop is None else f"pod stop -t {grace}, then kube down",
                               "exit_codes": exit_codes, "service_logged": [e for e in events if e.startswith("stop")],
                               "kube_down_exit_code": result.returncode}
        if stop is not None and not self.report.get("liveness_consequence", {}).get("ran"):
            self.check("sigterm_stop_within_grace_exit_0",
                       stop.returncode == 0 and exit_codes == [0] and self.timings["pod_stop_s"] < grace
                       and "stopped" in events,
                       exit_codes=exit_codes, stop_s=self.timings["pod_stop_s"], grace_s=grace, events=events[-3:])

    def died_exit_codes(self, since: float) -> list[int]:
        """The service container's exit codes since `since`, from podman's event log (the container
        itself is gone after kube down)."""
        result = podman("events", "--stream=false", "--since", str(int(since) - 1), "--filter",
                        f"container={self.container_name}", "--filter", "event=died",
                        "--format", "{{.ContainerExitCode}}", timeout=30, check=False)
        return [int(code) for code in result.stdout.decode().split() if code.lstrip("-").isdigit()]

    def leftovers(self) -> dict:
        pods = podman("pod", "exists", self.pod_name, check=False).returncode == 0
        containers = podman("ps", "-a", "--filter", f"pod={self.pod_name}", "--format", "{{.Names}}",
                            check=False).stdout.decode().split()
        volumes = [v["name"] for v in self.pod["spec"].get("volumes", []) if "emptyDir" in v
                   and podman("volume", "exists", v["name"], check=False).returncode == 0]
        return {"pod": pods, "containers": containers, "volumes": volumes, "pause_images": self.new_pause_images()}

    def pause_images(self) -> list[str]:
        result = podman("images", "--filter", f"reference={PAUSE_IMAGE}", "--format", "{{.Repository}}:{{.Tag}}",
                        check=False)
        return result.stdout.decode().split()

    def new_pause_images(self) -> list[str]:
        if self.pause_images_before is None:
            return []
        return [ref for ref in self.pause_images() if ref not in self.pause_images_before]

    def cleanup(self) -> None:
        if self.played:
            podman("kube", "down", str(self.pod_file), timeout=180, check=False)
        # Ours, made by this kube play. Neither forced: a network or image someone started using stays.
        if not self.network_existed:
            podman("network", "rm", KUBE_NETWORK, check=False)
        for ref in self.new_pause_images():
            podman("rmi", ref, check=False)
        shutil.rmtree(self.work, ignore_errors=True)

    def run(self) -> int:
        try:
            self.preflight()
            started = self.play()
            if self.wait_ready(started):
                inspect = json.loads(podman("inspect", self.container_name).stdout)[0]
                env = dict(e.split("=", 1) for e in inspect["Config"].get("Env") or [] if "=" in e)
                self.check_api(env.get("MODEL_NAME", SERVICE_MODEL_NAME))
                self.check_inside(inspect)
                self.probes(inspect)
            self.down()
        finally:
            self.cleanup()
            if self.tried_play:  # (a refused preflight left someone else's pod or volume alone)
                left = self.leftovers()
                network_left = (not self.network_existed
                                and podman("network", "exists", KUBE_NETWORK, check=False).returncode == 0)
                self.check("nothing_left_behind", not any(left.values()) and not network_left,
                           **left, network_left=network_left)
        return 0 if all(check["ok"] for check in self.checks.values()) else 1


def summary(report: dict) -> str:
    rows = [f"kube play: {report['result'].upper()}  ({report['image']}, pod {report['pod']}, "
            f"podman {report.get('podman_version', '?')})"]
    for name, check in report["checks"].items():
        rows.append(f"  {'ok  ' if check['ok'] else 'FAIL'} {name}")
    for kind, finding in (report.get("probes") or {}).items():
        run = finding.get("run_once")
        outcome = "" if not run else f"; run once: {'passed' if run['passed'] else 'failed (' + run['output'] + ')'}"
        how = "+".join(finding["applied_as"]) if finding["applied"] else "NOT applied by podman"
        rows.append(f"  probe {kind}: {how}{outcome}")
    grace = report.get("grace_period")
    if grace:
        rows.append(f"  terminationGracePeriodSeconds {grace['manifest_s']}: podman stop timeout "
                    f"{grace['podman_stop_timeout_s']} s")
    stop = report.get("stop")
    if stop:
        rows.append(f"  stop ({stop['method']}): exit codes {stop['exit_codes']}, "
                    f"service logged {stop['service_logged'] or 'nothing'}")
    consequence = report.get("liveness_consequence")
    if consequence and consequence.get("ran"):
        rows.append(f"  after {1 + len(consequence['healthcheck_runs'])} liveness healthcheck runs: pod "
                    f"{consequence['pod_state']}, restarts {consequence['restart_count']}, "
                    f"serving {consequence['serving_after']}")
    rows.append("  timings (s): " + ", ".join(f"{k}={v}" for k, v in report["timings"].items()))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=DEFAULT_IMAGE, help="a local podman image (never pulled)")
    parser.add_argument("--deployment", type=Path, default=DEPLOYMENT)
    parser.add_argument("--report", type=Path, default=Path(os.environ.get("KUBE_PLAY_REPORT", DEFAULT_REPORT)))
    parser.add_argument("--plain-down", action="store_true",
                        help="take the pod down with `podman kube down` alone (podman 4.3: no grace period) "
                             "instead of `podman pod stop -t <terminationGracePeriodSeconds>` first")
    parser.add_argument("--liveness-consequence", action="store_true",
                        help="when the liveness healthcheck fails, run it until podman acts on it and record what "
                             "that does to the pod (replaces the graceful kube down check)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup in `finally`

    play = KubePlay(args)
    conf_dir = None
    if "CONTAINERS_CONF" not in os.environ:
        conf_dir = Path(tempfile.mkdtemp(prefix="resnet50-kube-play-conf-"))
        os.environ["CONTAINERS_CONF"] = str(write_containers_conf(conf_dir))
    code = 1
    try:
        code = play.run()
    except Exception as error:  # noqa: BLE001 - reported, then the run fails
        play.check("kube_play_run_completed", False, error=f"{type(error).__name__}: {error}")
    finally:
        if conf_dir:
            shutil.rmtree(conf_dir, ignore_errors=True)
        report = play.report
        report["result"] = "pass" if code == 0 else "fail"
        write_report(report, args.report, summary(report))
    return code


if __name__ == "__main__":
    sys.exit(main())

"""The Pod that `podman kube play` gets (scripts/container/kube_pod.py), without podman.

It is made from deploy/kubernetes/deployment.yaml and must keep everything the manifest says about
how the container runs; only the image, the pull policy and loopback host ports differ. The
comparisons with `podman inspect` and /proc are fed data shaped like podman 4.3.1's real answers
(recorded in the run of docs/performance.md), once as the manifest wants it and once broken.
"""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
import yaml

from scripts.container import kube_pod
from scripts.container.kube_play import write_containers_conf

IMAGE = "localhost/resnet50-serve:smoke"
KUBERNETES_VERSION = "1.29.0"  # as tests/unit/test_deploy_manifests.py
ALL_CAPS = "000001ffffffffff"
# Every containerPort of the manifest (http, metrics, and any other it declares) on a host port of its own.
HOST_PORTS = {port: 41234 + index
              for index, port in enumerate(kube_pod.container_ports(kube_pod.load_deployment(kube_pod.DEPLOYMENT)))}
KEPT = ("securityContext", "startupProbe", "readinessProbe", "livenessProbe", "env", "resources",
        "volumeMounts", "lifecycle")


@pytest.fixture(scope="module")
def deployment() -> dict:
    return kube_pod.load_deployment(kube_pod.DEPLOYMENT)


@pytest.fixture()
def pod(deployment) -> dict:
    return kube_pod.pod_from_deployment(deployment, IMAGE, HOST_PORTS)


def template_container(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]


# ------------------------------------------------------------------------------------ the Pod


def test_pod_keeps_how_the_container_runs(deployment, pod):
    want, got = template_container(deployment), pod["spec"]["containers"][0]
    for key in KEPT:
        assert key in want, f"the manifest lost {key}: update KEPT"
        assert got[key] == want[key], key
    assert got["name"] == want["name"]


def test_pod_keeps_the_pod_level_spec(deployment, pod):
    template = deployment["spec"]["template"]
    unchanged = {key: value for key, value in template["spec"].items() if key != "containers"}
    assert {key: pod["spec"][key] for key in unchanged} == unchanged
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001
    assert pod["spec"]["volumes"] == template["spec"]["volumes"]
    assert pod["metadata"]["labels"] == template["metadata"]["labels"]
    assert pod["metadata"]["annotations"] == template["metadata"]["annotations"]
    assert pod["metadata"]["name"] == "resnet50-serve-kube-play"
    assert (pod["apiVersion"], pod["kind"]) == ("v1", "Pod")


def test_pod_runs_the_local_image_and_never_pulls(pod):
    container = pod["spec"]["containers"][0]
    assert container["image"] == IMAGE
    assert container["imagePullPolicy"] == "Never"


def test_ports_are_published_on_loopback_only(deployment, pod):
    ports = pod["spec"]["containers"][0]["ports"]
    declared = template_container(deployment)["ports"]
    assert [p["containerPort"] for p in ports] == kube_pod.container_ports(deployment)
    assert kube_pod.container_ports(deployment)[:2] == [5000, 9090]  # http, metrics first
    assert ports == [{**port, "hostPort": HOST_PORTS[port["containerPort"]], "hostIP": "127.0.0.1"}
                     for port in declared]


def test_the_manifest_itself_is_not_changed(deployment):
    before = copy.deepcopy(deployment)
    kube_pod.pod_from_deployment(deployment, IMAGE, HOST_PORTS)
    assert deployment == before
    assert "hostPort" not in template_container(deployment)["ports"][0]


def test_pod_is_a_valid_kubernetes_pod(pod):
    # Through YAML, as podman reads it; strict: an unknown or misplaced field fails.
    kubernetes_validate.validate(yaml.safe_load(yaml.safe_dump(pod)), KUBERNETES_VERSION, strict=True)


def test_every_container_port_needs_a_host_port(deployment):
    with pytest.raises(ValueError, match="resnet50-serve:5000"):
        kube_pod.pod_from_deployment(deployment, IMAGE, {8080: 41234})
    with pytest.raises(ValueError, match="no host port given for resnet50-serve:9090"):
        kube_pod.pod_from_deployment(deployment, IMAGE, {5000: 41234})


def test_only_a_deployment_is_accepted(deployment):
    service = {**deployment, "kind": "Service"}
    with pytest.raises(ValueError, match="expected a Deployment"):
        kube_pod.pod_from_deployment(service, IMAGE, HOST_PORTS)


def test_startup_budget_is_the_startup_probes(deployment):
    assert kube_pod.startup_budget_s(template_container(deployment)) == 10 * 18
    assert kube_pod.startup_budget_s({"name": "x"}) == kube_pod.FALLBACK_READY_S


# ------------------------------------------------------------------------------------ securityContext


def podman_inspect(**overrides) -> dict:
    """Shaped like `podman inspect` of the kube-played container (podman 4.3.1)."""
    inspect = {
        "Config": {"User": "10001", "Env": ["PATH=/opt/venv/bin:/usr/bin", "WORKERS=1", "THREADS_PER_WORKER=2",
                                            "RUN_DIR=/tmp/run", "LOG_FORMAT=json", "METRICS_PORT=9090",
                                            "METRICS_ALLOW=127.0.0.1,::1,10.0.0.0/8,172.16.0.0/12,"
                                            "192.168.0.0/16,fd00::/8"],
                   "Healthcheck": {"Test": ["CMD-SHELL", "curl", "-f", "http://localhost:5000/live", "||", "exit",
                                            "1"], "Interval": 10_000_000_000, "Timeout": 3_000_000_000, "Retries": 6},
                   "HealthcheckOnFailureAction": "restart", "StopTimeout": 10},
        "HostConfig": {"ReadonlyRootfs": True, "CapDrop": ["CAP_CHOWN", "CAP_KILL"], "CapAdd": [],
                       "SecurityOpt": ["no-new-privileges"], "Memory": 2 * 2**30, "MemoryReservation": 1536 * 2**20,
                       "CpuQuota": 200000, "CpuPeriod": 100000},
    }
    for path, value in overrides.items():
        section, key = path.split("__")
        inspect[section][key] = value
    return inspect


def process(pid: int, uid: int = 10001, cap_eff: str = "0000000000000000", cap_bnd: str = "0000000000000000",
            no_new_privs: str = "1", seccomp: str = "2") -> dict:
    status = (f"Name:\tpython\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t999\t999\t999\t999\n"
              f"CapInh:\t0000000000000000\nCapPrm:\t{cap_eff}\nCapEff:\t{cap_eff}\nCapBnd:\t{cap_bnd}\n"
              f"CapAmb:\t0000000000000000\nNoNewPrivs:\t{no_new_privs}\nSeccomp:\t{seccomp}\nSeccomp_filters:\t1\n")
    return {"pid": pid, "cmd": "python scripts/service.py", "status": status}


EROFS = "touch: cannot touch '/.kube-play-write-probe': Read-only file system"


@pytest.fixture()
def expected(pod) -> dict:
    return kube_pod.expected_security(pod["spec"], pod["spec"]["containers"][0])


def test_expected_security_merges_pod_and_container(expected):
    assert expected == {"runAsUser": 10001, "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"},
                        "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]}}


def test_container_fields_override_the_pods():
    spec = {"securityContext": {"runAsUser": 1, "runAsNonRoot": True}}
    container = {"securityContext": {"runAsUser": 2}}
    assert kube_pod.expected_security(spec, container) == {"runAsUser": 2, "runAsNonRoot": True}


def test_security_as_the_manifest_wants_passes(expected):
    checks = kube_pod.security_checks(expected, podman_inspect(), [process(1), process(27)], EROFS)
    assert set(checks) == {"processes_run_as_run_as_user", "run_as_non_root", "read_only_root_filesystem",
                           "capabilities_all_dropped", "no_new_privileges", "seccomp_runtime_default"}
    assert all(check["ok"] for check in checks.values()), checks


@pytest.mark.parametrize("inspect, processes, write_error, failing", [
    (podman_inspect(), [process(1), process(27, uid=0)], EROFS, {"processes_run_as_run_as_user", "run_as_non_root"}),
    (podman_inspect(), [process(1, uid=10002)], EROFS, {"processes_run_as_run_as_user"}),
    (podman_inspect(HostConfig__ReadonlyRootfs=False), [process(1)], "", {"read_only_root_filesystem"}),
    (podman_inspect(), [process(1)], "", {"read_only_root_filesystem"}),  # podman says ro, yet the write worked
    (podman_inspect(), [process(1, cap_bnd=ALL_CAPS)], EROFS, {"capabilities_all_dropped"}),
    (podman_inspect(HostConfig__CapAdd=["CAP_NET_RAW"]), [process(1)], EROFS, {"capabilities_all_dropped"}),
    (podman_inspect(), [process(1), process(8, no_new_privs="0")], EROFS, {"no_new_privileges"}),
    (podman_inspect(), [process(1, seccomp="0")], EROFS, {"seccomp_runtime_default"}),
    (podman_inspect(), [], EROFS, {"processes_run_as_run_as_user", "run_as_non_root", "capabilities_all_dropped",
                                   "no_new_privileges", "seccomp_runtime_default"}),
])
def test_security_checks_catch_what_is_not_applied(expected, inspect, processes, write_error, failing):
    checks = kube_pod.security_checks(expected, inspect, processes, write_error)
    assert {name for name, check in checks.items() if not check["ok"]} == failing


def test_only_fields_the_manifest_sets_are_checked():
    checks = kube_pod.security_checks({"runAsUser": 10001}, podman_inspect(), [process(1)], "")
    assert set(checks) == {"processes_run_as_run_as_user"}


# ------------------------------------------------------------------------------------ env, limits, probes


def test_env_and_limits_as_the_manifest_pass(pod):
    container = pod["spec"]["containers"][0]
    assert kube_pod.env_check(container, podman_inspect())["ok"]
    limits = kube_pod.resource_check(container, podman_inspect())
    assert limits["ok"] and limits["cpu_limit"]["podman_cores"] == 2.0
    assert limits["memory_request"] == {"manifest": "1536Mi", "podman_reservation": 1536 * 2**20}


def test_env_and_limits_differences_fail(pod):
    container = pod["spec"]["containers"][0]
    env = kube_pod.env_check(container, podman_inspect(Config__Env=["WORKERS=4"]))
    assert not env["ok"] and env["different"]["WORKERS"] == "4" and env["different"]["LOG_FORMAT"] is None
    assert not kube_pod.resource_check(container, podman_inspect(HostConfig__Memory=0))["ok"]
    assert not kube_pod.resource_check(container, podman_inspect(HostConfig__CpuQuota=100000))["ok"]


@pytest.mark.parametrize("quantity, value", [("2Gi", 2 * 2**30), ("1536Mi", 1536 * 2**20), ("2", 2),
                                             ("500m", 0.5), ("1.5", 1.5), (2, 2), ("1G", 1e9)])
def test_parse_quantity(quantity, value):
    assert kube_pod.parse_quantity(quantity) == value


@pytest.mark.parametrize("bad", ["", "2 Gi", "two", "2Qi"])
def test_parse_quantity_rejects(bad):
    with pytest.raises(ValueError):
        kube_pod.parse_quantity(bad)


def test_probes_as_podman_4_3_applies_them(pod):
    findings = kube_pod.probe_findings(pod["spec"]["containers"][0], podman_inspect())
    assert {kind: f["applied_as"] for kind, f in findings.items()} == {
        "startupProbe": [], "livenessProbe": ["healthcheck"], "readinessProbe": []}
    liveness = findings["livenessProbe"]
    assert (liveness["podman_interval_s"], liveness["podman_timeout_s"], liveness["podman_retries"]) == (10, 3, 6)
    assert liveness["on_failure"] == "restart"


def test_a_startup_healthcheck_counts_as_the_startup_probe(pod):
    # What a podman that translates startupProbe would show; the readiness probe stays unapplied.
    startup = {"Test": ["CMD-SHELL", "curl -f http://localhost:5000/health || exit 1"], "Interval": 10_000_000_000}
    findings = kube_pod.probe_findings(pod["spec"]["containers"][0],
                                       podman_inspect(Config__StartupHealthCheck=startup))
    assert findings["startupProbe"]["applied_as"] == ["startup_healthcheck"]
    assert not findings["readinessProbe"]["applied"]


def test_no_healthcheck_means_no_probe_applied(pod):
    findings = kube_pod.probe_findings(pod["spec"]["containers"][0], podman_inspect(Config__Healthcheck=None))
    assert not any(f["applied"] for f in findings.values())


def liveness_findings(pod: dict, **run_once) -> dict:
    findings = kube_pod.probe_findings(pod["spec"]["containers"][0], podman_inspect())
    findings["livenessProbe"]["run_once"] = run_once
    return findings


def test_liveness_check_passes_when_the_healthcheck_run_passes(pod):
    check = kube_pod.liveness_check(liveness_findings(pod, exit_code=0, passed=True, health_status="healthy",
                                                      output=""))
    assert check["ok"] and check["applied_as"] == ["healthcheck"] and check["exit_code"] == 0
    assert "http://localhost:5000/live" in check["podman_command"]


@pytest.mark.parametrize("run_once", [
    # podman 4.3.1 with an image without curl (the recorded run before the Dockerfile installed it)
    {"exit_code": 1, "passed": False, "health_status": "unhealthy", "output": "/bin/sh: 1: curl: not found"},
    {"exit_code": 0, "passed": True, "health_status": "starting", "output": ""},
    {},  # never run
])
def test_liveness_check_fails_when_the_healthcheck_does_not_pass(pod, run_once):
    check = kube_pod.liveness_check(liveness_findings(pod, **run_once))
    assert not check["ok"]


def test_liveness_check_fails_when_podman_did_not_apply_the_probe(pod):
    findings = kube_pod.probe_findings(pod["spec"]["containers"][0], podman_inspect(Config__Healthcheck=None))
    check = kube_pod.liveness_check(findings)
    assert not check["ok"] and check["applied_as"] == []


def test_no_liveness_probe_no_liveness_check(pod):
    container = {key: value for key, value in pod["spec"]["containers"][0].items() if key != "livenessProbe"}
    assert kube_pod.liveness_check(kube_pod.probe_findings(container, podman_inspect())) is None


def test_grace_period_compared_with_podmans_stop_timeout(pod):
    assert kube_pod.grace_period_finding(pod["spec"], podman_inspect()) == {
        "manifest_s": 45, "podman_stop_timeout_s": 10, "applied": False}
    assert kube_pod.grace_period_finding(pod["spec"], podman_inspect(Config__StopTimeout=45))["applied"]


# ------------------------------------------------------------------------------------ logs, host config


def test_service_events_from_a_k8s_file_log():
    lines = ['2026-12-01T09:28:05.155042583+00:00 stdout F {"event":"ready","startup_s":9.9}',
             "2026-12-01T09:28:06.000000000+00:00 stderr F not json",
             '2026-12-01T09:28:07.000000000+00:00 stdout F {"level":"INFO","message":"no event"}',
             '2026-12-01T09:28:08.000000000+00:00 stdout F {"event":"stopped"}']
    messages = [kube_pod.k8s_file_message(line) for line in lines]
    assert messages[1] == "not json"
    assert [e["event"] for e in kube_pod.service_events(messages)] == ["ready", "stopped"]
    assert kube_pod.k8s_file_message("plain line") == "plain line"


def test_containers_conf_keeps_ulimits_within_the_hard_limits(tmp_path, monkeypatch):
    import resource

    limits = {resource.RLIMIT_NOFILE: (1024, 20000), resource.RLIMIT_NPROC: (100, resource.RLIM_INFINITY)}
    monkeypatch.setattr(resource, "getrlimit", limits.__getitem__)
    text = write_containers_conf(tmp_path).read_text()
    assert 'default_ulimits = ["nofile=20000:20000", "nproc=8192:8192"]' in text


def test_summary_says_what_podman_did_not_apply():
    from scripts.container.kube_play import summary

    report = {"result": "pass", "image": IMAGE, "pod": "p", "podman_version": "4.3.1", "timings": {"time_to_ready_s": 9},
              "checks": {"health_200": {"ok": True}},
              "probes": {"readinessProbe": {"applied": False, "applied_as": []},
                         "livenessProbe": {"applied": True, "applied_as": ["healthcheck"],
                                           "run_once": {"passed": False, "output": "curl: not found"}}},
              "grace_period": {"manifest_s": 45, "podman_stop_timeout_s": 10},
              "stop": {"method": "kube down", "exit_codes": [137], "service_logged": []}}
    text = summary(report)
    assert "probe readinessProbe: NOT applied by podman" in text
    assert "probe livenessProbe: healthcheck; run once: failed (curl: not found)" in text
    assert "exit codes [137], service logged nothing" in text
    report["probes"]["livenessProbe"]["run_once"] = {"passed": True, "output": ""}
    assert "probe livenessProbe: healthcheck; run once: passed" in summary(report)

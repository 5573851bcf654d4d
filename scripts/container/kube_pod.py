"""The Pod that scripts/container/kube_play.py gives `podman kube play`, and what to expect of it.

Pure functions, no podman: the Deployment's pod template turned into a Pod that publishes its ports
on 127.0.0.1 only, and the comparisons of the manifest with what podman reports (`podman inspect`)
and what the processes in the container show (/proc/PID/status).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import yaml

from scripts import REPO_ROOT

DEPLOYMENT = REPO_ROOT / "deploy" / "kubernetes" / "deployment.yaml"
LOOPBACK = "127.0.0.1"
POD_SUFFIX = "kube-play"
FALLBACK_READY_S = 300  # when the manifest has no startupProbe to take the budget from
STATUS_FIELDS = ("Uid", "Gid", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
SECCOMP_FILTER = "2"  # /proc/PID/status "Seccomp": 0 off, 1 strict, 2 filter (a profile is loaded)
NO_CAPABILITIES = 0


def load_deployment(path: Path = DEPLOYMENT) -> dict:
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    deployments = [doc for doc in docs if doc.get("kind") == "Deployment"]
    if len(deployments) != 1:
        raise ValueError(f"{path}: expected one Deployment, found {len(deployments)}")
    return deployments[0]


def container_ports(deployment: dict) -> list[int]:
    """Every containerPort of the pod template's containers (they share one network namespace)."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return [port["containerPort"] for container in containers for port in container.get("ports", [])]


def pod_from_deployment(deployment: dict, image: str, host_ports: dict[int, int], name: str | None = None) -> dict:
    """The Deployment's pod template as a Pod for `podman kube play`: the local image, never pulled,
    and each containerPort published as hostPort on 127.0.0.1 only (host_ports: containerPort ->
    hostPort). Everything else (securityContext, probes, env, resources, volumes, lifecycle, grace
    period) is kept as the manifest says, so what podman does with it is what gets checked."""
    if deployment.get("kind") != "Deployment":
        raise ValueError(f"expected a Deployment, got {deployment.get('kind')!r}")
    template = copy.deepcopy(deployment["spec"]["template"])
    spec = template["spec"]
    unmapped = []
    for container in spec["containers"]:
        container["image"] = image
        # The image exists only in local storage: a missing one must fail here, not start a pull.
        container["imagePullPolicy"] = "Never"
        for port in container.get("ports", []):
            host_port = host_ports.get(port["containerPort"])
            if host_port is None:
                unmapped.append(f"{container['name']}:{port['containerPort']}")
                continue
            port["hostPort"] = int(host_port)
            port["hostIP"] = LOOPBACK
    if unmapped:
        raise ValueError(f"no host port given for {', '.join(unmapped)}")
    metadata = {"name": name or f"{deployment['metadata']['name']}-{POD_SUFFIX}"}
    for key in ("labels", "annotations"):
        if template.get("metadata", {}).get(key):
            metadata[key] = template["metadata"][key]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def expected_security(pod_spec: dict, container: dict) -> dict:
    """The securityContext that applies to the container: container fields override the pod's
    (Kubernetes' rule for runAsUser, runAsNonRoot, seccompProfile). Only fields the manifest sets."""
    pod_level = pod_spec.get("securityContext") or {}
    own = container.get("securityContext") or {}
    merged: dict = {}
    for key in ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile"):
        if key in own:
            merged[key] = own[key]
        elif key in pod_level:
            merged[key] = pod_level[key]
    for key in ("readOnlyRootFilesystem", "allowPrivilegeEscalation", "capabilities", "privileged"):
        if key in own:
            merged[key] = own[key]
    return merged


def parse_proc_status(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in STATUS_FIELDS:
            fields[key] = value.strip()
    return fields


def parse_quantity(quantity: str | int | float) -> float:
    """A Kubernetes resource quantity as a number: "2Gi" -> 2147483648, "500m" -> 0.5, "2" -> 2."""
    text = str(quantity).strip()
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", text)
    if not match:
        raise ValueError(f"not a quantity: {quantity!r}")
    number, suffix = float(match.group(1)), match.group(2)
    binary = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    decimal = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    if suffix in binary:
        return number * binary[suffix]
    if suffix in decimal:
        return number * decimal[suffix]
    raise ValueError(f"unknown quantity suffix in {quantity!r}")


def startup_budget_s(container: dict) -> float:
    """How long the kubelet would wait for start-up: the startupProbe's initial delay plus
    periodSeconds x failureThreshold (Kubernetes' defaults 10 and 3 where unset)."""
    probe = container.get("startupProbe")
    if not probe:
        return FALLBACK_READY_S
    return (probe.get("initialDelaySeconds", 0)
            + probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3))


def security_checks(expected: dict, inspect: dict, processes: list[dict], rootfs_write_error: str) -> dict:
    """{check name: {"ok": bool, ...}} for each securityContext field the manifest sets.

    inspect: `podman inspect` of the container; processes: [{"pid", "cmd", "status": /proc status
    text}] from inside it; rootfs_write_error: what writing a file under / said ("" = it worked)."""
    statuses = {row["pid"]: parse_proc_status(row["status"]) for row in processes}
    # Real, effective, saved and filesystem uid: all four must be the manifest's.
    uids = sorted({int(uid) for status in statuses.values() for uid in status.get("Uid", "").split()})
    checks: dict[str, dict] = {}
    if "runAsUser" in expected:
        want = int(expected["runAsUser"])
        checks["processes_run_as_run_as_user"] = {
            "ok": bool(uids) and uids == [want], "run_as_user": want, "uids": uids, "processes": len(statuses),
            "podman_user": inspect.get("Config", {}).get("User")}
    if expected.get("runAsNonRoot"):
        checks["run_as_non_root"] = {"ok": bool(uids) and 0 not in uids, "uids": uids}
    if expected.get("readOnlyRootFilesystem"):
        readonly = inspect.get("HostConfig", {}).get("ReadonlyRootfs")
        checks["read_only_root_filesystem"] = {
            "ok": readonly is True and "Read-only file system" in rootfs_write_error,
            "podman_readonly_rootfs": readonly, "write_under_root": rootfs_write_error or "succeeded"}
    dropped = (expected.get("capabilities") or {}).get("drop") or []
    if "ALL" in dropped:
        sets = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
        holding = {pid: {name: status.get(name) for name in sets if int(status.get(name, "0"), 16) != NO_CAPABILITIES}
                   for pid, status in statuses.items()}
        holding = {pid: caps for pid, caps in holding.items() if caps}
        checks["capabilities_all_dropped"] = {
            "ok": bool(statuses) and not holding and not inspect.get("HostConfig", {}).get("CapAdd"),
            "processes_holding_capabilities": holding,
            "podman_cap_drop": len(inspect.get("HostConfig", {}).get("CapDrop") or []),
            "podman_cap_add": inspect.get("HostConfig", {}).get("CapAdd") or []}
    if expected.get("allowPrivilegeEscalation") is False:
        flags = sorted({status.get("NoNewPrivs") for status in statuses.values()})
        checks["no_new_privileges"] = {
            "ok": flags == ["1"], "no_new_privs_values": flags,
            "podman_security_opt": inspect.get("HostConfig", {}).get("SecurityOpt") or []}
    if (expected.get("seccompProfile") or {}).get("type") == "RuntimeDefault":
        modes = sorted({status.get("Seccomp") for status in statuses.values()})
        checks["seccomp_runtime_default"] = {"ok": modes == [SECCOMP_FILTER], "seccomp_modes": modes}
    return checks


def env_check(container: dict, inspect: dict) -> dict:
    """Every literal env value of the manifest is in the container's environment."""
    present = dict(entry.split("=", 1) for entry in inspect.get("Config", {}).get("Env") or [] if "=" in entry)
    wanted = {env["name"]: env["value"] for env in container.get("env", []) if "value" in env}
    wrong = {name: present.get(name) for name, value in wanted.items() if present.get(name) != value}
    return {"ok": not wrong, "names": sorted(wanted), "different": wrong}


def resource_check(container: dict, inspect: dict) -> dict:
    """The container's limits: memory limit in bytes and CPU quota/period as cores."""
    limits = (container.get("resources") or {}).get("limits") or {}
    host = inspect.get("HostConfig", {})
    result: dict = {"ok": True}
    if "memory" in limits:
        want = int(parse_quantity(limits["memory"]))
        result["memory_limit"] = {"manifest": limits["memory"], "bytes": want, "podman": host.get("Memory")}
        result["ok"] &= host.get("Memory") == want
    if "cpu" in limits:
        want = parse_quantity(limits["cpu"])
        quota, period = host.get("CpuQuota") or 0, host.get("CpuPeriod") or 0
        cores = quota / period if period else None
        result["cpu_limit"] = {"manifest": str(limits["cpu"]), "podman_cores": cores,
                               "cpu_quota": quota, "cpu_period": period}
        result["ok"] &= cores is not None and abs(cores - want) < 1e-6
    requests = (container.get("resources") or {}).get("requests") or {}
    if "memory" in requests:  # recorded, not checked: a reservation is a hint to the kernel, not a limit
        result["memory_request"] = {"manifest": requests["memory"], "podman_reservation": host.get("MemoryReservation")}
    return result


def _healthchecks(inspect: dict) -> dict[str, dict]:
    config = inspect.get("Config", {})
    found = {}
    if config.get("Healthcheck"):
        found["healthcheck"] = config["Healthcheck"]
    if config.get("StartupHealthCheck"):
        found["startup_healthcheck"] = config["StartupHealthCheck"]
    return found


def probe_findings(container: dict, inspect: dict) -> dict:
    """For each probe the manifest declares: what podman made of it, read from `podman inspect`.

    A probe counts as applied when one of the container's podman healthchecks runs the probe's
    path every periodSeconds; nothing else in podman could carry it (podman has no readiness
    gate: no Service routes by it)."""
    healthchecks = _healthchecks(inspect)
    findings = {}
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = container.get(kind)
        if not probe:
            continue
        path = (probe.get("httpGet") or {}).get("path")
        period_ns = int(probe.get("periodSeconds", 10) * 1e9)
        target = (path or " ".join((probe.get("exec") or {}).get("command") or [])) or None
        applied_as = [name for name, check in healthchecks.items()
                      if target and target in " ".join(check.get("Test") or [])
                      and check.get("Interval") == period_ns]
        finding = {"declared": probe, "applied": bool(applied_as), "applied_as": applied_as}
        for name in applied_as:
            check = healthchecks[name]
            finding["podman_command"] = check.get("Test")
            finding["podman_interval_s"] = (check.get("Interval") or 0) / 1e9
            finding["podman_timeout_s"] = (check.get("Timeout") or 0) / 1e9
            finding["podman_retries"] = check.get("Retries")
            if name == "healthcheck":
                finding["on_failure"] = inspect.get("Config", {}).get("HealthcheckOnFailureAction")
        findings[kind] = finding
    return findings


def liveness_check(findings: dict) -> dict | None:
    """The livenessProbe as a check (None when the manifest declares none): podman must have made
    it the container's healthcheck, and one run of that must pass and leave the container healthy.
    Under podman the probe runs inside the container (httpGet becomes `curl -f`), so this is what
    catches an image that lacks the probe's tool; the kubelet would probe from outside."""
    finding = findings.get("livenessProbe")
    if finding is None:
        return None
    run = finding.get("run_once") or {}
    return {"ok": finding["applied_as"] == ["healthcheck"] and bool(run.get("passed"))
                  and run.get("health_status") == "healthy",
            "applied_as": finding["applied_as"], "podman_command": finding.get("podman_command"),
            "exit_code": run.get("exit_code"), "health_status": run.get("health_status"),
            "output": run.get("output")}


def grace_period_finding(pod_spec: dict, inspect: dict) -> dict:
    want = pod_spec.get("terminationGracePeriodSeconds", 30)
    got = inspect.get("Config", {}).get("StopTimeout")
    return {"manifest_s": want, "podman_stop_timeout_s": got, "applied": got == want}


def k8s_file_message(line: str) -> str:
    """The message of one line of podman's k8s-file log: "<RFC 3339 time> <stream> <F|P> <message>"."""
    parts = line.split(" ", 3)
    return parts[3] if len(parts) == 4 and parts[1] in ("stdout", "stderr") else line


def service_events(lines: list[str]) -> list[dict]:
    events = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event"):
            events.append(entry)
    return events

"""Offline checks of deploy/: YAML lint, schemas, and consistency with the image and the settings.

No cluster and no network: the Kubernetes objects are validated with kubernetes-validate's bundled
schemas (strict: unknown fields are errors), the KServe ServingRuntime, ClusterServingRuntime and
InferenceServices with the subsets of KServe's CRD schemas in tests/fixtures/kserve_*_schema.json (made by
tests/fixtures/kserve_schema_subset.py), and the consistency checks read the Dockerfile,
scripts/service/settings.py and the pod KServe makes (scripts/container/kserve_pod.py). Each consistency check is also run against a deliberately broken
copy of the manifests, so a check that can never fail is caught too.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from pathlib import Path
from typing import Any, Callable

import jsonschema
import kubernetes_validate
import pytest
import yaml
from yamllint import linter as yamllint_linter
from yamllint.config import YamlLintConfig

from scripts import REPO_ROOT
from scripts.service.readiness import ManagementPoller, Responder
from scripts.service.settings import DEFAULTS

DEPLOY = REPO_ROOT / "deploy"
K8S_DIR = DEPLOY / "kubernetes"
KSERVE_DIR = DEPLOY / "kserve"
YAMLLINT_CONFIG = DEPLOY / ".yamllint"
KSERVE_SCHEMAS = {kind: REPO_ROOT / "tests" / "fixtures" / f"kserve_{kind.lower()}_schema.json"
                  for kind in ("ServingRuntime", "ClusterServingRuntime", "InferenceService")}
KSERVE_MANIFESTS = {"servingruntime.yaml": "ServingRuntime", "clusterservingruntime.yaml": "ClusterServingRuntime",
                    "inferenceservice.yaml": "InferenceService",
                    "inferenceservice-serverless.yaml": "InferenceService"}
DOCKERFILE = REPO_ROOT / "Dockerfile"

# Oldest Kubernetes minor still commonly run that has every API used here (autoscaling/v2, policy/v1).
KUBERNETES_VERSION = "1.29.0"
APP_LABEL = {"app.kubernetes.io/name": "resnet50-serve"}
HEALTH_PATH = "/health"
LIVE_PATH = "/live"
ADAPTER_RULES = K8S_DIR / "prometheus-adapter" / "rules.yaml"
# An address of a typical pod network (where the in-cluster Prometheus scrapes from).
POD_NETWORK_ADDRESS = "10.244.1.7"

YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml"))


# --------------------------------------------------------------------------------------------- helpers


def load_one(path: Path) -> dict:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    assert len(docs) == 1, f"{path.relative_to(REPO_ROOT)}: expected one YAML document, found {len(docs)}"
    return docs[0]


def kustomize_resources() -> list[Path]:
    return [K8S_DIR / name for name in load_one(K8S_DIR / "kustomization.yaml")["resources"]]


def k8s_objects() -> dict[str, dict]:
    """The objects of deploy/kubernetes by kind (one of each)."""
    objects: dict[str, dict] = {}
    for path in kustomize_resources():
        obj = load_one(path)
        assert obj["kind"] not in objects, f"two {obj['kind']} objects"
        objects[obj["kind"]] = obj
    return objects


def cpu_cores(quantity: Any) -> float:
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


_MEMORY_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
                 "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def memory_bytes(quantity: Any) -> float:
    match = re.fullmatch(r"([0-9.]+)([KMGT]i?)?", str(quantity))
    assert match, f"unsupported memory quantity {quantity!r}"
    return float(match.group(1)) * _MEMORY_UNITS.get(match.group(2) or "", 1)


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def dockerfile_facts(text: str) -> dict[str, Any]:
    """The non-root uid, exposed ports and ENV values of the Dockerfile."""
    joined = re.sub(r"\\\n", " ", text)
    uid = re.search(r"\buseradd\b[^\n]*?--uid[= ]+(\d+)", joined)
    user = re.search(r"^USER\s+(\S+)", joined, re.M)
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV\s+(.+)$", joined, re.M):
        env.update(dict(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", line)))
    return {
        "uid": int(uid.group(1)) if uid else None,
        "user": user.group(1) if user else None,
        "expose": {int(p) for line in re.findall(r"^EXPOSE\s+(.+)$", joined, re.M)
                   for p in re.findall(r"\d+", line)},
        "env": env,
    }


def probe_port(probe_action: dict, container: dict) -> int | None:
    """A probe's port as a number (named ports resolved against the container's ports)."""
    port = probe_action.get("port")
    if isinstance(port, str):
        named = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        return named.get(port)
    return port


def pre_stop_seconds(container: dict) -> int:
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in pre_stop:
        return int(pre_stop["sleep"]["seconds"])
    command = pre_stop.get("exec", {}).get("command", [])
    if len(command) == 2 and Path(command[0]).name == "sleep":
        return int(command[1])
    return 0


def inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def exported_gauges() -> set[str]:
    """The gauges scripts/service/readiness.py appends to GET /metrics (read from its own output)."""
    poller = ManagementPoller("resnet50", REPO_ROOT, lambda: 0, lambda: None)
    return {line.split()[2] for line in Responder(poller).metrics().splitlines()
            if line.startswith("# TYPE ") and line.endswith(" gauge")}


def adapter_problems(rules_doc: dict, hpa: dict) -> list[str]:
    """prometheus-adapter's rule serves the HPA's Pods metric from the exported gauge, per pod."""
    problems: list[str] = []
    config = yaml.safe_load(rules_doc.get("data", {}).get("config.yaml", "")) or {}
    rules = config.get("rules", [])
    served = {}
    for rule in rules:
        name = rule.get("name", {}).get("as") or rule.get("seriesQuery", "").split("{")[0]
        served[name] = rule
    for metric in (m["pods"]["metric"]["name"] for m in hpa["spec"].get("metrics", []) if m.get("type") == "Pods"):
        rule = served.get(metric)
        if rule is None:
            problems.append(f"no prometheus-adapter rule serves {metric}")
            continue
        series = rule.get("seriesQuery", "").split("{")[0]
        if series not in exported_gauges():
            problems.append(f"the rule for {metric} queries {series!r}, which GET /metrics does not export")
        overrides = rule.get("resources", {}).get("overrides", {})
        if overrides.get("pod", {}).get("resource") != "pod" or \
                overrides.get("namespace", {}).get("resource") != "namespace":
            problems.append(f"the rule for {metric} does not map the namespace and pod labels")
        if "<<.GroupBy>>" not in rule.get("metricsQuery", ""):
            problems.append(f"the rule for {metric} does not aggregate by <<.GroupBy>> (one value per pod)")
    return problems


# ------------------------------------------------------------------------- consistency rules (the heart)


def deployment_problems(objs: dict[str, dict], dockerfile: dict, defaults: dict[str, str]) -> list[str]:
    """Everything that makes deploy/kubernetes disagree with the image, the settings or itself."""
    problems: list[str] = []
    deployment, service = objs["Deployment"], objs["Service"]
    pod = deployment["spec"]["template"]["spec"]
    containers = pod["containers"]
    if len(containers) != 1:
        return [f"expected one container, found {len(containers)}"]
    container = containers[0]
    env = env_of(container)
    port = int(defaults["PORT"])

    # Port: the Dockerfile's EXPOSE, the settings' PORT, the container, the probes and the Service agree;
    # the metrics port (METRICS_PORT) is declared on the container and never routed by the Service.
    metrics_port = int(env["METRICS_PORT"]) if env.get("METRICS_PORT", defaults["METRICS_PORT"]) else None
    # GRPC_PORT (empty: no gRPC) is routed by the Service like PORT.
    grpc_setting = env.get("GRPC_PORT", defaults.get("GRPC_PORT", ""))
    grpc_port = int(grpc_setting) if grpc_setting else None
    expected_ports = [p for p in (port, metrics_port, grpc_port) if p is not None]
    container_ports = [p["containerPort"] for p in container.get("ports", [])]
    if container_ports != expected_ports:
        problems.append(f"container ports {container_ports} != PORT, METRICS_PORT and GRPC_PORT {expected_ports}")
    for name, value in (("PORT", port), ("GRPC_PORT", grpc_port)):
        if value is not None and value not in dockerfile["expose"]:
            problems.append(f"Dockerfile EXPOSE {sorted(dockerfile['expose'])} lacks {name} {value}")
    if grpc_port is not None:
        grpc_service_ports = [p for p in service["spec"]["ports"]
                              if probe_port({"port": p["targetPort"]}, container) == grpc_port]
        if not grpc_service_ports or grpc_service_ports[0].get("appProtocol") != "grpc":
            problems.append(f"the Service port to GRPC_PORT {grpc_port} needs appProtocol: grpc (gRPC-aware "
                            "load balancers and meshes balance per call, not per connection)")
    target_ports = [probe_port({"port": p["targetPort"]}, container) for p in service["spec"]["ports"]]
    routed = [p for p in (port, grpc_port) if p is not None]
    if target_ports != routed:
        problems.append(f"Service targetPorts {target_ports} != {routed}")
    if metrics_port is not None and metrics_port in target_ports:
        problems.append(f"the Service routes the metrics port {metrics_port}: /metrics would be public")

    # Labels: the Service, the HPA and the PDB all find the Deployment's pods.
    pod_labels = deployment["spec"]["template"]["metadata"].get("labels", {})
    selector = deployment["spec"]["selector"]["matchLabels"]
    if selector != APP_LABEL or not APP_LABEL.items() <= pod_labels.items():
        problems.append(f"Deployment selector/pod labels do not carry {APP_LABEL}")
    if service["spec"].get("selector") != APP_LABEL:
        problems.append(f"Service selector {service['spec'].get('selector')} != {APP_LABEL}")
    if objs["PodDisruptionBudget"]["spec"]["selector"].get("matchLabels") != APP_LABEL:
        problems.append("PodDisruptionBudget selector does not match the pods")
    target = objs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    if (target["kind"], target["name"]) != ("Deployment", deployment["metadata"]["name"]):
        problems.append(f"HPA scales {target['kind']}/{target['name']}, not the Deployment")

    # Probes: readiness and start-up on /health (answered from the workers' states, never queued); liveness
    # on /live (proxy + frontend answer), never on /health (a crash-looping worker is not a reason to restart).
    readiness = container.get("readinessProbe", {})
    get = readiness.get("httpGet", {})
    if get.get("path") != HEALTH_PATH or probe_port(get, container) != port:
        problems.append(f"readinessProbe must be httpGet {HEALTH_PATH} on port {port}, got {readiness}")
    if readiness.get("timeoutSeconds", 1) <= 2:
        problems.append("readinessProbe timeoutSeconds must exceed the 2 s nginx allows the readiness responder")
    liveness = container.get("livenessProbe")
    if not liveness:
        problems.append("no livenessProbe")
    elif liveness.get("httpGet", {}).get("path") == HEALTH_PATH:
        problems.append("livenessProbe is an httpGet on /health: it would restart pods whose worker reloads")
    elif liveness.get("httpGet", {}).get("path") != LIVE_PATH or probe_port(liveness["httpGet"], container) != port:
        problems.append(f"livenessProbe must be httpGet {LIVE_PATH} on port {port}, got {liveness}")

    # Metrics: the in-cluster Prometheus may read /metrics (METRICS_ALLOW) and finds the pods (annotations).
    allowed = [entry.strip() for entry in env.get("METRICS_ALLOW", defaults["METRICS_ALLOW"]).split(",")]
    try:
        networks = [ipaddress.ip_network(entry, strict=False) for entry in allowed if entry.lower() != "none"]
    except ValueError as exc:
        networks = []
        problems.append(f"METRICS_ALLOW has an entry that is not an address or CIDR: {exc}")
    if not any(ipaddress.ip_address(POD_NETWORK_ADDRESS) in n for n in networks):
        problems.append(f"METRICS_ALLOW {allowed} does not let a pod-network Prometheus ({POD_NETWORK_ADDRESS}) scrape")
    if any(n.prefixlen == 0 for n in networks):
        problems.append("METRICS_ALLOW opens /metrics to every address")
    # An Ingress controller or a load balancer reaches PORT from the pod network too: beyond loopback,
    # only a port the Service never routes keeps /metrics in the cluster.
    if metrics_port is None and any(not n.is_loopback for n in networks):
        problems.append(f"METRICS_ALLOW {allowed} admits the pod network while /metrics is on PORT, behind the "
                        "Service: set METRICS_PORT")
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    expected = {"prometheus.io/scrape": "true", "prometheus.io/port": str(metrics_port or port),
                "prometheus.io/path": "/metrics"}
    if {k: annotations.get(k) for k in expected} != expected:
        problems.append(f"pod annotations {annotations} lack the prometheus.io scrape annotations {expected}")

    # Autoscaling: a Pods metric on a gauge the service exports, and CPU as the fallback.
    metrics = objs["HorizontalPodAutoscaler"]["spec"].get("metrics", [])
    pods_metrics = [m["pods"]["metric"]["name"] for m in metrics if m.get("type") == "Pods"]
    if not pods_metrics or not set(pods_metrics) <= exported_gauges():
        problems.append(f"HPA needs a Pods metric on a gauge of GET /metrics {sorted(exported_gauges())},"
                        f" got {pods_metrics}")
    if not any(m.get("type") == "Resource" and m["resource"]["name"] == "cpu" for m in metrics):
        problems.append("HPA has no CPU Resource metric to fall back on")
    startup = container.get("startupProbe", {})
    budget = startup.get("failureThreshold", 3) * startup.get("periodSeconds", 10)
    get = startup.get("httpGet", {})
    if get.get("path") != HEALTH_PATH or probe_port(get, container) != port:
        problems.append(f"startupProbe must be httpGet {HEALTH_PATH} on port {port}")
    if budget < int(defaults["STARTUP_TIMEOUT"]):
        problems.append(f"startupProbe allows {budget} s < STARTUP_TIMEOUT {defaults['STARTUP_TIMEOUT']} s")

    # CPU: workers x threads per worker = the CPU limit (no oversubscription, no idle cores).
    resources = container.get("resources", {})
    limits, requests = resources.get("limits", {}), resources.get("requests", {})
    workers = int(env.get("WORKERS", defaults["WORKERS"]))
    threads = int(env.get("THREADS_PER_WORKER", defaults["THREADS_PER_WORKER"]))
    if "cpu" not in limits:
        problems.append("no CPU limit")
    elif workers * threads != cpu_cores(limits["cpu"]):
        problems.append(f"WORKERS {workers} x THREADS_PER_WORKER {threads} != CPU limit {limits['cpu']}")
    if "cpu" in limits and cpu_cores(requests.get("cpu", 0)) != cpu_cores(limits["cpu"]):
        problems.append(f"CPU request {requests.get('cpu')} != CPU limit {limits['cpu']}")
    if "memory" not in limits or memory_bytes(requests.get("memory", 0)) > memory_bytes(limits["memory"]):
        problems.append(f"memory request {requests.get('memory')} exceeds the limit {limits.get('memory')}")

    # Security: the Dockerfile's user, non-root, read-only root with /tmp (RUN_DIR) as the only writable path.
    pod_sc, sc = pod.get("securityContext", {}), container.get("securityContext", {})
    run_as_user = sc.get("runAsUser", pod_sc.get("runAsUser"))
    if run_as_user != dockerfile["uid"] or str(run_as_user) != str(dockerfile["user"]):
        problems.append(f"runAsUser {run_as_user} != Dockerfile useradd --uid {dockerfile['uid']}"
                        f" / USER {dockerfile['user']}")
    if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
        problems.append("runAsNonRoot is not true")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem is not true")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if "ALL" not in sc.get("capabilities", {}).get("drop", []) or sc.get("capabilities", {}).get("add"):
        problems.append("capabilities must drop ALL and add none")
    if sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type") != "RuntimeDefault":
        problems.append("seccompProfile is not RuntimeDefault")
    run_dir = env.get("RUN_DIR", dockerfile["env"].get("RUN_DIR", ""))
    empty_dirs = {v["name"]: v["emptyDir"] for v in pod.get("volumes", []) if "emptyDir" in v}
    writable = [m for m in container.get("volumeMounts", [])
                if m["name"] in empty_dirs and not m.get("readOnly")]
    if not any(inside(run_dir, m["mountPath"]) for m in writable):
        problems.append(f"RUN_DIR {run_dir!r} is not on a writable emptyDir mount")
    if not all(empty_dirs[m["name"]].get("sizeLimit") for m in writable):
        problems.append("a writable emptyDir has no sizeLimit")

    # Shutdown: preStop pause + the supervisor's drain (REQUEST_TIMEOUT + 5 s) fit in the grace period.
    timeout = int(env.get("REQUEST_TIMEOUT", defaults["REQUEST_TIMEOUT"]))
    needed = pre_stop_seconds(container) + timeout + 5
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace < needed:
        problems.append(f"terminationGracePeriodSeconds {grace} < preStop + REQUEST_TIMEOUT {timeout} + 5"
                        f" = {needed}")
    return problems


KSERVE_PORT = 8080  # KServe's default container port (InferenceServiceDefaultHttpPort)
KSERVE_MODEL_STORE = "/mnt/models"  # where KServe mounts storageUri (DefaultModelLocalMountPath)
MODEL_FORMAT = "torchserve-mar"
RUNTIME_NAME = "resnet50-torchserve"
DEPLOYMENT_MODES = {"RawDeployment", "Serverless", "Standard", "Knative"}  # KServe 0.20 renamed the first two
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"


def runtime_problems(runtime: dict, deployment: dict, defaults: dict[str, str]) -> list[str]:
    """What makes the ServingRuntime disagree with KServe's contract, the settings or deploy/kubernetes."""
    problems: list[str] = []
    spec = runtime["spec"]
    if runtime["metadata"]["name"] != RUNTIME_NAME:
        problems.append(f"runtime name {runtime['metadata']['name']!r} != {RUNTIME_NAME!r}")
    formats = {f["name"]: f for f in spec.get("supportedModelFormats", [])}
    if not formats.get(MODEL_FORMAT, {}).get("autoSelect"):
        problems.append(f"supportedModelFormats must offer {MODEL_FORMAT} with autoSelect")
    if "pytorch" in formats:
        problems.append("the runtime claims the pytorch format (KServe's deprecated kserve-torchserve runtime's)")
    wanted = {"v1", "v2"} | ({"grpc-v2"} if defaults.get("GRPC_PORT") else set())
    if not wanted <= set(spec.get("protocolVersions", [])):
        problems.append(f"protocolVersions {spec.get('protocolVersions')} must include {sorted(wanted)}")
    containers = spec.get("containers", [])
    if [c["name"] for c in containers] != ["kserve-container"]:
        return problems + [f"expected one container kserve-container, got {[c['name'] for c in containers]}"]
    container = containers[0]
    theirs = deployment["spec"]["template"]["spec"]["containers"][0]
    env, their_env = env_of(container), env_of(theirs)
    if "command" in container or "args" in container:
        problems.append("the container overrides the image's entrypoint (the supervisor must run)")
    ports = [p["containerPort"] for p in container.get("ports", [])]
    if ports != [KSERVE_PORT] or env.get("PORT") != str(KSERVE_PORT):
        problems.append(f"ports {ports} and PORT {env.get('PORT')} must be KServe's {KSERVE_PORT} (one port: Knative)")
    if env.get("MODEL_STORE") != KSERVE_MODEL_STORE:
        problems.append(f"MODEL_STORE {env.get('MODEL_STORE')} != {KSERVE_MODEL_STORE}, where KServe mounts storageUri")
    # Everything else the Deployment sets, the runtime sets alike.
    for name in sorted(set(their_env) - {"PORT"}):
        if env.get(name) != their_env[name]:
            problems.append(f"env {name}={env.get(name)!r} differs from the Deployment's {their_env[name]!r}")
    for key in ("securityContext", "resources"):
        if container.get(key) != theirs.get(key):
            problems.append(f"{key} differs from the Deployment's")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        ours, deployed = copy.deepcopy(container.get(probe) or {}), copy.deepcopy(theirs.get(probe) or {})
        port = ours.get("httpGet", {}).pop("port", None)
        deployed.get("httpGet", {}).pop("port", None)
        if ours != deployed or port != KSERVE_PORT:
            problems.append(f"{probe} must be the Deployment's on port {KSERVE_PORT}")
    metrics_port = env.get("METRICS_PORT") or defaults["METRICS_PORT"]
    annotations = spec.get("annotations", {})
    if not metrics_port or int(metrics_port) == KSERVE_PORT:
        problems.append("METRICS_PORT must be set, and not to the served port")
    elif annotations.get("prometheus.io/port") != metrics_port or annotations.get("prometheus.io/scrape") != "true":
        problems.append(f"pod annotations {annotations} must scrape METRICS_PORT {metrics_port}")
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    run_dir = env.get("RUN_DIR", "")
    writable = [path for path, name in mounts.items() if "emptyDir" in volumes.get(name, {})]
    if not any(inside(run_dir, path) for path in writable):
        problems.append(f"RUN_DIR {run_dir!r} is not on a writable emptyDir mount")
    if any(inside(KSERVE_MODEL_STORE, path) or inside(path, KSERVE_MODEL_STORE) for path in mounts):
        problems.append(f"the runtime mounts something at {KSERVE_MODEL_STORE}: KServe's storage goes there")
    return problems


def isvc_problems(isvc: dict, runtime: dict, hpa: dict, defaults: dict[str, str]) -> list[str]:
    """What makes an InferenceService miss the runtime or break the Deployment's sizing and shutdown."""
    problems: list[str] = []
    predictor = isvc["spec"]["predictor"]
    model = predictor["model"]
    env = env_of(model)
    spec = runtime["spec"]
    formats = {f["name"] for f in spec.get("supportedModelFormats", [])}
    if model.get("modelFormat", {}).get("name") not in formats:
        problems.append(f"modelFormat {model.get('modelFormat')} is not one the runtime supports {sorted(formats)}")
    if "runtime" in model and model["runtime"] != runtime["metadata"]["name"]:
        problems.append(f"runtime {model['runtime']!r} is not {runtime['metadata']['name']!r}")
    if model.get("protocolVersion", "v1") not in spec.get("protocolVersions", []):
        problems.append(f"protocolVersion {model.get('protocolVersion')} is not one the runtime speaks")
    if not model.get("storageUri"):
        problems.append("no storageUri: KServe would mount no model at /mnt/models")
    workers = int(env.get("WORKERS", defaults["WORKERS"]))
    threads = int(env.get("THREADS_PER_WORKER", defaults["THREADS_PER_WORKER"]))
    limits = model.get("resources", {}).get("limits", {})
    if workers * threads != cpu_cores(limits.get("cpu", 0)):
        problems.append(f"WORKERS {workers} x THREADS_PER_WORKER {threads} != CPU limit {limits.get('cpu')}")
    if model.get("resources") != spec["containers"][0].get("resources"):
        problems.append("resources differ from the runtime's (the Deployment's)")
    mode = isvc["metadata"].get("annotations", {}).get(MODE_ANNOTATION)
    if mode not in DEPLOYMENT_MODES:
        problems.append(f"{MODE_ANNOTATION} {mode!r} must say which mode the InferenceService is made for")
    if predictor.get("minReplicas", 1) < 1:
        problems.append("minReplicas below 1: a cold start loads and proves the model first")
    if mode in ("Serverless", "Knative"):
        if "lifecycle" in model:
            problems.append("lifecycle hooks in Serverless mode: Knative refuses them")
        if predictor.get("scaleMetric") != "concurrency" or \
                predictor.get("scaleTarget") != workers * int(defaults["BATCH_SIZE"]):
            problems.append(f"Serverless scaling must be concurrency at WORKERS x BATCH_SIZE "
                            f"({workers * int(defaults['BATCH_SIZE'])}) per pod")
    else:
        grpc_port = env.get("GRPC_PORT", defaults.get("GRPC_PORT", ""))
        declared = [p.get("containerPort") for p in model.get("ports", [])]
        if grpc_port and int(grpc_port) not in declared:
            problems.append(f"the gRPC port GRPC_PORT {grpc_port} is not declared (model.ports {declared}): "
                            "KServe's Service would not route grpc-v2")
        timeout = int(env.get("REQUEST_TIMEOUT", defaults["REQUEST_TIMEOUT"]))
        needed = pre_stop_seconds(model) + timeout + 5
        if predictor.get("terminationGracePeriodSeconds", 30) < needed:
            problems.append(f"terminationGracePeriodSeconds {predictor.get('terminationGracePeriodSeconds')} < "
                            f"preStop + REQUEST_TIMEOUT {timeout} + 5 = {needed}")
        cpu_target = next(m["resource"]["target"]["averageUtilization"] for m in hpa["spec"]["metrics"]
                          if m.get("type") == "Resource")
        if (predictor.get("scaleMetric"), predictor.get("scaleTarget")) != ("cpu", cpu_target):
            problems.append(f"RawDeployment scaling must be cpu at {cpu_target} % as hpa.yaml")
        for key in ("minReplicas", "maxReplicas"):
            if predictor.get(key) != hpa["spec"][key]:
                problems.append(f"{key} {predictor.get(key)} != hpa.yaml's {hpa['spec'][key]}")
    return problems


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def objs() -> dict[str, dict]:
    return k8s_objects()


@pytest.fixture(scope="module")
def dockerfile() -> dict[str, Any]:
    return dockerfile_facts(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def kserve() -> dict[str, dict]:
    """deploy/kserve's objects by file name."""
    return {name: load_one(KSERVE_DIR / name) for name in KSERVE_MANIFESTS}


def kserve_validator(kind: str) -> jsonschema.protocols.Validator:
    schema = json.loads(KSERVE_SCHEMAS[kind].read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


# ------------------------------------------------------------------------- (a) parse and lint the YAML


def test_expected_files_exist():
    expected = {"kubernetes/deployment.yaml", "kubernetes/service.yaml", "kubernetes/hpa.yaml",
                "kubernetes/prometheus-adapter/rules.yaml",
                "kubernetes/pdb.yaml", "kubernetes/kustomization.yaml"} | {f"kserve/{n}" for n in KSERVE_MANIFESTS}
    assert expected <= {str(p.relative_to(DEPLOY)) for p in YAML_FILES}
    assert YAMLLINT_CONFIG.is_file() and all(path.is_file() for path in KSERVE_SCHEMAS.values())
    # KServe's deprecated kserve-torchserve path (its config.properties) is gone.
    assert not (KSERVE_DIR / "config").exists()


@pytest.mark.parametrize("path", YAML_FILES + [YAMLLINT_CONFIG], ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses_and_passes_yamllint(path: Path):
    text = path.read_text(encoding="utf-8")
    load_one(path)
    problems = list(yamllint_linter.run(text, YamlLintConfig(file=str(YAMLLINT_CONFIG)), str(path)))
    assert not problems, "\n".join(f"{path.name}:{p.line}:{p.column} [{p.level}] {p.message} ({p.rule})"
                                   for p in problems)


def test_yamllint_config_is_not_vacuous():
    conf = YamlLintConfig(file=str(YAMLLINT_CONFIG))
    bad = "key: value\nlong: " + "x" * 130 + "\nkey: again\n"
    rules = {p.rule for p in yamllint_linter.run(bad, conf)}
    assert {"line-length", "key-duplicates"} <= rules


def test_kustomization_lists_every_manifest():
    listed = {p.name for p in kustomize_resources()}
    present = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


# --------------------------------------------------------------- (b) Kubernetes schemas (strict mode)


@pytest.mark.parametrize("path", kustomize_resources(), ids=lambda p: p.name)
def test_kubernetes_object_validates_strictly(path: Path):
    obj = load_one(path)
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{path.name}: {'.'.join(map(str, exc.path))}: {exc.message}")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(readinesProbe={}),  # misspelt field
        lambda d: d["spec"]["template"]["spec"].update(terminationGracePeriodSeconds="45"),  # wrong type
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["ports"][0].pop("containerPort"),  # required
    ],
    ids=["unknown-field", "wrong-type", "missing-required"],
)
def test_kubernetes_validation_rejects_broken_deployment(objs, mutate: Callable[[dict], Any]):
    broken = copy.deepcopy(objs["Deployment"])
    mutate(broken)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


# --------------------------------------------------------------------- (c) KServe CRD schemas


@pytest.mark.parametrize("name", sorted(KSERVE_MANIFESTS))
def test_kserve_manifest_matches_kserve_crd_schema(kserve, name: str):
    errors = sorted(kserve_validator(KSERVE_MANIFESTS[name]).iter_errors(kserve[name]), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_documented_canary_rollout_matches_the_schema(kserve):
    """README.md's version rollout: canaryTrafficPercent on the Serverless InferenceService."""
    validator = kserve_validator("InferenceService")
    canary = copy.deepcopy(kserve["inferenceservice-serverless.yaml"])
    canary["spec"]["predictor"]["canaryTrafficPercent"] = 10
    assert not list(validator.iter_errors(canary))
    canary["spec"]["predictor"]["canaryTrafficPercent"] = "10%"
    assert list(validator.iter_errors(canary))


def test_kserve_schema_fixtures_name_their_source():
    for kind, path in KSERVE_SCHEMAS.items():
        comment = json.loads(path.read_text(encoding="utf-8"))["$comment"]
        assert "kserve/kserve" in comment and re.search(r"commit [0-9a-f]{40}", comment), kind


def _isvc_model(doc: dict) -> dict:
    return doc["spec"]["predictor"]["model"]


def _runtime_container(doc: dict) -> dict:
    return doc["spec"]["containers"][0]


SCHEMA_BREAKS: dict[str, tuple[str, Callable[[dict], Any]]] = {
    "isvc-misspelt-model-field": ("inferenceservice.yaml",
                                  lambda d: _isvc_model(d).update(modelFromat={"name": MODEL_FORMAT})),
    "isvc-modelformat-without-name": ("inferenceservice.yaml", lambda d: _isvc_model(d)["modelFormat"].pop("name")),
    "isvc-misspelt-predictor-field": ("inferenceservice.yaml", lambda d: d["spec"]["predictor"].update(minReplica=2)),
    "isvc-bad-quantity": ("inferenceservice.yaml", lambda d: _isvc_model(d)["resources"]["limits"].update(cpu="two")),
    "isvc-unknown-protocol": ("inferenceservice.yaml", lambda d: _isvc_model(d).update(protocolVersion="v3")),
    "isvc-wrong-api-version": ("inferenceservice.yaml", lambda d: d.update(apiVersion="serving.kserve.io/v1alpha1")),
    "isvc-bad-name": ("inferenceservice.yaml", lambda d: d["metadata"].update(name="ResNet_50")),
    "isvc-bad-scale-metric": ("inferenceservice-serverless.yaml",
                              lambda d: d["spec"]["predictor"].update(scaleMetric="queue")),
    "isvc-uri-without-scheme": ("inferenceservice.yaml", lambda d: _isvc_model(d).update(storageUri="model-store")),
    "runtime-misspelt-field": ("servingruntime.yaml", lambda d: d["spec"].update(protocolVersion=["v1"])),
    "runtime-unknown-protocol": ("servingruntime.yaml", lambda d: d["spec"]["protocolVersions"].append("v3")),
    "runtime-format-without-name": ("servingruntime.yaml",
                                    lambda d: d["spec"]["supportedModelFormats"][0].pop("name")),
    "runtime-autoselect-string": ("servingruntime.yaml",
                                  lambda d: d["spec"]["supportedModelFormats"][0].update(autoSelect="yes")),
    "runtime-no-containers": ("servingruntime.yaml", lambda d: d["spec"].update(containers=[])),
    "runtime-probe-typo": ("servingruntime.yaml",
                           lambda d: _runtime_container(d)["readinessProbe"]["httpGet"].update(paht="/health")),
    "runtime-uid-string": ("servingruntime.yaml",
                           lambda d: _runtime_container(d)["securityContext"].update(runAsUser="app")),
    "runtime-pod-security-context": ("servingruntime.yaml",
                                     lambda d: d["spec"].update(securityContext={"runAsUser": 10001})),
    "cluster-runtime-wrong-kind": ("clusterservingruntime.yaml", lambda d: d.update(kind="ServingRuntime")),
    "cluster-runtime-port-string": ("clusterservingruntime.yaml",
                                    lambda d: _runtime_container(d)["ports"][0].update(containerPort="8080")),
}


@pytest.mark.parametrize("case", sorted(SCHEMA_BREAKS))
def test_kserve_schemas_reject_broken_manifests(kserve, case: str):
    name, mutate = SCHEMA_BREAKS[case]
    broken = copy.deepcopy(kserve[name])
    mutate(broken)
    assert list(kserve_validator(KSERVE_MANIFESTS[name]).iter_errors(broken))


# ------------------------------------------------------------------------------ (d) consistency checks


def test_dockerfile_facts_are_found(dockerfile):
    assert dockerfile["uid"] is not None and dockerfile["user"] is not None and dockerfile["expose"]


def test_deployment_is_consistent_with_image_and_settings(objs, dockerfile):
    assert deployment_problems(objs, dockerfile, DEFAULTS) == []


def test_kserve_runtime_is_consistent_with_the_deployment(kserve, objs):
    assert runtime_problems(kserve["servingruntime.yaml"], objs["Deployment"], DEFAULTS) == []


def test_cluster_runtime_is_the_runtime(kserve):
    runtime, cluster = kserve["servingruntime.yaml"], kserve["clusterservingruntime.yaml"]
    assert cluster["spec"] == runtime["spec"] and cluster["metadata"] == runtime["metadata"]


@pytest.mark.parametrize("name", ["inferenceservice.yaml", "inferenceservice-serverless.yaml"])
def test_inferenceservices_select_the_runtime_and_keep_the_sizing(kserve, objs, name: str):
    assert isvc_problems(kserve[name], kserve["servingruntime.yaml"], objs["HorizontalPodAutoscaler"], DEFAULTS) == []


def test_inferenceservices_select_by_format_and_by_name(kserve):
    by_format = _isvc_model(kserve["inferenceservice.yaml"])
    by_name = _isvc_model(kserve["inferenceservice-serverless.yaml"])
    assert "runtime" not in by_format and by_format["modelFormat"]["name"] == MODEL_FORMAT
    assert by_name["runtime"] == RUNTIME_NAME
    modes = {kserve[n]["metadata"]["annotations"][MODE_ANNOTATION]
             for n in ("inferenceservice.yaml", "inferenceservice-serverless.yaml")}
    assert modes == {"RawDeployment", "Serverless"}
    # The model's name in every URL is MODEL_NAME; the RawDeployment one carries it as its own name too.
    assert kserve["inferenceservice.yaml"]["metadata"]["name"] == DEFAULTS["MODEL_NAME"]


def _container(objs: dict) -> dict:
    return objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def _set_env(container: dict, name: str, value: str) -> None:
    others = [e for e in container.get("env", []) if e["name"] != name]
    container["env"] = others + [{"name": name, "value": value}]


def _drop_env(container: dict, name: str) -> None:
    container["env"] = [e for e in container.get("env", []) if e["name"] != name]


def _pod(objs: dict) -> dict:
    return objs["Deployment"]["spec"]["template"]["spec"]


def _probe(objs: dict, name: str) -> dict:
    return _container(objs)[name]


# Each case breaks one thing in a copy of the manifests; the check must name it.
DEPLOYMENT_BREAKS: dict[str, tuple[Callable[[dict], Any], str]] = {
    "threads-oversubscribe": (
        lambda o: _set_env(_container(o), "THREADS_PER_WORKER", "4"), "THREADS_PER_WORKER"),
    "two-workers": (lambda o: _set_env(_container(o), "WORKERS", "2"), "CPU limit"),
    "cpu-limit-raised": (lambda o: _container(o)["resources"]["limits"].update(cpu="4"), "CPU limit"),
    "readiness-path": (
        lambda o: _probe(o, "readinessProbe")["httpGet"].update(path="/ping"), "readinessProbe"),
    "readiness-port": (
        lambda o: _probe(o, "readinessProbe")["httpGet"].update(port=8080), "readinessProbe"),
    "liveness-tcp": (
        lambda o: _container(o).update(livenessProbe={"tcpSocket": {"port": 5000}}), "livenessProbe"),
    "metrics-allow-loopback-only": (
        lambda o: _set_env(_container(o), "METRICS_ALLOW", "127.0.0.1,::1"), "METRICS_ALLOW"),
    "metrics-allow-everyone": (
        lambda o: _set_env(_container(o), "METRICS_ALLOW", "0.0.0.0/0"), "every address"),
    "no-scrape-annotations": (
        lambda o: o["Deployment"]["spec"]["template"]["metadata"].pop("annotations"), "prometheus.io"),
    "metrics-on-the-public-port": (lambda o: _drop_env(_container(o), "METRICS_PORT"), "set METRICS_PORT"),
    "metrics-port-undeclared": (lambda o: _container(o)["ports"].pop(), "container ports"),
    "scrape-the-public-port": (
        lambda o: o["Deployment"]["spec"]["template"]["metadata"]["annotations"].update(
            {"prometheus.io/port": "5000"}), "prometheus.io"),
    "service-routes-metrics": (
        lambda o: o["Service"]["spec"]["ports"].append({"name": "metrics", "port": 9090, "targetPort": "metrics"}),
        "metrics port"),
    "hpa-cpu-only": (
        lambda o: o["HorizontalPodAutoscaler"]["spec"].update(
            metrics=[m for m in o["HorizontalPodAutoscaler"]["spec"]["metrics"] if m["type"] != "Pods"]),
        "Pods metric"),
    "hpa-unknown-gauge": (
        lambda o: o["HorizontalPodAutoscaler"]["spec"]["metrics"][0]["pods"]["metric"].update(name="inflight"),
        "Pods metric"),
    "hpa-no-cpu": (
        lambda o: o["HorizontalPodAutoscaler"]["spec"].update(
            metrics=[m for m in o["HorizontalPodAutoscaler"]["spec"]["metrics"] if m["type"] != "Resource"]),
        "CPU Resource"),
    "grpc-port-undeclared": (
        lambda o: _container(o).update(ports=[p for p in _container(o)["ports"] if p.get("name") != "grpc"]),
        "container ports"),
    "grpc-without-appprotocol": (
        lambda o: [p.pop("appProtocol", None) for p in o["Service"]["spec"]["ports"]], "appProtocol"),
    "liveness-on-health": (
        lambda o: _container(o).update(livenessProbe={"httpGet": {"path": "/health", "port": 5000}}),
        "livenessProbe"),
    "short-startup": (lambda o: _probe(o, "startupProbe").update(failureThreshold=6), "startupProbe"),
    "wrong-uid": (lambda o: _container(o)["securityContext"].update(runAsUser=1000), "runAsUser"),
    "writable-root": (
        lambda o: _container(o)["securityContext"].update(readOnlyRootFilesystem=False), "readOnly"),
    "run-dir-elsewhere": (lambda o: _set_env(_container(o), "RUN_DIR", "/var/run/resnet50"), "RUN_DIR"),
    "short-grace": (
        lambda o: _pod(o).update(terminationGracePeriodSeconds=30), "terminationGracePeriodSeconds"),
    "longer-request-timeout": (
        lambda o: _set_env(_container(o), "REQUEST_TIMEOUT", "60"), "terminationGracePeriodSeconds"),
    "service-target-port": (
        lambda o: o["Service"]["spec"]["ports"][0].update(targetPort=8080), "targetPorts"),
    "service-selector": (
        lambda o: o["Service"]["spec"].update(selector={"app": "other"}), "Service selector"),
}


@pytest.mark.parametrize("case", sorted(DEPLOYMENT_BREAKS))
def test_deployment_check_catches(objs, dockerfile, case: str):
    mutate, expected = DEPLOYMENT_BREAKS[case]
    broken = copy.deepcopy(objs)
    mutate(broken)
    problems = deployment_problems(broken, dockerfile, DEFAULTS)
    assert any(expected in p for p in problems), problems


def test_deployment_check_catches_a_different_dockerfile_user(objs, dockerfile):
    other = dict(dockerfile, uid=10002, user="10002")
    assert any("runAsUser" in p for p in deployment_problems(objs, other, DEFAULTS))


def _runtime_env(doc: dict, name: str, value: str) -> None:
    _set_env(_runtime_container(doc), name, value)


RUNTIME_BREAKS: dict[str, tuple[Callable[[dict], Any], str]] = {
    "runtime-renamed": (lambda r: r["metadata"].update(name="torchserve"), "runtime name"),
    "no-autoselect": (lambda r: r["spec"]["supportedModelFormats"][0].update(autoSelect=False), "autoSelect"),
    "claims-pytorch": (lambda r: r["spec"]["supportedModelFormats"].append({"name": "pytorch"}), "pytorch"),
    "v1-only": (lambda r: r["spec"].update(protocolVersions=["v1"]), "protocolVersions"),
    "no-grpc-v2": (lambda r: r["spec"].update(protocolVersions=["v1", "v2"]), "grpc-v2"),
    "renamed-container": (lambda r: _runtime_container(r).update(name="server"), "kserve-container"),
    "own-command": (lambda r: _runtime_container(r).update(command=["torchserve"]), "entrypoint"),
    "port-5000": (lambda r: _runtime_env(r, "PORT", "5000"), "PORT"),
    "second-port": (lambda r: _runtime_container(r)["ports"].append({"containerPort": 9090}), "one port"),
    "store-elsewhere": (lambda r: _runtime_env(r, "MODEL_STORE", "/models"), "MODEL_STORE"),
    "threads": (lambda r: _runtime_env(r, "THREADS_PER_WORKER", "4"), "THREADS_PER_WORKER"),
    "metrics-allow": (lambda r: _runtime_env(r, "METRICS_ALLOW", "127.0.0.1"), "METRICS_ALLOW"),
    "writable-root": (lambda r: _runtime_container(r)["securityContext"].update(readOnlyRootFilesystem=False),
                      "securityContext"),
    "less-memory": (lambda r: _runtime_container(r)["resources"]["limits"].update(memory="1Gi"), "resources"),
    "readiness-on-live": (lambda r: _runtime_container(r)["readinessProbe"]["httpGet"].update(path="/live"),
                          "readinessProbe"),
    "probe-port-5000": (lambda r: _runtime_container(r)["livenessProbe"]["httpGet"].update(port=5000), "livenessProbe"),
    "scrape-the-public-port": (lambda r: r["spec"]["annotations"].update({"prometheus.io/port": "8080"}), "scrape"),
    "metrics-on-8080": (lambda r: _runtime_env(r, "METRICS_PORT", "8080"), "METRICS_PORT"),
    "run-dir-on-root": (lambda r: _runtime_env(r, "RUN_DIR", "/var/run/resnet50"), "RUN_DIR"),
    "mounts-mnt-models": (lambda r: _runtime_container(r)["volumeMounts"].append({"name": "tmp",
                                                                                  "mountPath": "/mnt/models"}),
                          "KServe's storage"),
}


@pytest.mark.parametrize("case", sorted(RUNTIME_BREAKS))
def test_runtime_check_catches(kserve, objs, case: str):
    mutate, expected = RUNTIME_BREAKS[case]
    broken = copy.deepcopy(kserve["servingruntime.yaml"])
    mutate(broken)
    problems = runtime_problems(broken, objs["Deployment"], DEFAULTS)
    assert any(expected in p for p in problems), problems


ISVC_BREAKS: dict[str, tuple[str, Callable[[dict], Any], str]] = {
    "other-format": ("inferenceservice.yaml", lambda i: _isvc_model(i).update(modelFormat={"name": "pytorch"}),
                     "modelFormat"),
    "other-runtime": ("inferenceservice-serverless.yaml", lambda i: _isvc_model(i).update(runtime="kserve-torchserve"),
                      "runtime"),
    "no-grpc-port": ("inferenceservice.yaml", lambda i: _isvc_model(i).update(ports=_isvc_model(i)["ports"][:1]),
                     "gRPC port"),
    "no-storage": ("inferenceservice.yaml", lambda i: _isvc_model(i).pop("storageUri"), "storageUri"),
    "threads": ("inferenceservice.yaml", lambda i: _set_env(_isvc_model(i), "THREADS_PER_WORKER", "4"), "CPU limit"),
    "less-cpu": ("inferenceservice-serverless.yaml",
                 lambda i: _isvc_model(i)["resources"]["limits"].update(cpu="1"), "CPU limit"),
    "resources": ("inferenceservice.yaml", lambda i: _isvc_model(i)["resources"]["requests"].update(memory="1Gi"),
                  "resources"),
    "no-mode": ("inferenceservice.yaml", lambda i: i["metadata"]["annotations"].pop(MODE_ANNOTATION), "deploymentMode"),
    "scale-to-zero": ("inferenceservice-serverless.yaml", lambda i: i["spec"]["predictor"].update(minReplicas=0),
                      "minReplicas"),
    "serverless-prestop": ("inferenceservice-serverless.yaml",
                           lambda i: _isvc_model(i).update(lifecycle={"preStop": {"exec": {"command": ["sleep", "5"]}}}),
                           "Knative refuses"),
    "serverless-target": ("inferenceservice-serverless.yaml", lambda i: i["spec"]["predictor"].update(scaleTarget=100),
                          "concurrency"),
    "short-grace": ("inferenceservice.yaml", lambda i: i["spec"]["predictor"].update(terminationGracePeriodSeconds=30),
                    "terminationGracePeriodSeconds"),
    "raw-scaling": ("inferenceservice.yaml", lambda i: i["spec"]["predictor"].update(scaleTarget=90), "cpu at"),
    "raw-replicas": ("inferenceservice.yaml", lambda i: i["spec"]["predictor"].update(maxReplicas=3), "maxReplicas"),
}


@pytest.mark.parametrize("case", sorted(ISVC_BREAKS))
def test_isvc_check_catches(kserve, objs, case: str):
    name, mutate, expected = ISVC_BREAKS[case]
    broken = copy.deepcopy(kserve[name])
    mutate(broken)
    problems = isvc_problems(broken, kserve["servingruntime.yaml"], objs["HorizontalPodAutoscaler"], DEFAULTS)
    assert any(expected in p for p in problems), problems


# ------------------------------------------------------------------------ (e) prometheus-adapter rule


@pytest.fixture(scope="module")
def adapter_rules() -> dict:
    return load_one(ADAPTER_RULES)


def test_adapter_rules_validate_strictly(adapter_rules):
    kubernetes_validate.validate(adapter_rules, KUBERNETES_VERSION, strict=True)


def test_adapter_rule_serves_the_hpas_metric(adapter_rules, objs):
    assert exported_gauges() >= {"resnet50_queue_depth"}
    assert adapter_problems(adapter_rules, objs["HorizontalPodAutoscaler"]) == []


@pytest.mark.parametrize("edit, expected", [
    (lambda c: c["rules"][0]["name"].update({"as": "other", "matches": "^other$"}), "no prometheus-adapter rule"),
    (lambda c: c["rules"][0].update(seriesQuery='resnet50_inflight{namespace!="",pod!=""}'), "does not export"),
    (lambda c: c["rules"][0]["resources"]["overrides"].pop("pod"), "namespace and pod"),
    (lambda c: c["rules"][0].update(metricsQuery="sum(<<.Series>>)"), "GroupBy"),
])
def test_adapter_check_catches(adapter_rules, objs, edit, expected):
    broken = copy.deepcopy(adapter_rules)
    config = yaml.safe_load(broken["data"]["config.yaml"])
    edit(config)
    broken["data"]["config.yaml"] = yaml.safe_dump(config)
    assert any(expected in p for p in adapter_problems(broken, objs["HorizontalPodAutoscaler"]))

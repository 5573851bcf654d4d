"""Offline checks of deploy/: YAML lint, schemas, and consistency with the image and the settings.

No cluster and no network: the Kubernetes objects are validated with kubernetes-validate's bundled
schemas (strict: unknown fields are errors), the KServe InferenceService with a subset of KServe's CRD
schema kept in tests/fixtures/kserve_inferenceservice_schema.json, and the consistency checks read the
Dockerfile and scripts/service/settings.py. Each consistency check is also run against a deliberately broken
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
KSERVE_SCHEMA = REPO_ROOT / "tests" / "fixtures" / "kserve_inferenceservice_schema.json"
KSERVE_PROPERTIES = KSERVE_DIR / "config" / "config.properties"
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


def parse_properties(text: str) -> dict[str, str]:
    """key=value lines of a Java .properties file as TorchServe reads them (no continuations used here)."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#!":
            continue
        key, sep, value = stripped.partition("=")
        # Java ends the key at the first '=', ':' or blank: a key with one of those would be read differently.
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.]+", key):
            raise ValueError(f"line {number}: not a plain key=value line: {line!r}")
        if key in values:
            raise ValueError(f"line {number}: duplicate key {key!r}")
        values[key] = value.strip()
    return values


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
    expected_ports = [port] if metrics_port is None else [port, metrics_port]
    container_ports = [p["containerPort"] for p in container.get("ports", [])]
    if container_ports != expected_ports:
        problems.append(f"container ports {container_ports} != PORT and METRICS_PORT {expected_ports}")
    if port not in dockerfile["expose"]:
        problems.append(f"Dockerfile EXPOSE {sorted(dockerfile['expose'])} lacks PORT {port}")
    target_ports = [probe_port({"port": p["targetPort"]}, container) for p in service["spec"]["ports"]]
    if target_ports != [port]:
        problems.append(f"Service targetPorts {target_ports} != [{port}]")
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


KSERVE_MODEL_STORE = "/mnt/models/model-store"
KSERVE_PREDICTOR_PORT = 8080  # KServe's own model server in the predictor container


def kserve_problems(isvc: dict, properties: dict[str, str], deployment: dict,
                    defaults: dict[str, str]) -> list[str]:
    """What makes deploy/kserve disagree with the settings, KServe's layout or deploy/kubernetes."""
    problems: list[str] = []
    name, version = defaults["MODEL_NAME"], defaults["MODEL_VERSION"]
    model = isvc["spec"]["predictor"]["model"]
    env = env_of(model)

    try:
        snapshot = json.loads(properties.get("model_snapshot", ""))
    except json.JSONDecodeError as exc:
        return [f"model_snapshot is not valid JSON: {exc}"]
    models = snapshot.get("models", {})
    if list(models) != [name]:
        problems.append(f"model_snapshot registers {list(models)}, not [{name!r}] (MODEL_NAME)")
    if snapshot.get("modelCount") != len(models):
        problems.append(f"modelCount {snapshot.get('modelCount')} != {len(models)} models")
    entry = models.get(name, {}).get(version)
    if entry is None:
        problems.append(f"model_snapshot has no version {version!r} (MODEL_VERSION) of {name!r}")
        entry = {}
    if entry and entry.get("marName") != f"{name}.mar":
        problems.append(f"marName {entry.get('marName')!r} != {name}.mar (what scripts/archive/build_mar.py writes)")
    if entry and entry.get("defaultVersion") is not True:
        problems.append("the model version is not defaultVersion")
    workers = int(env.get("WORKERS", defaults["WORKERS"]))
    threads = int(env.get("THREADS_PER_WORKER", defaults["THREADS_PER_WORKER"]))
    if entry and not entry.get("minWorkers") == entry.get("maxWorkers") == workers:
        problems.append(f"minWorkers/maxWorkers {entry.get('minWorkers')}/{entry.get('maxWorkers')}"
                        f" != WORKERS {workers}")
    if entry and entry.get("responseTimeout", 0) < int(defaults["REQUEST_TIMEOUT"]):
        problems.append(f"responseTimeout {entry.get('responseTimeout')}"
                        f" < REQUEST_TIMEOUT {defaults['REQUEST_TIMEOUT']}")

    # KServe's layout and envelope.
    if properties.get("model_store") != KSERVE_MODEL_STORE:
        problems.append(f"model_store {properties.get('model_store')!r} != {KSERVE_MODEL_STORE}")
    for key in ("inference_address", "management_address"):
        if properties.get(key, "").rstrip("/").endswith(f":{KSERVE_PREDICTOR_PORT}"):
            problems.append(f"{key} uses {KSERVE_PREDICTOR_PORT}, the port of KServe's own model server")
    if properties.get("enable_envvars_config") != "true":
        problems.append("enable_envvars_config must be true (KServe sets TS_SERVICE_ENVELOPE)")
    if properties.get("install_py_dep_per_model") != "false":
        problems.append("install_py_dep_per_model must be false")
    if properties.get("job_queue_size") != defaults["JOB_QUEUE_SIZE"]:
        problems.append(f"job_queue_size {properties.get('job_queue_size')}"
                        f" != JOB_QUEUE_SIZE {defaults['JOB_QUEUE_SIZE']}")

    # The InferenceService: the model's name in the URL, sized like the Deployment.
    if isvc["metadata"]["name"] != name:
        problems.append(f"InferenceService {isvc['metadata']['name']!r} != model {name!r}")
    if model.get("modelFormat", {}).get("name") != "pytorch" or model.get("protocolVersion") != "v1":
        problems.append("predictor must be modelFormat pytorch with protocolVersion v1")
    limits = model.get("resources", {}).get("limits", {})
    if workers * threads != cpu_cores(limits.get("cpu", 0)):
        problems.append(f"WORKERS {workers} x THREADS_PER_WORKER {threads} != CPU limit {limits.get('cpu')}")
    deployment_resources = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
    if model.get("resources") != deployment_resources:
        problems.append(f"resources {model.get('resources')} differ from the Deployment's"
                        f" {deployment_resources}")
    return problems


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def objs() -> dict[str, dict]:
    return k8s_objects()


@pytest.fixture(scope="module")
def dockerfile() -> dict[str, Any]:
    return dockerfile_facts(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def isvc() -> dict:
    return load_one(KSERVE_DIR / "inferenceservice.yaml")


@pytest.fixture(scope="module")
def properties() -> dict[str, str]:
    return parse_properties(KSERVE_PROPERTIES.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def kserve_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(KSERVE_SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


# ------------------------------------------------------------------------- (a) parse and lint the YAML


def test_expected_files_exist():
    expected = {"kubernetes/deployment.yaml", "kubernetes/service.yaml", "kubernetes/hpa.yaml",
                "kubernetes/prometheus-adapter/rules.yaml",
                "kubernetes/pdb.yaml", "kubernetes/kustomization.yaml", "kserve/inferenceservice.yaml"}
    assert expected <= {str(p.relative_to(DEPLOY)) for p in YAML_FILES}
    assert KSERVE_PROPERTIES.is_file() and YAMLLINT_CONFIG.is_file() and KSERVE_SCHEMA.is_file()


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


# --------------------------------------------------------------------- (c) KServe InferenceService schema


def test_inferenceservice_matches_kserve_schema(kserve_validator, isvc):
    errors = sorted(kserve_validator.iter_errors(isvc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["spec"]["predictor"]["model"].update(modelFromat={"name": "pytorch"}),
        lambda d: d["spec"]["predictor"]["model"]["modelFormat"].pop("name"),
        lambda d: d["spec"]["predictor"].update(minReplica=2),
        lambda d: d["spec"]["predictor"]["model"]["resources"]["limits"].update(cpu="two"),
        lambda d: d["spec"]["predictor"]["model"].update(protocolVersion="v3"),
        lambda d: d.update(apiVersion="serving.kserve.io/v1alpha1"),
        lambda d: d["metadata"].update(name="ResNet_50"),
    ],
    ids=["misspelt-model-field", "modelformat-without-name", "misspelt-predictor-field", "bad-quantity",
         "unknown-protocol", "wrong-api-version", "bad-name"],
)
def test_kserve_schema_rejects_broken_inferenceservice(kserve_validator, isvc, mutate: Callable[[dict], Any]):
    broken = copy.deepcopy(isvc)
    mutate(broken)
    assert list(kserve_validator.iter_errors(broken))


# ------------------------------------------------------------------------------ (d) consistency checks


def test_dockerfile_facts_are_found(dockerfile):
    assert dockerfile["uid"] is not None and dockerfile["user"] is not None and dockerfile["expose"]


def test_deployment_is_consistent_with_image_and_settings(objs, dockerfile):
    assert deployment_problems(objs, dockerfile, DEFAULTS) == []


def test_kserve_config_is_consistent_with_settings(isvc, properties, objs):
    assert kserve_problems(isvc, properties, objs["Deployment"], DEFAULTS) == []


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


def _snapshot_edit(edit: Callable[[dict], Any]) -> Callable[[dict, dict], Any]:
    def apply(isvc_doc: dict, props: dict) -> None:
        snapshot = json.loads(props["model_snapshot"])
        edit(snapshot)
        props["model_snapshot"] = json.dumps(snapshot)
    return apply


def _isvc_env(isvc_doc: dict, name: str, value: str) -> None:
    _set_env(isvc_doc["spec"]["predictor"]["model"], name, value)


def _snapshot_entry(snapshot: dict) -> dict:
    return snapshot["models"]["resnet50"]["1.0"]


def _isvc_model(isvc_doc: dict) -> dict:
    return isvc_doc["spec"]["predictor"]["model"]


KSERVE_BREAKS: dict[str, tuple[Callable[[dict, dict], Any], str]] = {
    "renamed-model": (
        _snapshot_edit(lambda s: s.update(models={"resnet": s["models"]["resnet50"]})), "MODEL_NAME"),
    "other-version": (
        _snapshot_edit(lambda s: s["models"]["resnet50"].update({"2.0": s["models"]["resnet50"].pop("1.0")})),
        "MODEL_VERSION"),
    "mar-name": (_snapshot_edit(lambda s: _snapshot_entry(s).update(marName="model.mar")), "marName"),
    "workers": (_snapshot_edit(lambda s: _snapshot_entry(s).update(maxWorkers=2)), "WORKERS"),
    "snapshot-not-json": (lambda i, p: p.update(model_snapshot="{'models': {}}"), "not valid JSON"),
    "model-store": (lambda i, p: p.update(model_store="/mnt/models"), "model_store"),
    "port-8080": (lambda i, p: p.update(inference_address="http://0.0.0.0:8080"), "8080"),
    "envvars-off": (lambda i, p: p.update(enable_envvars_config="false"), "enable_envvars_config"),
    "isvc-threads": (lambda i, p: _isvc_env(i, "THREADS_PER_WORKER", "4"), "CPU limit"),
    "isvc-resources": (
        lambda i, p: _isvc_model(i)["resources"]["requests"].update(memory="1Gi"),
        "differ from the Deployment"),
    "isvc-name": (lambda i, p: i["metadata"].update(name="classifier"), "InferenceService"),
}


@pytest.mark.parametrize("case", sorted(KSERVE_BREAKS))
def test_kserve_check_catches(isvc, properties, objs, case: str):
    mutate, expected = KSERVE_BREAKS[case]
    broken_isvc, broken_props = copy.deepcopy(isvc), dict(properties)
    mutate(broken_isvc, broken_props)
    problems = kserve_problems(broken_isvc, broken_props, objs["Deployment"], DEFAULTS)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("line", ["inference_address: http://0.0.0.0:8085", "a=1\na=2", "bad key=1"])
def test_properties_parser_refuses_ambiguous_lines(line: str):
    with pytest.raises(ValueError):
        parse_properties(line)


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

"""The pod KServe makes from a ServingRuntime and an InferenceService, and that pod for `podman kube play`.

Pure functions, no cluster and no podman; tested in tests/unit/test_kserve_pod.py, run by
scripts/container/kserve_play.py. What KServe's controller and webhook do that matters here (kserve/kserve
pkg/controller/v1beta1/inferenceservice, pkg/webhook/admission/pod/storage_initializer_injector.go):

- the predictor container is the runtime's ``kserve-container`` with the InferenceService's
  ``spec.predictor.model`` merged over it as a strategic merge patch (MergeRuntimeContainers): env entries
  by name, resources per key, other fields replaced; args appended; the model-only fields (modelFormat,
  runtime, protocolVersion, storageUri, ...) are not container fields;
- the pod spec is the runtime's pod fields (volumes, nodeSelector, ...) with the predictor's pod fields
  merged over them (MergePodSpec): securityContext, terminationGracePeriodSeconds, ...;
- labels and annotations: the runtime's, then the InferenceService's (and KServe's own labels);
- the storageUri at /mnt/models, read-only (storage.kserve.io/readonly defaults to true): a pvc:// URI
  mounts the claim there (volume kserve-pvc-source, its path as subPath); any other URI gets the
  storage-initializer init container downloading into the emptyDir kserve-provision-location.

Placeholders such as ``{{.Name}}`` (ReplacePlaceholders) are refused: this runtime uses none.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from scripts import REPO_ROOT
from scripts.container.kube_pod import LOOPBACK

KSERVE_DIR = REPO_ROOT / "deploy" / "kserve"
RUNTIME = KSERVE_DIR / "servingruntime.yaml"
INFERENCE_SERVICE = KSERVE_DIR / "inferenceservice.yaml"
KSERVE_CONTAINER = "kserve-container"
MODEL_MOUNT = "/mnt/models"
PROVISION_VOLUME = "kserve-provision-location"
PVC_VOLUME = "kserve-pvc-source"
STORAGE_INITIALIZER = "storage-initializer"
# KServe's default (inferenceservice-config ConfigMap); only named, never run here.
STORAGE_INITIALIZER_IMAGE = "kserve/storage-initializer:latest"
ISVC_LABEL = "serving.kserve.io/inferenceservice"
COMPONENT_LABEL = "component"
# spec.predictor.model fields that describe the model, not the container.
MODEL_ONLY_FIELDS = ("modelFormat", "runtime", "runtimeVersion", "protocolVersion", "storageUri", "storage")
# spec.predictor fields that configure KServe (replicas, scaling, canary), not the pod.
PREDICTOR_ONLY_FIELDS = ("model", "minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "canaryTrafficPercent",
                         "containerConcurrency", "timeout", "logger", "batcher", "autoScaling", "deploymentStrategy",
                         "labels", "annotations", "workerSpec", "containers", "initContainers")
POD_FIELDS_FROM_RUNTIME = ("volumes", "nodeSelector", "affinity", "tolerations", "imagePullSecrets", "schedulerName")
MERGE_KEYS = {"env": "name", "volumeMounts": "mountPath", "ports": "containerPort", "volumes": "name"}


def load_one(path: Path, kind: str) -> dict:
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    if len(docs) != 1 or docs[0].get("kind") != kind:
        raise ValueError(f"{path}: expected one {kind}")
    return docs[0]


def _merge_list(base: list, patch: list, key: str) -> list:
    """A strategic merge of two lists of objects keyed by ``key``: patched entries replaced field by field."""
    merged = [copy.deepcopy(item) for item in base]
    for item in patch:
        match = next((m for m in merged if m.get(key) == item.get(key)), None)
        if match is None:
            merged.append(copy.deepcopy(item))
        else:
            match.update(copy.deepcopy(item))
    return merged


def merge_container(runtime_container: dict, model: dict) -> dict:
    """KServe's MergeRuntimeContainers: the InferenceService's container fields over the runtime's."""
    merged = copy.deepcopy(runtime_container)
    for field, value in model.items():
        if field in MODEL_ONLY_FIELDS:
            continue
        if field == "args":
            merged["args"] = [*runtime_container.get("args", []), *value]
        elif field in MERGE_KEYS and isinstance(value, list):
            merged[field] = _merge_list(runtime_container.get(field, []), value, MERGE_KEYS[field])
        elif field == "resources":
            resources = copy.deepcopy(runtime_container.get("resources", {}))
            for part, quantities in value.items():
                resources[part] = {**resources.get(part, {}), **quantities}
            merged["resources"] = resources
        else:
            merged[field] = copy.deepcopy(value)
    merged["name"] = runtime_container["name"]
    return merged


def _storage(uri: str) -> tuple[dict, dict, dict | None]:
    """(volume, the kserve-container's mount, the init container or None) for a storageUri."""
    mount = {"name": PROVISION_VOLUME, "mountPath": MODEL_MOUNT, "readOnly": True}
    if uri.startswith("pvc://"):
        claim, _, sub_path = uri.removeprefix("pvc://").partition("/")
        volume = {"name": PVC_VOLUME, "persistentVolumeClaim": {"claimName": claim}}
        mount = {**mount, "name": PVC_VOLUME}
        if sub_path:
            mount["subPath"] = sub_path
        return volume, mount, None
    init = {"name": STORAGE_INITIALIZER, "image": STORAGE_INITIALIZER_IMAGE, "args": [uri, MODEL_MOUNT],
            "volumeMounts": [{"name": PROVISION_VOLUME, "mountPath": MODEL_MOUNT}]}
    return {"name": PROVISION_VOLUME, "emptyDir": {}}, mount, init


def kserve_pod(runtime: dict, isvc: dict) -> dict:
    """The predictor pod KServe would create for ``isvc`` on ``runtime`` (a ServingRuntime or ClusterServingRuntime)."""
    if runtime.get("kind") not in ("ServingRuntime", "ClusterServingRuntime"):
        raise ValueError(f"expected a ServingRuntime, got {runtime.get('kind')!r}")
    if isvc.get("kind") != "InferenceService":
        raise ValueError(f"expected an InferenceService, got {isvc.get('kind')!r}")
    if "{{" in yaml.safe_dump(runtime["spec"]):
        raise ValueError("the runtime uses KServe placeholders ({{...}}), which this rendering does not fill in")
    spec = runtime["spec"]
    predictor = isvc["spec"]["predictor"]
    model = predictor["model"]
    named = [c for c in spec["containers"] if c["name"] == KSERVE_CONTAINER]
    container = merge_container((named or spec["containers"])[0], model)
    pod_spec: dict = {key: copy.deepcopy(spec[key]) for key in POD_FIELDS_FROM_RUNTIME if key in spec}
    for key, value in predictor.items():
        if key in PREDICTOR_ONLY_FIELDS:
            continue
        pod_spec[key] = (_merge_list(pod_spec.get(key, []), value, MERGE_KEYS[key])
                         if key in MERGE_KEYS else copy.deepcopy(value))
    if model.get("storageUri"):
        volume, mount, init = _storage(model["storageUri"])
        pod_spec["volumes"] = [*pod_spec.get("volumes", []), volume]
        container["volumeMounts"] = [*container.get("volumeMounts", []), mount]
        if init is not None:
            pod_spec["initContainers"] = [init]
    others = [copy.deepcopy(c) for c in spec["containers"] if c is not (named or spec["containers"])[0]]
    pod_spec["containers"] = [container, *others]
    name = isvc["metadata"]["name"]
    labels = {**(spec.get("labels") or {}), **(isvc["metadata"].get("labels") or {}),
              ISVC_LABEL: name, COMPONENT_LABEL: "predictor"}
    annotations = {**(spec.get("annotations") or {}), **(isvc["metadata"].get("annotations") or {})}
    metadata = {"name": f"{name}-predictor", "labels": labels}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def env_value(container: dict, name: str) -> str | None:
    return next((e.get("value") for e in container.get("env", []) if e["name"] == name), None)


def for_kube_play(pod: dict, image: str, model_dir: Path, host_ports: dict[int, int]) -> dict:
    """The KServe pod as `podman kube play` can run it, with as few changes as possible:

    - the model volume becomes a hostPath of ``model_dir`` (what the storage initializer would have
      downloaded, or what the claim holds), still mounted read-only at /mnt/models; the
      storage-initializer init container goes (its image is not here, its work is done);
    - the image is the local one, never pulled; containerPort -> hostPort on 127.0.0.1 (host_ports);
    - METRICS_PORT gets a ports entry too, so podman publishes it (the kubelet needs no declaration
      to reach a pod-IP scrape target; podman does)."""
    played = copy.deepcopy(pod)
    spec = played["spec"]
    spec.pop("initContainers", None)
    for volume in spec.get("volumes", []):
        if volume["name"] in (PROVISION_VOLUME, PVC_VOLUME):
            for key in ("emptyDir", "persistentVolumeClaim"):
                volume.pop(key, None)
            volume["hostPath"] = {"path": str(model_dir), "type": "Directory"}
    container = spec["containers"][0]
    for mount in container.get("volumeMounts", []):
        if mount["name"] in (PROVISION_VOLUME, PVC_VOLUME):
            mount.pop("subPath", None)
    container["image"] = image
    container["imagePullPolicy"] = "Never"
    metrics_port = env_value(container, "METRICS_PORT")
    ports = container.setdefault("ports", [])
    if metrics_port and all(p["containerPort"] != int(metrics_port) for p in ports):
        ports.append({"name": "metrics", "containerPort": int(metrics_port), "protocol": "TCP"})
    missing = [p["containerPort"] for p in ports if p["containerPort"] not in host_ports]
    if missing:
        raise ValueError(f"no host port given for {missing}")
    for port in ports:
        port["hostPort"] = int(host_ports[port["containerPort"]])
        port["hostIP"] = LOOPBACK
    played["metadata"]["name"] = f"{played['metadata']['name']}-kube-play"
    return played


def played_ports(pod: dict) -> list[int]:
    """The container ports for_kube_play publishes: the declared ones plus METRICS_PORT."""
    container = pod["spec"]["containers"][0]
    ports = [p["containerPort"] for p in container.get("ports", [])]
    metrics_port = env_value(container, "METRICS_PORT")
    if metrics_port and int(metrics_port) not in ports:
        ports.append(int(metrics_port))
    return ports

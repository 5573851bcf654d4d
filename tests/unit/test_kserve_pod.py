"""scripts/container/kserve_pod.py: the pod KServe makes from deploy/kserve's runtime and InferenceServices,
and that pod for `podman kube play`. The RawDeployment pod must give what deploy/kubernetes' Deployment
gives (same securityContext, probes, resources, env, grace period, metrics); the Serverless one must stay
inside what Knative accepts."""

from __future__ import annotations

import copy
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from scripts import REPO_ROOT
from scripts.container.kserve_pod import (
    INFERENCE_SERVICE,
    ISVC_LABEL,
    KSERVE_CONTAINER,
    KSERVE_DIR,
    MODEL_MOUNT,
    PROVISION_VOLUME,
    PVC_VOLUME,
    RUNTIME,
    STORAGE_INITIALIZER,
    env_value,
    for_kube_play,
    kserve_pod,
    load_one,
    merge_container,
    played_ports,
)
from handler.settings_table import BY_NAME
from scripts.container.kube_pod import load_deployment

KUBERNETES_VERSION = "1.29.0"
KSERVE_PORT = 8080
GRPC_PORT = int(BY_NAME["GRPC_PORT"].default)  # the runtime's grpc-v2, declared by the RawDeployment InferenceService
# What a pod differs in from the Deployment's, by design: its port, where the model comes from, KServe's
# storage volume and labels.
PORT_ENV = {"PORT", "MODEL_STORE"}
# Container fields Knative Serving refuses (its allowed-fields list) and pod fields it does not take.
KNATIVE_REFUSED_CONTAINER_FIELDS = {"lifecycle"}


@pytest.fixture(scope="module")
def runtime() -> dict:
    return load_one(RUNTIME, "ServingRuntime")


@pytest.fixture(scope="module")
def raw_isvc() -> dict:
    return load_one(INFERENCE_SERVICE, "InferenceService")


@pytest.fixture(scope="module")
def serverless_isvc() -> dict:
    return load_one(KSERVE_DIR / "inferenceservice-serverless.yaml", "InferenceService")


@pytest.fixture(scope="module")
def deployment_pod() -> dict:
    return load_deployment()["spec"]["template"]


def probe_without_port(probe: dict) -> dict:
    probe = copy.deepcopy(probe)
    probe["httpGet"].pop("port")
    return probe


def test_pod_is_the_runtime_container_with_the_inferenceservice_merged_in(runtime, raw_isvc):
    pod = kserve_pod(runtime, raw_isvc)
    (container,) = pod["spec"]["containers"]
    assert container["name"] == KSERVE_CONTAINER
    assert container["image"] == runtime["spec"]["containers"][0]["image"]
    assert [p["containerPort"] for p in container["ports"]] == [KSERVE_PORT, GRPC_PORT]
    assert env_value(container, "PORT") == str(KSERVE_PORT) and env_value(container, "MODEL_STORE") == MODEL_MOUNT
    model = raw_isvc["spec"]["predictor"]["model"]
    for entry in model["env"]:
        assert env_value(container, entry["name"]) == entry["value"]
    assert container["resources"] == model["resources"]
    assert container["lifecycle"] == model["lifecycle"]
    assert not set(container) & {"modelFormat", "protocolVersion", "storageUri", "runtime"}
    assert pod["metadata"]["labels"][ISVC_LABEL] == raw_isvc["metadata"]["name"]
    assert pod["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"


def test_model_storage_is_mounted_read_only(runtime, raw_isvc):
    pod = kserve_pod(runtime, raw_isvc)
    mount = next(m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["mountPath"] == MODEL_MOUNT)
    assert mount["readOnly"] is True
    claim, _, path = raw_isvc["spec"]["predictor"]["model"]["storageUri"].removeprefix("pvc://").partition("/")
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
    assert (mount["name"], volume["persistentVolumeClaim"]["claimName"], mount["subPath"]) == (PVC_VOLUME, claim, path)
    assert "initContainers" not in pod["spec"]  # a claim is mounted, not downloaded

    s3 = copy.deepcopy(raw_isvc)
    s3["spec"]["predictor"]["model"]["storageUri"] = "s3://bucket/resnet50"
    pod = kserve_pod(runtime, s3)
    (init,) = pod["spec"]["initContainers"]
    assert init["name"] == STORAGE_INITIALIZER and init["args"] == ["s3://bucket/resnet50", MODEL_MOUNT]
    mount = next(m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["mountPath"] == MODEL_MOUNT)
    assert mount == {"name": PROVISION_VOLUME, "mountPath": MODEL_MOUNT, "readOnly": True}
    assert {"name": PROVISION_VOLUME, "emptyDir": {}} in pod["spec"]["volumes"]


def test_raw_deployment_pod_gives_what_the_deployment_gives(runtime, raw_isvc, deployment_pod):
    pod = kserve_pod(runtime, raw_isvc)
    ours, theirs = pod["spec"]["containers"][0], deployment_pod["spec"]["containers"][0]
    assert ours["securityContext"] == theirs["securityContext"]
    assert ours["resources"] == theirs["resources"]
    assert ours["lifecycle"] == theirs["lifecycle"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert probe_without_port(ours[probe]) == probe_without_port(theirs[probe])
        assert ours[probe]["httpGet"]["port"] == KSERVE_PORT
    env = {e["name"]: e["value"] for e in ours["env"]}
    their_env = {e["name"]: e["value"] for e in theirs["env"]}
    assert {k: v for k, v in env.items() if k not in PORT_ENV} == their_env
    for key in ("securityContext", "terminationGracePeriodSeconds", "automountServiceAccountToken"):
        assert pod["spec"][key] == deployment_pod["spec"][key], key
    assert [v for v in pod["spec"]["volumes"] if v["name"] == "tmp"] == deployment_pod["spec"]["volumes"]
    prometheus = {k: v for k, v in deployment_pod["metadata"]["annotations"].items() if k.startswith("prometheus.io/")}
    assert prometheus.items() <= pod["metadata"]["annotations"].items()


def test_serverless_pod_stays_inside_what_knative_accepts(runtime, serverless_isvc):
    pod = kserve_pod(runtime, serverless_isvc)
    (container,) = pod["spec"]["containers"]
    assert len(container["ports"]) == 1 and container["ports"][0]["name"] in ("http1", "h2c")
    assert not KNATIVE_REFUSED_CONTAINER_FIELDS & set(container)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == container["ports"][0]["containerPort"]
    assert pod["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"


@pytest.mark.parametrize("name", ["inferenceservice.yaml", "inferenceservice-serverless.yaml"])
def test_rendered_pods_pass_strict_kubernetes_validation(runtime, name, tmp_path):
    pod = kserve_pod(runtime, load_one(KSERVE_DIR / name, "InferenceService"))
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    played = for_kube_play(pod, "localhost/resnet50-serve:smoke", tmp_path,
                           {port: 40000 + i for i, port in enumerate(played_ports(pod))})
    kubernetes_validate.validate(played, KUBERNETES_VERSION, strict=True)


def test_merge_follows_kserves_strategic_merge():
    runtime_container = {"name": KSERVE_CONTAINER, "image": "a", "args": ["--x"],
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                         "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}
    model = {"modelFormat": {"name": "f"}, "storageUri": "pvc://c/p", "args": ["--y"],
             "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
             "resources": {"limits": {"cpu": "2"}, "requests": {"cpu": "2"}}, "image": "b"}
    merged = merge_container(runtime_container, model)
    assert merged["args"] == ["--x", "--y"]
    assert merged["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}]
    assert merged["resources"] == {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "2"}}
    assert merged["image"] == "b" and merged["name"] == KSERVE_CONTAINER
    assert "modelFormat" not in merged and "storageUri" not in merged
    assert runtime_container["env"][1]["value"] == "2"  # inputs untouched


def test_placeholders_and_wrong_kinds_are_refused(runtime, raw_isvc):
    templated = copy.deepcopy(runtime)
    templated["spec"]["containers"][0]["args"] = ["--model_name={{.Name}}"]
    with pytest.raises(ValueError, match="placeholders"):
        kserve_pod(templated, raw_isvc)
    with pytest.raises(ValueError, match="ServingRuntime"):
        kserve_pod(raw_isvc, raw_isvc)
    with pytest.raises(ValueError, match="InferenceService"):
        kserve_pod(runtime, runtime)


def test_for_kube_play_mounts_a_host_directory_read_only(runtime, raw_isvc, tmp_path):
    pod = kserve_pod(runtime, raw_isvc)
    ports = played_ports(pod)
    container = pod["spec"]["containers"][0]
    metrics_port = int(env_value(container, "METRICS_PORT"))
    assert ports == [KSERVE_PORT, GRPC_PORT, metrics_port]
    played = for_kube_play(pod, "localhost/img:tag", tmp_path,
                           {KSERVE_PORT: 41000, GRPC_PORT: 41002, metrics_port: 41001})
    spec = played["spec"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == PVC_VOLUME]
    assert volume == {"name": PVC_VOLUME, "hostPath": {"path": str(tmp_path), "type": "Directory"}}
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["mountPath"] == MODEL_MOUNT)
    assert mount == {"name": PVC_VOLUME, "mountPath": MODEL_MOUNT, "readOnly": True}
    (played_container,) = spec["containers"]
    assert (played_container["image"], played_container["imagePullPolicy"]) == ("localhost/img:tag", "Never")
    assert [(p["containerPort"], p["hostPort"], p["hostIP"]) for p in played_container["ports"]] == [
        (KSERVE_PORT, 41000, "127.0.0.1"), (GRPC_PORT, 41002, "127.0.0.1"), (metrics_port, 41001, "127.0.0.1")]
    assert "initContainers" not in spec
    # Everything else as KServe makes it.
    for key in ("securityContext", "startupProbe", "readinessProbe", "livenessProbe", "env", "resources", "lifecycle"):
        assert played_container[key] == container[key], key
    assert pod["spec"]["containers"][0]["image"] != "localhost/img:tag"  # the input is untouched
    with pytest.raises(ValueError, match="no host port"):
        for_kube_play(pod, "localhost/img:tag", tmp_path, {KSERVE_PORT: 41000})


def test_the_cluster_runtime_makes_the_same_pod(runtime, raw_isvc):
    cluster = load_one(KSERVE_DIR / "clusterservingruntime.yaml", "ClusterServingRuntime")
    assert kserve_pod(cluster, raw_isvc) == kserve_pod(runtime, raw_isvc)


def test_module_paths_point_at_the_manifests():
    assert RUNTIME.is_file() and INFERENCE_SERVICE.is_file()
    assert Path(KSERVE_DIR).relative_to(REPO_ROOT) == Path("deploy/kserve")
    assert yaml.safe_load(RUNTIME.read_text())["metadata"]["name"] == "resnet50-torchserve"

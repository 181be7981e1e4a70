"""The Kubernetes manifests agree with ferry: settings names, port, probe paths, drain time, mounts."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DEFAULT_DRAIN, DEFAULT_PORT, DEPLOY, ROOT, SETTINGS_ENV

K8S = DEPLOY / "kubernetes"


def documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def one(kind: str, name: str = "ferry") -> dict[str, Any]:
    found = [doc for doc in documents() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


@pytest.fixture
def pod() -> dict[str, Any]:
    spec: dict[str, Any] = one("Deployment")["spec"]["template"]["spec"]
    return spec


@pytest.fixture
def container(pod: dict[str, Any]) -> dict[str, Any]:
    (ferry,) = pod["containers"]
    return dict(ferry)


def environment() -> dict[str, str]:
    """What the pod's environment holds: the ConfigMap, plus the Secret's keys."""
    return {**one("ConfigMap")["data"], **one("Secret")["stringData"]}


def test_every_manifest_parses_and_is_listed() -> None:
    """Each file is YAML with apiVersion, kind and metadata; kustomization lists all but the example Secret."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    for path in K8S.glob("*.yaml"):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), path.name
            if doc["kind"] != "Namespace":
                assert doc["metadata"]["namespace"] == "ferry", path.name
        assert (path.name in listed) != (path.name == "secret.example.yaml"), path.name


def test_environment_names_are_settings_ferry_reads(container: dict[str, Any]) -> None:
    """Every FERRY_* name the pod gets is a real setting; the Secret carries the database URL and tokens."""
    names = set(environment()) | {entry["name"] for entry in container.get("env", [])}
    assert names <= SETTINGS_ENV, names - SETTINGS_ENV
    assert set(one("Secret")["stringData"]) == {"FERRY_DATABASE_URL", "FERRY_TOKENS"}
    refs = {next(iter(ref)): next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert refs == {"configMapRef": "ferry", "secretRef": "ferry"}
    assert environment()["FERRY_HOST"] == "0.0.0.0"  # hence the tokens: ferry refuses otherwise


def test_three_nodes_rolled_one_at_a_time(container: dict[str, Any]) -> None:
    """A cluster of three nodes on PostgreSQL, updated one pod at a time and protected by a
    disruption budget; each pod's node id is its own name; the data volumes are shared."""
    spec = one("Deployment")["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 1
    budget = one("PodDisruptionBudget")["spec"]
    assert budget["maxUnavailable"] == 1
    assert budget["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    node_id = {entry["name"]: entry for entry in container["env"]}["FERRY_NODE_ID"]
    assert node_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert environment()["FERRY_DATABASE_URL"].startswith("postgresql+psycopg://")
    for claim in (doc for doc in documents() if doc["kind"] == "PersistentVolumeClaim"):
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"], claim["metadata"]["name"]


def test_port_and_probes(container: dict[str, Any], routes: frozenset[str]) -> None:
    """The container port is ferry's port; liveness is /healthz and readiness /readyz, both real routes."""
    (port,) = container["ports"]
    assert port["containerPort"] == DEFAULT_PORT == int(environment()["FERRY_PORT"])
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in routes
        assert get["port"] in (port["name"], port["containerPort"])
    (service_port,) = one("Service")["spec"]["ports"]
    assert service_port["targetPort"] in (port["name"], port["containerPort"])
    assert service_port["port"] == DEFAULT_PORT
    assert one("Service")["spec"]["selector"] == one("Deployment")["spec"]["selector"]["matchLabels"]


def test_grace_period_outlasts_the_drain(pod: dict[str, Any]) -> None:
    """Kubernetes must not SIGKILL before ferry's drain (FERRY_DRAIN_TIMEOUT) is over."""
    drain = float(environment().get("FERRY_DRAIN_TIMEOUT", DEFAULT_DRAIN))
    assert pod["terminationGracePeriodSeconds"] >= drain + 10


def test_non_root_read_only_with_writable_mounts(pod: dict[str, Any], container: dict[str, Any]) -> None:
    """Non-root (the Dockerfile's uid) on a read-only root; /tmp, the data dir and every allowed root are
    mounted volumes."""
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert f"--uid {pod['securityContext']['runAsUser']} " in (ROOT / "Dockerfile").read_text()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    assert all(mount["name"] in volumes and not mount.get("readOnly") for mount in mounts.values())
    env = environment()
    needed = {"/tmp", env["FERRY_DATA_DIR"], *env["FERRY_ALLOWED_ROOTS"].split(":")}
    assert needed <= set(mounts), needed - set(mounts)
    claims = {v["persistentVolumeClaim"]["claimName"] for v in volumes.values() if "persistentVolumeClaim" in v}
    assert claims == {doc["metadata"]["name"] for doc in documents() if doc["kind"] == "PersistentVolumeClaim"}

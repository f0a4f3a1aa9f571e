"""deploy/kubernetes: valid for the Kubernetes API (strict, offline schemas) and in step with the
Dockerfile and the server it runs (port, user, probe routes, drain bound, variables, version)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from respan_mcp.config import ENVIRONMENT_VARIABLES, SHUTDOWN_GRACE, load_config

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
# The oldest version the manifests need (preStop sleep is 1.30+) and a recent one; both ship
# with kubernetes-validate, so validation needs no network.
KUBERNETES_VERSIONS = ("1.30.0", "1.34.0")


def resources() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(MANIFESTS.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((str(path.relative_to(MANIFESTS)), document))
    return found


def by_kind(kind: str) -> dict[str, Any]:
    (resource,) = [document for _, document in resources() if document["kind"] == kind]
    return resource


def container() -> dict[str, Any]:
    (only,) = by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    return only


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates_strictly(version: str) -> None:
    found = resources()
    assert {document["kind"] for _, document in found} >= {"Deployment", "Service", "HorizontalPodAutoscaler", "Secret"}
    for name, document in found:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name}: {'.'.join(map(str, error.path))}: {error.message}")


def test_strict_validation_rejects_a_misspelt_field() -> None:
    deployment = copy.deepcopy(by_kind("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_deployment_matches_the_image_and_the_server() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    main = container()
    port = int(re.search(r"^EXPOSE (\d+)", dockerfile, re.M).group(1))  # type: ignore[union-attr]
    assert main["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    user = int(re.search(r"^USER (\d+)", dockerfile, re.M).group(1))  # type: ignore[union-attr]
    assert pod["securityContext"]["runAsUser"] == user and pod["securityContext"]["runAsNonRoot"] is True

    # The kubelet's SIGKILL comes only after every call the server lets finish has finished.
    pause = main["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pause + SHUTDOWN_GRACE
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"

    assert main["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
    }
    assert {"mountPath": "/tmp", "name": "tmp"} in main["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
    assert set(main["resources"]) == {"requests", "limits"}

    env = {item["name"]: item for item in main["env"]}
    assert set(env) <= set(ENVIRONMENT_VARIABLES)
    assert env["RESPAN_LOG_FORMAT"]["value"] == "json"
    key = env["RESPAN_API_KEY"]["valueFrom"]["secretKeyRef"]
    secret = by_kind("Secret")
    assert key["optional"] is True and key["name"] == secret["metadata"]["name"] and key["key"] in secret["stringData"]
    assert "REPLACE" in secret["stringData"][key["key"]]  # an example, never a real key

    version = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)  # type: ignore[union-attr]
    assert main["image"].endswith(f":{version}")


def test_service_and_autoscaler_point_at_the_deployment() -> None:
    deployment, service, hpa = by_kind("Deployment"), by_kind("Service"), by_kind("HorizontalPodAutoscaler")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
    assert hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"] == 2


def test_the_commented_settings_uncommented_validate_and_the_server_accepts_them(tmp_path: Path) -> None:
    """The commented env entries (sign-in among them) are an example to uncomment: uncommented, the
    Deployment still validates and the server, started with the image's own flags, accepts them."""
    text = (MANIFESTS / "deployment.yaml").read_text()
    deployment = yaml.safe_load(re.sub(r"^(\s*)# (- name: |  value: )", r"\1\2", text, flags=re.M))
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(deployment, version, strict=True)
    (main,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in main["env"] if "value" in item}
    assert {"RESPAN_OAUTH_ISSUER", "RESPAN_PUBLIC_URL", "RESPAN_OAUTH_SCOPES"} <= set(env) <= set(ENVIRONMENT_VARIABLES)

    cmd = json.loads(re.search(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.M).group(1))  # type: ignore[union-attr]
    flags = {name.removeprefix("--"): value for name, value in zip(cmd[::2], cmd[1::2])}
    config = load_config(environ=env | {"RESPAN_API_KEY": "example", "HOME": str(tmp_path)}, flags=flags)
    assert config.oauth_issuer == env["RESPAN_OAUTH_ISSUER"]
    assert config.audience == config.resource_url == f"{env['RESPAN_PUBLIC_URL']}/mcp"
    assert config.oauth_scopes == tuple(env["RESPAN_OAUTH_SCOPES"].split())

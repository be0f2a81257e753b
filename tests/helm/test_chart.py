"""The Helm chart (helm/tickrail): linted and rendered offline with Helm's Go SDK
(helm-python-sdk), every manifest validated against the Kubernetes 1.30 schemas
(kubernetes-validate), and the rendered settings and command lines checked with
tickrail's own loader and argument parser."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tickrail.services.cli.main import build_parser
from tickrail.services.config import load_settings
from tickrail.services.control_plane.guardrails import check_files

try:
    import helm_python
    import kubernetes_validate
except ImportError as exc:  # pragma: no cover - CI installs both with the dev extra
    _MISSING: ImportError | None = exc
else:
    _MISSING = None

CHART = Path(__file__).resolve().parents[2] / "helm" / "tickrail"
PRODUCTION = yaml.safe_load((CHART / "ci" / "production-values.yaml").read_text())
# The least a deployment must say: the four URLs (they have no defaults).
MINIMAL = {
    "config": {
        "bus_url": "kafka://kafka:9092",
        "store_url": "postgresql://tickrail@postgres:5432/tickrail",
        "blob_url": "s3://tickrail",
        "kv_url": "redis://redis:6379/0",
    }
}
URLS = ("bus_url", "store_url", "blob_url", "kv_url")
KUBE_VERSION = "1.30.0"
CONFIG = "/etc/tickrail/tickrail.yaml"
# Custom resources Kubernetes itself has no schema for; checked field by field below.
CRDS = {("monitoring.coreos.com/v1", "PodMonitor")}
SECRET_ENV = {"PGPASSWORD", "REDIS_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def require_sdk() -> None:
    # A missing SDK must fail CI, not quietly skip the chart's tests.
    if _MISSING is not None:
        pytest.fail(f"helm-python-sdk and kubernetes-validate are required: {_MISSING}")


@pytest.fixture(scope="module")
def chart() -> Iterator[Any]:
    require_sdk()
    with helm_python.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: Any, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every rendered Kubernetes object (NOTES.txt left out)."""
    manifests = chart.render(copy.deepcopy(values or {}), name="prod", namespace="agents")
    return [
        doc
        for path, text in sorted(manifests.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def the(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = find(docs, kind, name)
    return doc


def pod(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod(workload)["containers"]
    result: dict[str, Any] = only
    return result


def env(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(workload).get("env", [])}


def settings_text(docs: list[dict[str, Any]], name: str = "prod-tickrail") -> str:
    text: str = the(docs, "ConfigMap", name)["data"]["tickrail.yaml"]
    return text


def with_values(**overrides: Any) -> dict[str, Any]:
    """The production values with some top-level keys replaced."""
    values = copy.deepcopy(PRODUCTION)
    values.update(overrides)
    return values


def test_the_chart_lints_clean() -> None:
    require_sdk()
    for values in (MINIMAL, PRODUCTION):
        report = helm_python.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}")
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize("values", [MINIMAL, PRODUCTION], ids=["minimal", "production"])
def test_every_manifest_is_valid_kubernetes(chart: Any, values: dict[str, Any] | None) -> None:
    docs = render(chart, values)
    assert docs
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRDS:
            continue
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_one_deployment_per_role_and_executor_group(chart: Any) -> None:
    assert sorted(d["metadata"]["name"] for d in find(render(chart, MINIMAL), "Deployment")) == [
        "prod-tickrail-control-plane",
        "prod-tickrail-data-plane",
    ]
    docs = render(chart, PRODUCTION)
    deployments = {d["metadata"]["name"]: d for d in find(docs, "Deployment")}
    assert sorted(deployments) == [
        "prod-tickrail-api",
        "prod-tickrail-control-plane",
        "prod-tickrail-data-plane",
        "prod-tickrail-executor-batch",
        "prod-tickrail-executor-plans",
        "prod-tickrail-executor-tasks",
    ]
    assert container(deployments["prod-tickrail-data-plane"])["args"] == [
        "data-plane",
        "--config",
        CONFIG,
    ]
    assert container(deployments["prod-tickrail-control-plane"])["args"] == [
        "control-plane",
        "--config",
        CONFIG,
    ]
    graphs = ["--graph", "acme_agents.research:graph", "--graph", "acme_agents/coding.py"]
    tasks = deployments["prod-tickrail-executor-tasks"]
    assert container(tasks)["args"] == [
        "executor",
        "--config",
        CONFIG,
        *graphs,
        "--serves",
        "tasks",
    ]
    assert tasks["spec"]["replicas"] == 6
    assert env(tasks)["TICKRAIL_EXECUTOR_CONCURRENCY"]["value"] == "200"
    plans = deployments["prod-tickrail-executor-plans"]
    assert container(plans)["args"][-2:] == ["--serves", "plans"]
    batch = deployments["prod-tickrail-executor-batch"]
    assert container(batch)["args"][-4:] == [
        "--graph",
        "acme_agents.batch:graph",
        "--serves",
        "all",
    ]
    assert batch["spec"]["replicas"] == 1
    # Each group selects only its own pods.
    selectors = [
        deployments[f"prod-tickrail-executor-{g}"]["spec"]["selector"]["matchLabels"]
        for g in ("tasks", "plans", "batch")
    ]
    assert len({tuple(sorted(s.items())) for s in selectors}) == 3


def test_command_lines_are_ones_tickrail_accepts(chart: Any) -> None:
    docs = render(chart, PRODUCTION)
    workloads = find(docs, "Deployment") + find(docs, "Job")
    for workload in workloads:
        c = container(workload)
        assert c["command"] == ["tickrail"]
        args = build_parser().parse_args(c["args"])  # exits on an unknown flag
        assert args.config == CONFIG


def test_the_settings_file_is_what_tickrail_loads(chart: Any, tmp_path: Path) -> None:
    docs = render(chart, PRODUCTION)
    path = tmp_path / "tickrail.yaml"
    path.write_text(settings_text(docs))
    settings = load_settings(path, environ={}).resolved()
    config = PRODUCTION["config"]
    assert settings.profile == "cloud"
    for name in ("bus_url", "store_url", "blob_url", "kv_url", "topic_prefix", "tenants"):
        assert getattr(settings, name) == config[name], name
    assert settings.per_tenant_topics is True
    assert settings.offload_threshold == 900000
    assert settings.shutdown_grace_s == 120.0
    assert settings.http_port == 9090
    assert settings.policies == ["/etc/tickrail/policies"]
    # The migration hook reads its own copy, which must be the same file.
    assert settings_text(docs, "prod-tickrail-migrate") == settings_text(docs)
    # The defaults load too.
    path.write_text(settings_text(render(chart, MINIMAL)))
    assert load_settings(path, environ={}).resolved().policies == []


def test_role_pods_probe_health_and_readiness_on_the_http_port(chart: Any) -> None:
    docs = render(chart, PRODUCTION)
    roles = [d for d in find(docs, "Deployment") if not d["metadata"]["name"].endswith("-api")]
    assert len(roles) == 5
    for workload in roles:
        c = container(workload)
        assert c["ports"] == [{"name": "http", "containerPort": 9090, "protocol": "TCP"}]
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == "9090"


def test_the_api_uses_grpc_health_checks_and_tcp_under_tls(chart: Any) -> None:
    plaintext = dict(PRODUCTION["api"], tls={"existingSecret": ""})
    api = the(render(chart, with_values(api=plaintext)), "Deployment", "prod-tickrail-api")
    for probe in ("livenessProbe", "readinessProbe"):
        assert container(api)[probe]["grpc"] == {"port": 50051}
    assert "prometheus.io/scrape" not in api["spec"]["template"]["metadata"]["annotations"]
    # The kubelet's gRPC probe cannot speak TLS.
    api = the(render(chart, PRODUCTION), "Deployment", "prod-tickrail-api")
    assert container(api)["livenessProbe"]["tcpSocket"] == {"port": "grpc"}
    assert container(api)["args"][-4:] == [
        "--tls-cert",
        "/etc/tickrail/tls/tls.crt",
        "--tls-key",
        "/etc/tickrail/tls/tls.key",
    ]


def test_the_config_checksum_rolls_pods_when_settings_change(chart: Any) -> None:
    def checksums(values: dict[str, Any]) -> set[str]:
        docs = render(chart, values)
        workloads = find(docs, "Deployment") + find(docs, "Job")
        return {
            w["spec"]["template"]["metadata"]["annotations"]["checksum/config"] for w in workloads
        }

    before = checksums(PRODUCTION)
    assert len(before) == 1  # every pod carries the same one
    changed = dict(PRODUCTION["config"], topic_prefix="staging.")
    after = checksums(with_values(config=changed))
    assert len(after) == 1 and after != before
    # Scaling is not a settings change.
    assert checksums(with_values(dataPlane={"replicas": 5})) == before
    # It is the digest of exactly the settings file.
    settings = settings_text(render(chart, PRODUCTION)).rstrip("\n")
    assert before == {hashlib.sha256(settings.encode()).hexdigest()}


def test_secrets_appear_only_as_secret_key_refs(chart: Any) -> None:
    aws = {
        "existingSecret": "tickrail-aws",
        "accessKeyIdKey": "id",
        "secretAccessKeyKey": "secret",
        "sessionTokenKey": "token",
    }
    credentials = dict(PRODUCTION["credentials"], aws=aws)
    docs = render(chart, with_values(credentials=credentials))
    assert not find(docs, "Secret")
    for workload in find(docs, "Deployment") + find(docs, "Job"):
        for name, var in env(workload).items():
            if name in SECRET_ENV or name.startswith(("TICKRAIL_TOKEN_", "AWS_")):
                assert set(var) == {"name", "valueFrom"}, var
                assert set(var["valueFrom"]) == {"secretKeyRef"}, var
    data_plane = env(the(docs, "Deployment", "prod-tickrail-data-plane"))
    assert data_plane["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "tickrail-postgres",
        "key": "password",
    }
    assert data_plane["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "tickrail-redis",
        "key": "redis-password",
    }
    assert data_plane["AWS_SESSION_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "tickrail-aws",
        "key": "token",
    }
    # The migration touches only the store: it gets only the store's password.
    migrate = env(the(docs, "Job", "prod-tickrail-migrate"))
    assert set(migrate) & (SECRET_ENV | {"AWS_SESSION_TOKEN"}) == {"PGPASSWORD"}


def test_aws_keys_are_optional_for_instance_roles(chart: Any) -> None:
    docs = render(chart, PRODUCTION)
    for workload in find(docs, "Deployment"):
        assert not [name for name in env(workload) if name.startswith("AWS_")]
    account = the(docs, "ServiceAccount", "prod-tickrail")
    assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]
    assert pod(the(docs, "Deployment", "prod-tickrail-data-plane"))["serviceAccountName"] == (
        "prod-tickrail"
    )


def test_api_tokens_are_named_by_flag_and_filled_from_secrets(chart: Any) -> None:
    api = the(render(chart, PRODUCTION), "Deployment", "prod-tickrail-api")
    args = container(api)["args"]
    tokens = [args[i + 1] for i, arg in enumerate(args) if arg == "--token"]
    assert tokens == ["acme=TICKRAIL_TOKEN_ACME", "globex=TICKRAIL_TOKEN_GLOBEX"]
    assert env(api)["TICKRAIL_TOKEN_GLOBEX"]["valueFrom"]["secretKeyRef"] == {
        "name": "tickrail-api-tokens",
        "key": "globex",
    }
    # By default the API serves every executor group's graphs, once each.
    graphs = [args[i + 1] for i, arg in enumerate(args) if arg == "--graph"]
    assert graphs == [
        "acme_agents.research:graph",
        "acme_agents/coding.py",
        "acme_agents.batch:graph",
    ]
    assert "[::]:50051" in args


def test_the_api_deployment_and_service_exist_only_when_enabled(chart: Any) -> None:
    docs = render(chart, with_values(api={"enabled": False}))
    assert not find(docs, "Service")
    assert not find(docs, "Deployment", "prod-tickrail-api")
    docs = render(chart, PRODUCTION)
    service = the(docs, "Service", "prod-tickrail-api")
    api = the(docs, "Deployment", "prod-tickrail-api")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["ports"] == [
        {"name": "grpc", "port": 50051, "targetPort": "grpc", "protocol": "TCP"}
    ]
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_the_migration_job_is_a_pre_install_and_pre_upgrade_hook(chart: Any) -> None:
    docs = render(chart, PRODUCTION)
    job = the(docs, "Job", "prod-tickrail-migrate")
    config = the(docs, "ConfigMap", "prod-tickrail-migrate")
    for hook in (job, config):
        annotations = hook["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    # Its settings exist before it runs: a lower weight is created first.
    assert int(config["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    assert container(job)["args"] == ["migrate", "--config", CONFIG]
    assert pod(job)["restartPolicy"] == "Never"
    assert pod(job)["volumes"][0]["configMap"]["name"] == "prod-tickrail-migrate"
    docs = render(chart, with_values(migration={"enabled": False}))
    assert not find(docs, "Job", "prod-tickrail-migrate")
    assert not find(docs, "ConfigMap", "prod-tickrail-migrate")


def test_termination_grace_exceeds_shutdown_grace(chart: Any) -> None:
    docs = render(chart, PRODUCTION)
    grace = PRODUCTION["config"]["shutdown_grace_s"]
    periods = {
        d["metadata"]["name"]: pod(d)["terminationGracePeriodSeconds"]
        for d in find(docs, "Deployment")
    }
    assert all(period > grace for period in periods.values()), periods
    assert periods["prod-tickrail-executor-batch"] == 600  # its own value
    assert periods["prod-tickrail-data-plane"] == 135  # derived: 120 s + 15 s
    with pytest.raises(
        helm_python.HelmRenderError, match=r"dataPlane\.terminationGracePeriodSeconds"
    ):
        render(chart, with_values(dataPlane={"terminationGracePeriodSeconds": 120}))


def test_components_override_shared_defaults(chart: Any) -> None:
    docs = render(chart, PRODUCTION)
    tasks = the(docs, "Deployment", "prod-tickrail-executor-tasks")
    batch = the(docs, "Deployment", "prod-tickrail-executor-batch")
    control = the(docs, "Deployment", "prod-tickrail-control-plane")
    image = "registry.example.com/acme/tickrail-agents"
    assert container(control)["image"] == f"{image}:2026.11.1"
    assert container(batch)["image"] == f"{image}:2026.11.1-batch"  # tag only
    assert container(batch)["imagePullPolicy"] == "IfNotPresent"
    assert container(tasks)["resources"]["limits"] == {"memory": "4Gi"}  # replaced, not merged
    assert container(control)["resources"]["requests"] == {"cpu": "250m", "memory": "256Mi"}
    assert pod(batch)["nodeSelector"] == {"workload": "batch"}
    assert pod(batch)["tolerations"] == pod(control)["tolerations"]
    assert set(env(tasks)) >= {"OTEL_TRACES_EXPORTER", "OPENAI_API_KEY"}  # extraEnv is appended
    for workload in (tasks, control):
        assert pod(workload)["enableServiceLinks"] is False
        assert pod(workload)["securityContext"]["runAsNonRoot"] is True
        assert container(workload)["securityContext"]["readOnlyRootFilesystem"] is True


def test_policies_are_mounted_as_a_directory_in_the_control_plane(
    chart: Any, tmp_path: Path
) -> None:
    docs = render(chart, PRODUCTION)
    policies = the(docs, "ConfigMap", "prod-tickrail-policies")
    for name, text in policies["data"].items():
        (tmp_path / name).write_text(text)
    assert check_files([tmp_path]) == []
    control = the(docs, "Deployment", "prod-tickrail-control-plane")
    mounts = {m["name"]: m for m in container(control)["volumeMounts"]}
    assert mounts["policies"] == {
        "name": "policies",
        "mountPath": "/etc/tickrail/policies",
        "readOnly": True,
    }  # no subPath: Kubernetes updates it in place and the control plane reloads it
    data_plane = the(docs, "Deployment", "prod-tickrail-data-plane")
    assert "policies" not in {m["name"] for m in container(data_plane)["volumeMounts"]}

    existing = render(chart, with_values(policies={"existingConfigMap": "acme-policies"}))
    assert not find(existing, "ConfigMap", "prod-tickrail-policies")
    volumes = {
        v["name"]: v
        for v in pod(the(existing, "Deployment", "prod-tickrail-control-plane"))["volumes"]
    }
    assert volumes["policies"]["configMap"]["name"] == "acme-policies"
    assert "/etc/tickrail/policies" in settings_text(existing)

    with pytest.raises(helm_python.HelmRenderError, match="files or existingConfigMap"):
        render(chart, with_values(policies={"files": {"a.yaml": "x"}, "existingConfigMap": "p"}))


def test_a_pod_monitor_renders_only_when_enabled(chart: Any) -> None:
    assert not find(render(chart, MINIMAL), "PodMonitor")
    (monitor,) = find(render(chart, PRODUCTION), "PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["podMetricsEndpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "30s"}
    ]
    components = monitor["spec"]["selector"]["matchExpressions"][0]["values"]
    assert components == ["data-plane", "control-plane", "executor"]


def test_duplicate_names_fail_the_render(chart: Any) -> None:
    group = {"name": "work", "graphs": ["m:graph"]}
    with pytest.raises(helm_python.HelmRenderError, match='two groups are named "work"'):
        render(chart, dict(MINIMAL, executors=[group, group]))
    tokens = [
        {"tenant": "a-b", "existingSecret": "s", "key": "k1"},
        {"tenant": "a_b", "existingSecret": "s", "key": "k2"},
    ]
    with pytest.raises(helm_python.HelmRenderError, match="TICKRAIL_TOKEN_A_B"):
        render(chart, dict(MINIMAL, api={"enabled": True, "tokens": tokens}))


GROUP = {"name": "work", "graphs": ["m:graph"]}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"replicaCount": 3}, "additional properties 'replicaCount' not allowed"),
        (
            {"executors": [dict(GROUP, graph="m:graph")]},
            "additional properties 'graph' not allowed",
        ),
        ({"executors": [dict(GROUP, serves="everything")]}, "/executors/0/serves"),
        ({"executors": [{"name": "work"}]}, "missing property 'graphs'"),
        ({"config": {"store_url": None}}, "missing property 'store_url'"),
        ({"config": {"store_url": "postgresql://app:hunter2@db/x"}}, "/config/store_url"),
        ({"config": {"kv_url": "redis://:hunter2@cache:6379/0"}}, "/config/kv_url"),
        ({"config": {"profile": "embedded"}}, "/config/profile"),
        ({"config": {"bus_uri": "kafka://k:9092"}}, "additional properties 'bus_uri' not allowed"),
        ({"defaults": {"image": {"pullPolicy": "Sometimes"}}}, "/defaults/image/pullPolicy"),
        ({"api": {"enabled": True}}, "/api/tokens"),
        ({"policies": {"files": {"budgets": "rules: []"}}}, "additional properties 'budgets'"),
    ],
    ids=[
        "unknown-top-level-key",
        "unknown-executor-key",
        "serves-everything",
        "executor-without-graphs",
        "missing-store-url",
        "password-in-store-url",
        "password-in-kv-url",
        "embedded-profile",
        "unknown-setting",
        "pull-policy",
        "api-without-tokens",
        "policy-file-name",
    ],
)
def test_the_schema_refuses_bad_values(chart: Any, values: dict[str, Any], expected: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as caught:
        render(chart, values)
    assert expected in str(caught.value)


def test_the_migration_connects_as_the_owner_and_roles_as_the_runtime_role(chart: Any) -> None:
    """Least privilege (docs/deploy.md): a separate URL and password for the migration."""
    owner_url = "postgresql://tickrail_owner@db:5432/tickrail?schema=tickrail&runtime_role=tickrail"
    credentials = dict(PRODUCTION["credentials"], dispatch={"existingSecret": "tickrail-dispatch"})
    docs = render(
        chart,
        with_values(
            credentials=credentials,
            migration={"storeUrl": owner_url, "existingSecret": "tickrail-pg-owner"},
        ),
    )
    migrate = env(the(docs, "Job", "prod-tickrail-migrate"))
    assert migrate["TICKRAIL_STORE_URL"]["value"] == owner_url
    assert migrate["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "tickrail-pg-owner"
    assert "TICKRAIL_DISPATCH_SECRET" not in migrate
    for name in ("data-plane", "control-plane", "api"):
        role = env(the(docs, "Deployment", f"prod-tickrail-{name}"))
        assert role["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "tickrail-postgres"
        assert "TICKRAIL_STORE_URL" not in role
        assert role["TICKRAIL_DISPATCH_SECRET"]["valueFrom"]["secretKeyRef"] == {
            "name": "tickrail-dispatch",
            "key": "dispatch-secret",
        }
    # Executors answer inputs; they never hold the secret that signs them.
    for workload in find(docs, "Deployment"):
        if workload["metadata"]["labels"]["app.kubernetes.io/component"] == "executor":
            assert "TICKRAIL_DISPATCH_SECRET" not in env(workload)


# ---- required URLs, disruption budgets, autoscaling, probes, policies, tests ----


@pytest.mark.parametrize("values", [{}, {"config": {"store_url": ""}}], ids=["empty", "one-empty"])
def test_rendering_without_the_urls_fails_naming_them(chart: Any, values: dict[str, Any]) -> None:
    with pytest.raises(helm_python.HelmRenderError) as caught:
        render(chart, values)
    message = str(caught.value)
    assert "required" in message and "--set config.bus_url=" in message
    for name in URLS:
        assert f"config.{name}" in message
    # Each missing one is named, and only those.
    config = dict(MINIMAL["config"], blob_url="")
    with pytest.raises(helm_python.HelmRenderError) as caught:
        render(chart, {"config": config})
    message = str(caught.value).split("required")[0]
    assert "config.blob_url" in message and "config.bus_url" not in message


def test_every_deployment_has_a_disruption_budget_for_its_own_pods(chart: Any) -> None:
    docs = render(chart, PRODUCTION)
    deployments = {d["metadata"]["name"]: d for d in find(docs, "Deployment")}
    budgets = {b["metadata"]["name"]: b for b in find(docs, "PodDisruptionBudget")}
    assert sorted(budgets) == sorted(deployments)
    for name, budget in budgets.items():
        selector = deployments[name]["spec"]["selector"]["matchLabels"]
        assert budget["apiVersion"] == "policy/v1"
        assert budget["spec"]["selector"]["matchLabels"] == selector
    assert budgets["prod-tickrail-data-plane"]["spec"] == {
        "minAvailable": 1,
        "selector": budgets["prod-tickrail-data-plane"]["spec"]["selector"],
    }
    assert budgets["prod-tickrail-control-plane"]["spec"]["maxUnavailable"] == 1
    # A component can turn its budget off; the others keep theirs.
    values = with_values(controlPlane={"podDisruptionBudget": {"enabled": False}})
    names = {b["metadata"]["name"] for b in find(render(chart, values), "PodDisruptionBudget")}
    assert "prod-tickrail-control-plane" not in names and "prod-tickrail-data-plane" in names


def test_autoscaling_on_cpu_owns_the_replica_count(chart: Any) -> None:
    docs = render(chart, PRODUCTION)
    (hpa,) = find(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "prod-tickrail-executor-plans",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    target = hpa["spec"]["metrics"][0]["resource"]
    assert target == {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}
    plans = the(docs, "Deployment", "prod-tickrail-executor-plans")
    assert "replicas" not in plans["spec"]  # an upgrade must not reset what the HPA chose
    assert the(docs, "Deployment", "prod-tickrail-executor-tasks")["spec"]["replicas"] == 6
    assert not find(render(chart, MINIMAL), "HorizontalPodAutoscaler")


def test_autoscaling_needs_cpu_requests_and_a_sane_range(chart: Any) -> None:
    group = {"name": "work", "graphs": ["m:graph"], "autoscaling": {"enabled": True}}
    with pytest.raises(helm_python.HelmRenderError, match=r"executors\[0\]\.autoscaling.*cpu"):
        render(chart, dict(MINIMAL, executors=[group]))
    group = dict(group, resources={"requests": {"cpu": "1"}})
    group["autoscaling"] = {"enabled": True, "minReplicas": 5, "maxReplicas": 2}
    with pytest.raises(helm_python.HelmRenderError, match="minReplicas"):
        render(chart, dict(MINIMAL, executors=[group]))


def test_executors_have_a_startup_probe_and_other_roles_do_not(chart: Any) -> None:
    docs = render(chart, PRODUCTION)
    for workload in find(docs, "Deployment"):
        c = container(workload)
        if workload["metadata"]["name"].startswith("prod-tickrail-executor-"):
            assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
            assert c["startupProbe"]["failureThreshold"] == 60
        else:
            assert "startupProbe" not in c
    group = {"name": "slow", "graphs": ["m:graph"], "startupProbe": {"failureThreshold": 120}}
    docs = render(chart, dict(MINIMAL, executors=[group]))
    probe = container(the(docs, "Deployment", "prod-tickrail-executor-slow"))["startupProbe"]
    assert probe["failureThreshold"] == 120


def test_the_network_policy_admits_only_probes_metrics_and_the_api(chart: Any) -> None:
    assert not find(render(chart, MINIMAL), "NetworkPolicy")
    docs = render(chart, PRODUCTION)
    policies = {p["metadata"]["name"]: p for p in find(docs, "NetworkPolicy")}
    roles, api = policies["prod-tickrail-roles"], policies["prod-tickrail-api"]
    (ingress,) = roles["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert ingress["from"] == PRODUCTION["networkPolicy"]["metricsFrom"]
    assert roles["spec"]["policyTypes"] == ["Ingress", "Egress"]
    # The user's egress rules, plus DNS.
    assert roles["spec"]["egress"][:-1] == PRODUCTION["networkPolicy"]["egress"]
    assert {p["port"] for p in roles["spec"]["egress"][-1]["ports"]} == {53}
    (ingress,) = api["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "grpc", "protocol": "TCP"}] and "from" not in ingress
    # Each selects the pods it is about.
    data_plane = the(docs, "Deployment", "prod-tickrail-data-plane")
    labels = data_plane["spec"]["template"]["metadata"]["labels"]
    assert roles["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert (
        labels["app.kubernetes.io/component"]
        in (roles["spec"]["podSelector"]["matchExpressions"][0]["values"])
    )
    # Without egress rules, egress is left alone.
    values = with_values(networkPolicy={"enabled": True})
    for policy in find(render(chart, values), "NetworkPolicy"):
        assert policy["spec"]["policyTypes"] == ["Ingress"] and "egress" not in policy["spec"]


def test_helm_test_reads_the_store_with_the_deployment_settings(chart: Any) -> None:
    docs = render(chart, PRODUCTION)
    job = the(docs, "Job", "prod-tickrail-test")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "test"
    args = container(job)["args"]
    assert args[:2] == ["lifetimes", "list"]
    assert build_parser().parse_args(args).config == CONFIG
    assert pod(job)["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 0
    # The release's settings (not the migration hook's copy, deleted after it ran).
    assert pod(job)["volumes"][0]["configMap"]["name"] == "prod-tickrail"
    assert set(env(job)) & SECRET_ENV == {"PGPASSWORD"}
    assert "startupProbe" not in container(job) and "livenessProbe" not in container(job)
    assert not find(
        render(chart, with_values(tests={"enabled": False})), "Job", "prod-tickrail-test"
    )


def test_production_logs_are_json_lines(chart: Any, tmp_path: Path) -> None:
    path = tmp_path / "tickrail.yaml"
    path.write_text(settings_text(render(chart, PRODUCTION)))
    assert load_settings(path, environ={}).resolved().log_format == "json"

"""The Helm chart, rendered by real helm for every value set in helm/emtune/ci/ and checked object by object."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml
from chart_render import CHART, NAMESPACE, VALUE_SETS, helm, render, values_file
from k8s_schemas import validate

import emtune

# Objects whose pods the chart defines, and where their pod spec sits.
WORKLOADS = {"Deployment": ("spec", "template", "spec"), "Job": ("spec", "template", "spec")}
RUNTIME_POD = ("spec", "template", "spec", "replicatedJobs")


def _registration_data(objects: list[dict[str, Any]], key: str) -> Any:
    return yaml.safe_load(by_kind(objects, "ConfigMap")["emtune-registration"]["data"][key])


def _env_secret_refs(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    refs = set()
    for _, spec in pod_specs(objects):
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((ref["name"], ref["key"]))
    return refs


def _rdma_resources(objects: list[dict[str, Any]]) -> set[str]:
    names = set()
    for name, spec in pod_specs(objects):
        if "TrainingRuntime" in name:
            for container in spec["containers"]:
                names |= set(container.get("resources", {}).get("limits", {}))
    return {name for name in names if name.startswith("rdma/")}


# What each non-default value set exists to exercise, read from what the chart renders with it. Each holds for its
# own set and for no other (the default set exercises none), so a value set that stops switching its feature on, or
# a feature that leaks into the defaults, fails here.
FEATURES = {
    "existing-secrets": lambda objects: (
        "Secret" not in {obj["kind"] for obj in objects}
        and {("team-s3", "access-key"), ("team-s3", "secret-key")} <= _env_secret_refs(objects)
        and "Ingress" in {obj["kind"] for obj in objects}
    ),
    "multi-user": lambda objects: (
        "HTTPRoute" in {obj["kind"] for obj in objects}
        and "emtune-dashboard-kfp-edit" in by_kind(objects, "RoleBinding")
    ),
    "rdma": lambda objects: (
        "ClusterTrainingRuntime" in {obj["kind"] for obj in objects}
        and _rdma_resources(objects) == {"rdma/rdma_shared_device_a"}
    ),
    "schedules": lambda objects: (
        [s["name"] for s in _registration_data(objects, "schedules.yaml")["schedules"]] == ["nightly", "weekly-long"]
    ),
}


def test_each_value_set_exercises_its_feature_and_only_it(value_set: str) -> None:
    assert set(FEATURES) | {"default"} == set(VALUE_SETS)
    objects = render(value_set)
    exercised = {feature for feature, shows in FEATURES.items() if shows(objects)}
    assert exercised == ({value_set} - {"default"}), exercised


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every pod spec the chart renders: its workloads' and the TrainingRuntime's node template."""
    for obj in objects:
        if obj["kind"] in WORKLOADS:
            spec = obj
            for key in WORKLOADS[obj["kind"]]:
                spec = spec[key]
            yield f"{obj['kind']}/{obj['metadata']['name']}", spec
        elif obj["kind"] in ("TrainingRuntime", "ClusterTrainingRuntime"):
            for job in obj["spec"]["template"]["spec"]["replicatedJobs"]:
                yield (
                    f"{obj['kind']}/{obj['metadata']['name']}/{job['name']}",
                    job["template"]["spec"]["template"]["spec"],
                )


def test_lint_strict(value_set: str) -> None:
    result = helm("lint", "--strict", str(CHART), "-n", NAMESPACE, "-f", str(values_file(value_set)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_install_dry_run_renders(value_set: str) -> None:
    result = helm(
        "install", "emtune", str(CHART), "--dry-run=client", "-n", NAMESPACE, "-f", str(values_file(value_set))
    )
    assert result.returncode == 0, result.stderr
    assert "STATUS: pending-install" in result.stdout
    assert "Checkpoints and reports land under s3://" in result.stdout  # NOTES.txt rendered


def test_every_object_is_valid_for_its_schema(value_set: str) -> None:
    """Core kinds against Kubernetes 1.33's schemas, Trainer kinds against the real v2.3 CRDs and CEL rules."""
    objects = render(value_set)
    assert objects
    for obj in objects:
        if obj["kind"] == "HTTPRoute":  # Gateway API: no schema offline; its shape is asserted below
            continue
        validate(obj)


def test_schema_rejects_unknown_and_bad_values() -> None:
    for args, message in [
        (["--set", "dashbord.enabled=false"], "additional properties 'dashbord' not allowed"),
        (["--set", "dashboard.auth=none"], "dashboard/auth"),
        (["--set", "store.uri=file:///data"], "store/uri"),
        (["--set", "schedules[0].cron=0 3 * * *"], "missing property 'name'"),
    ]:
        result = helm("template", "emtune", str(CHART), *args)
        assert result.returncode != 0 and message in result.stderr, (args, result.stderr)


def test_rbac_has_no_wildcards_and_least_privilege(value_set: str) -> None:
    objects = render(value_set)
    roles = [obj for obj in objects if obj["kind"] in ("Role", "ClusterRole")]
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for field in ("verbs", "resources", "apiGroups"):
                assert "*" not in rule.get(field, []), (role["metadata"]["name"], rule)
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
    # What each Role grants, exactly, is tests/chart/test_rbac.py's job.


def test_multi_user_calls_kfp_with_projected_tokens() -> None:
    objects = render("multi-user")
    bindings = [
        b for b in by_kind(objects, "RoleBinding").values() if b["roleRef"]["name"] == "kubeflow-pipelines-edit"
    ]
    assert all(b["roleRef"]["kind"] == "ClusterRole" and b["metadata"].get("namespace") is None for b in bindings)
    runner_subjects = {s["name"] for s in by_kind(objects, "RoleBinding")["emtune-runner"]["subjects"]}
    assert runner_subjects == {"emtune-runner", "default-editor"}
    # KFP calls authenticate with the projected service-account token (audience pipelines.kubeflow.org).
    for name, spec in pod_specs(objects):
        if name.startswith(("Deployment", "Job")):
            (projected,) = [v["projected"] for v in spec["volumes"] if "projected" in v]
            assert projected["sources"][0]["serviceAccountToken"]["audience"] == "pipelines.kubeflow.org"
            (container,) = spec["containers"]
            env = {e["name"]: e for e in container["env"]}
            assert env["EMTUNE_KFP_NAMESPACE"]["value"] == NAMESPACE and "EMTUNE_KFP_TOKEN" not in env
    assert not by_kind(render("default"), "RoleBinding").keys() & {b["metadata"]["name"] for b in bindings}


def test_every_pod_meets_the_restricted_standard(value_set: str) -> None:
    specs = list(pod_specs(render(value_set)))
    assert len(specs) == 4  # dashboard, the two registration hooks, TrainJob node
    for name, spec in specs:
        pod_ctx = spec["securityContext"]
        assert pod_ctx["runAsNonRoot"] is True and pod_ctx["runAsUser"] != 0, name
        assert pod_ctx["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), name
        assert not any("hostPath" in volume for volume in spec.get("volumes", [])), name
        for container in spec["containers"] + spec.get("initContainers", []):
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False and ctx["runAsNonRoot"] is True, name
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert not ctx.get("privileged"), name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            added = ctx["capabilities"].get("add", [])
            # Only RDMA adds a capability, and the chart documents that it needs a baseline namespace.
            assert added == (["IPC_LOCK"] if value_set == "rdma" and "Runtime" in name else []), name
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert {"/cache", "/tmp", "/home/emtune"} <= mounts, name  # writable scratch under a read-only root


def test_resources_are_set_on_every_chart_container(value_set: str) -> None:
    for name, spec in pod_specs(render(value_set)):
        if "Runtime" in name:
            continue  # TrainJob nodes get trainer.resourcesPerNode from each job (tested with the launcher)
        for container in spec["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys() and "memory" in resources["limits"], name


def referenced_secrets(objects: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Secret name -> keys the rendered pods read from it (env secretKeyRef, secret volumes' items)."""
    found: dict[str, set[str]] = {}
    for _, spec in pod_specs(objects):
        for container in spec["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    found.setdefault(ref["name"], set()).add(ref["key"])
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                keys = {item["key"] for item in volume["secret"].get("items", [])}
                found.setdefault(volume["secret"]["secretName"], set()).update(keys)
    return found


def test_every_referenced_secret_exists_or_is_rendered(value_set: str) -> None:
    objects = render(value_set)
    values = yaml.safe_load(values_file(value_set).read_text(encoding="utf-8")) or {}
    existing = {s["existingSecret"] for s in values.get("secrets", {}).values() if s.get("existingSecret")}
    rendered = by_kind(objects, "Secret")
    references = referenced_secrets(objects)
    for name, keys in references.items():
        if name in existing:
            assert name not in rendered  # never shadow a Secret the user named
            continue
        assert name in rendered, f"pods read Secret {name} that is neither rendered nor named in values"
        assert keys <= rendered[name]["stringData"].keys(), name
    # ...and the pipeline, compiled by the hook, reads the same Secrets under the same key names.
    from emtune.config import validate_config

    pipeline = validate_config(registration_config(objects)).pipeline
    for secret, key, _ in pipeline.secret_env(wandb=True):
        assert secret in existing or key in rendered[secret]["stringData"], (secret, key)
    if value_set == "existing-secrets":
        assert set(references) | {pipeline.wandb_secret} == existing and not rendered
        assert references["team-s3"] == {"access-key", "secret-key"} and references["team-kfp"] == {"bearer"}
        assert pipeline.secret_env(wandb=True) == [
            ("team-s3", "access-key", "AWS_ACCESS_KEY_ID"),
            ("team-s3", "secret-key", "AWS_SECRET_ACCESS_KEY"),
            ("team-wandb", "api-key", "WANDB_API_KEY"),
        ]


def test_secret_values_stay_out_of_everything_but_their_secret() -> None:
    objects = render("schedules")
    secret_values = ["AKIAEXAMPLE", "example-secret-key", "example-wandb-key"]
    for obj in objects:
        if obj["kind"] == "Secret":
            continue
        text = yaml.safe_dump(obj)
        assert not any(value in text for value in secret_values), obj["metadata"]["name"]


def test_dashboard_follows_its_interface() -> None:
    objects = render("default")
    deployment = by_kind(objects, "Deployment")["emtune-dashboard"]
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["image"] == f"ghcr.io/emtune/emtune-dashboard:{emtune.__version__}"
    assert container["args"] == ["dashboard"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["EMTUNE_DASHBOARD_HOST"] == "0.0.0.0" and env["EMTUNE_DASHBOARD_PORT"] == "8080"
    assert env["EMTUNE_DASHBOARD_AUTH"] == "token" and env["EMTUNE_DASHBOARD_LAUNCHER"] == "kfp"
    token_file = env["EMTUNE_DASHBOARD_TOKEN_FILE"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert token_file.rsplit("/", 1)[0] in mounts and mounts[token_file.rsplit("/", 1)[0]]["readOnly"]
    assert env["EMTUNE_STORE_URI"] == "s3://emtune/runs" and env["EMTUNE_KFP_HOST"].startswith("http")
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "sizeLimit" in volumes["cache"]["emptyDir"] and "sizeLimit" in volumes["tmp"]["emptyDir"]
    # The generated token is a real Secret, not an empty one.
    token = by_kind(objects, "Secret")["emtune-dashboard-token"]["stringData"]["token"]
    assert len(token) >= 32
    assert not by_kind(objects, "PodDisruptionBudget") and not by_kind(objects, "Ingress")


def test_images_follow_registry_and_tag_values() -> None:
    objects = render("default", "--set", "image.registry=registry.example/ml", "--set", "image.tag=9.9.9")
    images = {c["image"] for _, spec in pod_specs(objects) for c in spec["containers"]}
    assert images == {"registry.example/ml/emtune-dashboard:9.9.9", "registry.example/ml/emtune-train:9.9.9"}
    pipeline = registration_config(objects)["pipeline"]
    assert (pipeline["train_image"], pipeline["eval_image"]) == (
        "registry.example/ml/emtune-train:9.9.9",
        "registry.example/ml/emtune-eval:9.9.9",
    )


def test_exposure_options() -> None:
    multi = render("multi-user")
    (pdb,) = by_kind(multi, "PodDisruptionBudget").values()
    assert pdb["spec"]["minAvailable"] == 1
    (route,) = by_kind(multi, "HTTPRoute").values()
    # A Gateway API Gateway: Kubeflow's kubeflow-gateway is an Istio Gateway, which an HTTPRoute cannot attach to.
    assert route["spec"]["parentRefs"] == [{"name": "platform-gateway", "namespace": "gateway-system"}]
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "emtune-dashboard", "port": 80}]
    env = {
        e["name"]: e.get("value")
        for e in by_kind(multi, "Deployment")["emtune-dashboard"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["EMTUNE_DASHBOARD_AUTH"] == "proxy" and env["EMTUNE_DASHBOARD_TRUSTED_PROXIES"] == "10.0.0.0/8"
    (ingress,) = by_kind(render("existing-secrets"), "Ingress").values()
    assert ingress["spec"]["tls"] == [{"hosts": ["emtune.team.example.com"], "secretName": "emtune-tls"}]


def test_network_policies() -> None:
    policies = by_kind(render("default"), "NetworkPolicy")
    assert policies["emtune-dashboard"]["spec"]["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}]}]
    trainer = policies["emtune-trainer"]["spec"]
    assert trainer["ingress"] == [{"from": [{"podSelector": trainer["podSelector"]}]}]
    assert "ingress" not in policies["emtune-registration"]["spec"]  # deny all ingress
    assert not by_kind(render("default", "--set", "networkPolicy.enabled=false"), "NetworkPolicy")


def runtime_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (runtime,) = [obj for obj in objects if obj["kind"] in ("TrainingRuntime", "ClusterTrainingRuntime")]
    return runtime


def test_training_runtime(value_set: str) -> None:
    runtime = runtime_of(render(value_set))
    assert runtime["kind"] == ("ClusterTrainingRuntime" if value_set == "rdma" else "TrainingRuntime")
    assert runtime["spec"]["mlPolicy"] == {"numNodes": 1, "torch": {}}  # torchrun, not the MPI runtime
    (job,) = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    assert job["name"] == "node"
    pod = job["template"]["spec"]["template"]
    assert pod["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    assert pod["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    (container,) = pod["spec"]["containers"]
    assert container["name"] == "node" and container["image"].endswith(f"/emtune-train:{emtune.__version__}")
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    env = {e["name"]: e["value"] for e in container.get("env", [])}
    if value_set == "rdma":
        assert env == {"NCCL_DEBUG": "INFO", "NCCL_IB_HCA": "mlx5", "NCCL_SOCKET_IFNAME": "eth0"}
        assert container["resources"]["limits"] == {"rdma/rdma_shared_device_a": "1"}
        assert volumes["dshm"]["emptyDir"]["sizeLimit"] == "64Gi"
    else:
        assert env == {"NCCL_DEBUG": "WARN"} and "resources" not in container


def registration_config(objects: list[dict[str, Any]]) -> dict[str, Any]:
    config_map = by_kind(objects, "ConfigMap")["emtune-registration"]
    return yaml.safe_load(config_map["data"]["pipeline.yaml"])


def test_registration_hook_runs_an_idempotent_sync(value_set: str) -> None:
    objects = render(value_set)
    job = by_kind(objects, "Job")["emtune-registration"]
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    # A rerun replaces the previous hook Job instead of failing on it; sync itself skips what exists.
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["image"].endswith(f"/emtune-dashboard:{emtune.__version__}")
    args = container["args"]
    assert args[:2] == ["pipeline", "sync"]
    options = dict(zip(args[2::2], args[3::2], strict=True))
    assert options["--host"].startswith("http") and options["--experiment"] == "emtune"
    assert options["--pipeline-name"] == "emtune-pipeline"
    assert ("--namespace" in options) == (value_set == "multi-user")
    # What it registered is recorded where the dashboard reads it (mounted, optional until the first sync).
    assert options["--record-configmap"] == "emtune-registered"
    dashboard = by_kind(objects, "Deployment")["emtune-dashboard"]["spec"]["template"]["spec"]
    (registered,) = [v for v in dashboard["volumes"] if v["name"] == "registered"]
    assert registered["configMap"] == {"name": "emtune-registered", "optional": True}
    env = {e["name"]: e.get("value") for e in dashboard["containers"][0]["env"]}
    assert env["EMTUNE_KFP_REGISTERED"] == "/etc/emtune/registered/version.json"
    assert job["spec"]["activeDeadlineSeconds"] > 0 and spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is True  # KFP, and one patch of its version record


def test_registration_config_is_a_valid_cluster_config(value_set: str) -> None:
    """What the hook compiles the pipeline from must pass emtune's own checks for a cluster run."""
    from emtune.config import validate_config
    from emtune.pipeline.checks import check_pipeline_config

    objects = render(value_set)
    cfg = validate_config(registration_config(objects))
    check_pipeline_config(cfg, cluster=True)
    runtime = runtime_of(objects)
    assert (cfg.pipeline.trainjob.runtime, cfg.pipeline.trainjob.runtime_kind) == (
        runtime["metadata"]["name"],
        runtime["kind"],
    )
    if value_set == "schedules":
        assert cfg.pipeline.train.accelerator_count == 8 and cfg.pipeline.trainjob.checkpoint_volume == "ephemeral"
        assert cfg.pipeline.s3_secret == "emtune-s3" and cfg.pipeline.wandb_secret == "emtune-wandb"


def test_schedules_reach_the_hook_and_change_its_checksum() -> None:
    from emtune.runs.sync import load_schedules

    objects = render("schedules")
    config_map = by_kind(objects, "ConfigMap")["emtune-registration"]
    path_text = config_map["data"]["schedules.yaml"]
    schedules = load_schedules(yaml.safe_load(path_text))
    assert [(s.name, s.cron, s.enabled) for s in schedules.schedules] == [
        ("nightly", "0 0 3 * * *", True),
        ("weekly-long", "0 0 4 * * 0", False),
    ]
    assert schedules.service_account == "emtune-runner"
    checksum = by_kind(objects, "Job")["emtune-registration"]["spec"]["template"]["metadata"]["annotations"]
    default = by_kind(render("default"), "Job")["emtune-registration"]["spec"]["template"]["metadata"]["annotations"]
    assert checksum["checksum/registration"] != default["checksum/registration"]


def test_chart_app_version_is_emtunes() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["appVersion"] == emtune.__version__


def test_generated_secret_is_not_regenerated_from_values() -> None:
    objects = render("default", "--set", "secrets.dashboardToken.value=given-token")
    assert by_kind(objects, "Secret")["emtune-dashboard-token"]["stringData"]["token"] == "given-token"


def test_the_registry_settings_reach_the_pipeline_config() -> None:
    """registry.* turns the promote step on with its endpoint; the credentials' Secret reaches the promote pod."""
    from emtune.config import validate_config

    extra = (
        "--set",
        "registry.kind=mlflow",
        "--set",
        "registry.uri=http://mlflow.team:5000",
        "--set",
        "secrets.registry.existingSecret=mlflow-creds",
    )
    cfg = validate_config(registration_config(render("default", *extra)))
    assert cfg.promote.enabled and cfg.promote.registry == "mlflow"
    assert cfg.promote.registry_uri == "http://mlflow.team:5000" and cfg.promote.model_name == "emtune"
    assert cfg.pipeline.registry_secret == "mlflow-creds"
    assert ("mlflow-creds", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_TOKEN") in cfg.pipeline.secret_env(
        wandb=False, registry=True
    )
    plain = validate_config(registration_config(render("default")))
    assert not plain.promote.enabled and plain.pipeline.registry_secret is None
    assert helm("template", "emtune", str(CHART), "--set", "registry.kind=kubeflow").returncode != 0  # no uri
    assert helm("template", "emtune", str(CHART), "--set", "registry.kind=other").returncode != 0  # schema

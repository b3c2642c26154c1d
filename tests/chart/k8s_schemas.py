"""Validation of rendered Kubernetes objects without a cluster, as strictly as an API server would.

Core kinds go through `kubernetes-validate` (the upstream OpenAPI schemas, unknown fields rejected). Custom
resources of Kubeflow Trainer v2.3 go through the real CRDs read from `../shared/specs/` (never copied into the
project): their `openAPIV3Schema` with unknown fields rejected (what `kubectl apply` with strict field validation
does), then every CEL rule (`x-kubernetes-validations`) that applies on create.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TRAINER_SPECS = REPO.parent / "shared" / "specs" / "kubeflow-trainer-v2.3.0"
KUBERNETES_VERSION = "1.33.0"
# The namespaced TrainingRuntime has the same schema as the ClusterTrainingRuntime (the specs' README).
CRD_FILES = {
    "TrainJob": "trainer.kubeflow.org_trainjobs.yaml",
    "TrainingRuntime": "trainer.kubeflow.org_clustertrainingruntimes.yaml",
    "ClusterTrainingRuntime": "trainer.kubeflow.org_clustertrainingruntimes.yaml",
}


def _strict(schema: Any) -> Any:
    """The schema with unknown fields rejected wherever the CRD does not preserve them."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    preserves = schema.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in schema and "additionalProperties" not in schema and not preserves:
        strict["additionalProperties"] = False
    return strict


@functools.cache
def crd_schema(kind: str) -> dict[str, Any]:
    path = TRAINER_SPECS / CRD_FILES[kind]
    if not path.is_file():
        pytest.fail(f"{path} is missing: the Trainer CRDs are read from ../shared/specs beside the repository")
    crd = yaml.safe_load(path.read_text(encoding="utf-8"))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return version["schema"]["openAPIV3Schema"]


def _cel_errors(schema: dict[str, Any], value: Any, where: str) -> list[str]:
    errors = []
    for rule in schema.get("x-kubernetes-validations", []):
        if "oldSelf" in rule["rule"]:  # transition rules only apply to updates
            continue
        env = celpy.Environment()
        program = env.program(env.compile(rule["rule"]))
        result = program.evaluate({"self": celpy.json_to_cel(value)})
        if isinstance(result, celpy.CELEvalError) or not bool(result):
            errors.append(f"{where}: {rule.get('message') or rule['rule']} ({rule['rule']})")
    if isinstance(value, dict):
        for key, item in value.items():
            sub = schema.get("properties", {}).get(key) or schema.get("additionalProperties")
            if isinstance(sub, dict):
                errors += _cel_errors(sub, item, f"{where}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            errors += _cel_errors(schema["items"], item, f"{where}[{index}]")
    return errors


def validate_custom_resource(obj: dict[str, Any]) -> None:
    """Raise AssertionError naming every schema violation and failed CEL rule of a Trainer custom resource."""
    schema = crd_schema(obj["kind"])
    validator = jsonschema.Draft7Validator(_strict(schema))
    problems = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
    problems += _cel_errors(schema, obj, obj["kind"])
    assert not problems, f"{obj['kind']} {obj['metadata'].get('name')} is invalid:\n" + "\n".join(problems)


def validate_core(obj: dict[str, Any]) -> None:
    """Raise AssertionError when a core object breaks its Kubernetes schema (unknown fields included)."""
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        raise AssertionError(f"{obj['kind']} {obj['metadata'].get('name')}: {error}") from error


def validate(obj: dict[str, Any]) -> None:
    if obj["kind"] in CRD_FILES:
        validate_custom_resource(obj)
    else:
        validate_core(obj)

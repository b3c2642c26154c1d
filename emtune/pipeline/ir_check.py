"""Checks over a compiled pipeline (KFP IR) that follow how KFP 2.17's backend resolves it.

The SDK compiles graphs the backend cannot run: kfp 2.17.3 drops a `dsl.OneOf`'s parameter selectors when the
OneOf only feeds a `ParallelFor`, and the run then fails at the loop, after training. These rules restate what the
backend does with a pipeline spec (kubeflow/pipelines 2.17.0):

- `backend/src/v2/driver/resolve.go`: a task input reads a sibling task's output (`resolveUpstreamParameters`,
  `resolveUpstreamArtifacts`). Where the producer is a DAG, the driver follows the DAG's declared outputs
  (`dag.outputs`: `valueFromParameter`, `valueFromOneof` parameter selectors, artifact selectors) down to a
  container task; a DAG with no declared output parameters stops the run ("does not have a
  parameter_producer_task custom property"), a missing key is "not found in parent task". A ParallelFor's items
  are a parameter among the loop task's inputs; outputs read from a loop task are collected over its iterations
  (`CollectInputs`), again through the loop body's declared outputs. A component input names a parameter or
  artifact the enclosing DAG declares ("parent DAG does not have input parameter"); a required input without a
  default must be given ("neither value nor default value provided").
- `backend/src/v2/compiler/argocompiler/dag.go` and `container.go`, `compiler/visitor.go`: every producer and
  dependent task is a task of the same DAG ("unknown producer task"), every component and executor exists, a DAG
  holds at least one task, artifact iterators are not implemented, and a retry policy takes effect on container
  tasks only, with protobuf durations.
- `triggerPolicy.condition` (the If/Else branches) is evaluated over the task's own resolved inputs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

Spec = Mapping[str, Any]

# protobuf Duration in its JSON form, as the backend parses retry backoffs: seconds with an "s" suffix.
_DURATION = re.compile(r"^-?[0-9]+(\.[0-9]{1,9})?s$")
_CONDITION_INPUT = re.compile(r"inputs\.parameter_values\[['\"]([^'\"]+)['\"]\]")


class _Checker:
    def __init__(self, spec: Spec, platform: Spec | None) -> None:
        self.spec = spec
        self.platform = platform
        self.components: Mapping[str, Any] = spec.get("components", {})
        self.problems: list[str] = []

    def problem(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")

    def component(self, name: str) -> Mapping[str, Any] | None:
        return self.spec["root"] if name == "root" else self.components.get(name)

    def run(self) -> list[str]:
        executors = self.spec.get("deploymentSpec", {}).get("executors", {})
        for name, comp in self.components.items():
            if "dag" in comp:
                self.check_dag(name, comp)
            elif comp.get("executorLabel") not in executors:
                self.problem(name, f"executor {comp.get('executorLabel')!r} is not in deploymentSpec.executors")
        self.check_dag("root", self.spec["root"])
        if self.platform is not None:
            for label in self.platform.get("deploymentSpec", {}).get("executors", {}):
                if label not in executors:
                    self.problem("platform spec", f"executor {label!r} configures no executor of the pipeline")
        return self.problems

    # --- a DAG and its tasks -------------------------------------------------------------------------------

    def check_dag(self, name: str, comp: Mapping[str, Any]) -> None:
        tasks: Mapping[str, Any] = comp["dag"].get("tasks", {})
        if not tasks:
            self.problem(name, "a DAG must contain one or more tasks")
        for task_name, task in tasks.items():
            self.check_task(f"{name}/{task_name}", comp, tasks, task)
        self.check_dag_outputs(name, comp)

    def check_task(self, where: str, parent: Spec, siblings: Spec, task: Spec) -> None:
        ref = task.get("componentRef", {}).get("name", "")
        callee = self.components.get(ref)
        if callee is None:
            self.problem(where, f"component {ref!r} does not exist")
            return
        for dep in task.get("dependentTasks", []):
            if dep not in siblings:
                self.problem(where, f"depends on {dep!r}, which is not a task of the same DAG")
        inputs = task.get("inputs", {})
        declared = callee.get("inputDefinitions", {})
        for key, param in inputs.get("parameters", {}).items():
            self.check_parameter_input(f"{where} input {key!r}", parent, siblings, task, param)
        for key, art in inputs.get("artifacts", {}).items():
            self.check_artifact_input(f"{where} input artifact {key!r}", parent, siblings, art)
        self.check_required_inputs(where, task, declared)
        self.check_iterator(where, task, callee)
        self.check_condition(where, task)
        self.check_retry(where, task, callee)

    def check_parameter_input(self, where: str, parent: Spec, siblings: Spec, task: Spec, param: Spec) -> None:
        if "componentInputParameter" in param:
            name = param["componentInputParameter"]
            if name not in parent.get("inputDefinitions", {}).get("parameters", {}):
                self.problem(where, f"parent DAG does not have input parameter {name!r}")
        elif "taskOutputParameter" in param:
            out = param["taskOutputParameter"]
            producer, key = out.get("producerTask", ""), out.get("outputParameterKey", "")
            if producer not in siblings:
                self.problem(where, f"producer task {producer!r} is not a task of the same DAG")
                return
            self.check_declared_output(where, siblings[producer], key, artifact=False)
        elif "taskFinalStatus" in param:
            producer = param["taskFinalStatus"].get("producerTask", "")
            if producer not in task.get("dependentTasks", []):
                self.problem(where, f"final status of {producer!r}, which the task does not depend on")
        elif "runtimeValue" not in param:
            self.problem(where, f"input of an unknown kind: {sorted(param)}")

    def check_artifact_input(self, where: str, parent: Spec, siblings: Spec, art: Spec) -> None:
        if "componentInputArtifact" in art:
            name = art["componentInputArtifact"]
            if name not in parent.get("inputDefinitions", {}).get("artifacts", {}):
                self.problem(where, f"parent DAG does not have input artifact {name!r}")
        elif "taskOutputArtifact" in art:
            out = art["taskOutputArtifact"]
            producer, key = out.get("producerTask", ""), out.get("outputArtifactKey", "")
            if producer not in siblings:
                self.problem(where, f"producer task {producer!r} is not a task of the same DAG")
                return
            self.check_declared_output(where, siblings[producer], key, artifact=True)
        else:
            self.problem(where, f"artifact input of an unknown kind: {sorted(art)}")

    def check_required_inputs(self, where: str, task: Spec, declared: Spec) -> None:
        given = task.get("inputs", {})
        item = task.get("parameterIterator", {}).get("itemInput")
        for kind in ("parameters", "artifacts"):
            for key in given.get(kind, {}):
                if key not in declared.get(kind, {}):
                    self.problem(where, f"passes {kind[:-1]} {key!r}, which its component does not declare")
            for key, spec in declared.get(kind, {}).items():
                optional = spec.get("isOptional") or "defaultValue" in spec
                if key not in given.get(kind, {}) and key != item and not optional:
                    self.problem(where, f"neither value nor default for required {kind[:-1]} {key!r}")

    def check_iterator(self, where: str, task: Spec, callee: Spec) -> None:
        if "artifactIterator" in task:
            self.problem(where, "artifact iterators are not implemented by the KFP 2.17 backend")
        iterator = task.get("parameterIterator")
        if iterator is None:
            return
        items = iterator.get("items", {})
        if "inputParameter" in items:
            if items["inputParameter"] not in task.get("inputs", {}).get("parameters", {}):
                self.problem(where, f"loop items {items['inputParameter']!r} are not an input of the loop task")
        elif "raw" not in items:
            self.problem(where, "loop has neither items from an input nor raw items")
        if iterator.get("itemInput") not in callee.get("inputDefinitions", {}).get("parameters", {}):
            self.problem(where, f"loop item {iterator.get('itemInput')!r} is not an input of the loop body")

    def check_condition(self, where: str, task: Spec) -> None:
        condition = task.get("triggerPolicy", {}).get("condition")
        if not condition:
            return
        names = _CONDITION_INPUT.findall(condition)
        if not names:
            self.problem(where, f"condition {condition!r} reads no input parameter")
        for name in names:
            if name not in task.get("inputs", {}).get("parameters", {}):
                self.problem(where, f"condition reads {name!r}, which is not an input of the task")

    def check_retry(self, where: str, task: Spec, callee: Spec) -> None:
        retry = task.get("retryPolicy")
        if retry is None:
            return
        if "dag" in callee:
            self.problem(where, "a retry policy on a DAG task is not applied (container tasks only)")
        count = retry.get("maxRetryCount", 0)
        if not isinstance(count, int) or count < 0:
            self.problem(where, f"maxRetryCount {count!r} is not a count")
        for field in ("backoffDuration", "backoffMaxDuration"):
            if field in retry and not _DURATION.match(str(retry[field])):
                self.problem(where, f"retry {field} {retry[field]!r} is not a duration like '60s'")
        factor = retry.get("backoffFactor", 0)
        if not isinstance(factor, int | float) or factor < 0:
            self.problem(where, f"retry backoffFactor {factor!r} is not a non-negative number")

    # --- outputs, followed down to the container task that writes them ---------------------------------------

    def check_declared_output(self, where: str, producer: Spec, key: str, *, artifact: bool) -> None:
        """The producer task declares output `key`, and (through DAG outputs) a container task writes it."""
        kind = "artifacts" if artifact else "parameters"
        name = producer["componentRef"]["name"]
        comp = self.components.get(name)
        if comp is None:
            return  # reported with the producer task itself
        if key not in comp.get("outputDefinitions", {}).get(kind, {}):
            self.problem(where, f"reads {kind[:-1]} {key!r}, which {name!r} does not declare")
            return
        if "dag" in comp:
            self.check_dag_output(where, name, comp, key, artifact=artifact)

    def check_dag_output(self, where: str, name: str, comp: Spec, key: str, *, artifact: bool) -> None:
        outputs = comp["dag"].get("outputs", {})
        tasks = comp["dag"].get("tasks", {})
        if artifact:
            spec = outputs.get("artifacts", {}).get(key)
            if spec is None:
                self.problem(where, f"artifact output key {key!r} not found in DAG {name!r}")
                return
            selectors = [
                (s.get("producerSubtask", ""), s.get("outputArtifactKey", ""))
                for s in spec.get("artifactSelectors", [])
            ]
        else:
            params = outputs.get("parameters", {})
            if not params:
                self.problem(where, f"DAG {name!r} declares no output parameters (no parameter_producer_task)")
                return
            spec = params.get(key)
            if spec is None:
                self.problem(where, f"output parameter {key!r} not found in DAG {name!r}")
                return
            if "valueFromParameter" in spec:
                one = spec["valueFromParameter"]
                selectors = [(one.get("producerSubtask", ""), one.get("outputParameterKey", ""))]
            else:
                selectors = [
                    (s.get("producerSubtask", ""), s.get("outputParameterKey", ""))
                    for s in spec.get("valueFromOneof", {}).get("parameterSelectors", [])
                ]
        if not selectors:
            self.problem(where, f"output {key!r} of DAG {name!r} has no selectors naming its producer")
        for subtask, subkey in selectors:
            if subtask not in tasks:
                self.problem(where, f"output {key!r} of DAG {name!r} names producer {subtask!r}, not one of its tasks")
            else:
                self.check_declared_output(f"{where} via {name}/{subtask}", tasks[subtask], subkey, artifact=artifact)

    def check_dag_outputs(self, name: str, comp: Spec) -> None:
        """Each output the component declares is one its DAG resolves (what a consumer reads follows them)."""
        declared = comp.get("outputDefinitions", {})
        for kind, artifact in (("parameters", False), ("artifacts", True)):
            for key in declared.get(kind, {}):
                self.check_dag_output(f"{name} output {key!r}", name, comp, key, artifact=artifact)


def check_ir(spec: Spec, platform: Spec | None = None) -> list[str]:
    """Every way `spec` (the compiled pipeline's first YAML document) would fail to resolve on KFP 2.17's backend.

    `platform` is the Kubernetes platform spec (`platforms.kubernetes` of the second document), if any."""
    return _Checker(spec, platform).run()


def check_compiled_yaml(text: str) -> list[str]:
    """`check_ir` over a compiled pipeline YAML: the pipeline spec, then the optional platform spec document."""
    docs = [doc for doc in yaml.safe_load_all(text) if doc]
    platform = docs[1].get("platforms", {}).get("kubernetes") if len(docs) > 1 else None
    return check_ir(docs[0], platform)

"""KFP components, one module per pipeline step. Each is a lightweight component whose body imports emtune
and calls one step adapter in `emtune.pipeline.steps`; its container image is a parameter of `component()`."""

from __future__ import annotations

import ast
import inspect
import linecache
import textwrap
from collections.abc import Callable
from typing import Any

from kfp import dsl
from kfp.dsl.python_component import PythonComponent

from emtune.pipeline.params import param_specs

# A component function's input of this name stands for every run parameter (one per config key).
RUN_PARAMETERS = "run_parameters"


def lightweight(func: Callable[..., object], base_image: str) -> PythonComponent:
    """A component running `func` on `base_image`, whose emtune install already holds kfp (nothing to pip install).

    A `run_parameters: dict` input becomes one input per run parameter (see `with_run_parameters`)."""
    if RUN_PARAMETERS in inspect.signature(func).parameters:
        func = with_run_parameters(func)
    return dsl.component(func, base_image=base_image, install_kfp_package=False)


def with_run_parameters(func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` with its `run_parameters` input replaced by one typed input per run parameter, gathered back into
    the dict `run_parameters` as the body's first statement.

    Each pipeline parameter then reaches the step as an input of its own, which KFP passes intact whatever it
    holds. (Formatted into one text input, a value with a newline, such as a multi-line data.text, broke every
    step.) KFP reads a lightweight component's inputs from its signature and ships its source to the pod, so
    the function is rebuilt from source, with the parameters that the config model defines today.
    """
    (tree,) = ast.parse(textwrap.dedent(inspect.getsource(func))).body
    assert isinstance(tree, ast.FunctionDef)
    specs = param_specs()
    own = {arg.arg for arg in tree.args.args} - {RUN_PARAMETERS}
    clashes = sorted(own & {spec.name for spec in specs})
    assert not clashes, f"component {tree.name} has inputs named like run parameters: {clashes}"
    position = [arg.arg for arg in tree.args.args].index(RUN_PARAMETERS)
    spread = [ast.arg(arg=spec.name, annotation=ast.Name(id=spec.kfp_type.__name__)) for spec in specs]
    tree.args.args[position : position + 1] = spread
    gather = ", ".join(f"{spec.name!r}: {spec.name}" for spec in specs)
    has_docstring = isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Constant)
    tree.body.insert(int(has_docstring), ast.parse(f"{RUN_PARAMETERS} = {{{gather}}}").body[0])
    tree.decorator_list = []
    source = ast.unparse(ast.fix_missing_locations(ast.Module(body=[tree], type_ignores=[]))) + "\n"
    filename = f"<emtune component {func.__module__}.{tree.name}>"
    # inspect.getsource (KFP uses it to ship the body to the pod) reads generated code from linecache.
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict[str, Any] = dict(func.__globals__)
    exec(compile(source, filename, "exec", dont_inherit=True), namespace)  # annotations stay objects for KFP
    rebuilt: Callable[..., Any] = namespace[tree.name]
    return rebuilt

"""KFP components, one module per pipeline step. Each is a lightweight component whose body imports emtune
and calls one step adapter in `emtune.pipeline.steps`; its container image is a parameter of `component()`.

A component that resolves the run's config takes every run parameter as an input of its own, so any value (a
multi-line `data.text`) reaches the step intact: the inputs between the "Run parameters" marker comments are
generated from the config model (`emtune.pipeline.component_inputs`, run by `make docs`), and the body hands
them on with `run_parameters_from(locals())`.
"""

from __future__ import annotations

from collections.abc import Callable

from kfp import dsl
from kfp.dsl.python_component import PythonComponent


def lightweight(func: Callable[..., object], base_image: str) -> PythonComponent:
    """A component running `func` on `base_image`, whose emtune install already holds kfp (nothing to pip install)."""
    return dsl.component(func, base_image=base_image, install_kfp_package=False)

"""KFP components, one module per pipeline step. Each is a lightweight component whose body imports emtune
and calls one step adapter in `emtune.pipeline.steps`; its container image is a parameter of `component()`."""

from __future__ import annotations

from collections.abc import Callable

from kfp import dsl
from kfp.dsl.python_component import PythonComponent


def lightweight(func: Callable[..., object], base_image: str) -> PythonComponent:
    """A component running `func` on `base_image`, whose emtune install already holds kfp (nothing to pip install)."""
    return dsl.component(func, base_image=base_image, install_kfp_package=False)

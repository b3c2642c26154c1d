"""A KFP task runs a step's function outside the CLI: SIGTERM (pre-emption) must still stop it as a CLI command
is stopped (an exception at a safe point), not kill the process where it stands."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from emtune.pipeline import steps

STEPS = ("prep_step", "train_step", "eval_step", "report_step", "promote_step")

# eval_step with its work replaced by "receive SIGTERM, then keep working": only a handler turns that into Stopped.
SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    import emtune.evaluate.runner as runner
    from emtune.config import RunConfig
    from emtune.interrupts import Stopped
    from emtune.pipeline import steps

    def work(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)

    runner.evaluate_pair = work
    steps.run_config = lambda *args: RunConfig()
    try:
        steps.eval_step("", {}, "builtin:tiny", 0, "demo-add", "out")
    except Stopped as stop:
        print("stopped by", stop.signal_name)
        sys.exit(3)
    """
)


def test_sigterm_during_a_step_raises_stopped_instead_of_killing_the_process(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (3, "stopped by SIGTERM"), done.stderr[-2000:]


@pytest.mark.parametrize("name", STEPS)
def test_every_step_a_component_calls_handles_stop_signals(name: str) -> None:
    assert getattr(getattr(steps, name), "__wrapped__", None) is not None, f"{name} is not @stoppable"

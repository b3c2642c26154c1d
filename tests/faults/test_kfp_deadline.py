"""A KFP host that accepts connections and never answers: submit ends at its per-call deadline, in one line."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from emtune.errors import PipelineError
from emtune.runs.submit import SubmitRequest, submit


def test_submit_to_a_silent_kfp_host_ends_at_the_call_deadline(tmp_path):
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(server.accept()[0]), daemon=True).start()
    package = tmp_path / "pipeline.yaml"
    package.write_text("{}")
    request = SubmitRequest(
        host=f"http://127.0.0.1:{server.getsockname()[1]}",
        namespace="kubeflow",
        experiment="e",
        pipeline_name="p",
        version_name="v",
        run_name="r",
        params={},
        package=package,
        call_deadline_s=1.5,
    )
    started = time.monotonic()
    try:
        with pytest.raises(PipelineError, match=r"did not answer .* within 1\.5 s"):
            submit(request)
        assert time.monotonic() - started < 1.5 + 1.0
    finally:
        server.close()

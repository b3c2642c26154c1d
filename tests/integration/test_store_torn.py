"""A push killed with SIGKILL mid-way leaves an incomplete step; running it again completes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from emtune.store import open_store

pytest_plugins = ["s3_servers"]

MIB = 1024 * 1024
FILES_IN_STEP = 6  # what make_step_dir writes


def push_command(folder, uri, cfg):
    # One part in flight at a time, 5 MiB parts, at most 16 MB/s: the 48 MiB file takes three seconds or more
    # whatever the machine's load, a wide window to kill in.
    return [
        sys.executable,
        "-m",
        "emtune",
        "ckpt",
        "push",
        str(folder),
        uri,
        "--endpoint-url",
        cfg.endpoint_url,
        "--set",
        "store.path_style=true",
        "--set",
        "store.max_concurrency=1",
        "--set",
        "store.multipart_threshold_mb=5",
        "--set",
        "store.part_size_mb=5",
        "--set",
        "store.max_bandwidth_mbps=16",
    ]


def test_killed_push_is_not_complete_and_a_rerun_finishes_it(
    s3_server, s3_store_config, s3_bucket, s3_client, make_step_dir
):
    folder = make_step_dir(5, weights_bytes=48 * MIB)
    uri = f"s3://{s3_bucket}/torn"
    prefix = "torn/step-5/"
    process = subprocess.Popen(
        push_command(folder, uri, s3_store_config), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            listed = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix=prefix).get("Contents", [])
            names = {item["Key"].removeprefix(prefix) for item in listed}
            if names and len(names) < FILES_IN_STEP and "manifest.json" not in names:
                break  # some files landed, others (the weights at least) are still on their way
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the push finished before it could be killed"

    store = open_store(uri, s3_store_config)
    assert store.complete_steps() == []
    assert store.latest() is None
    assert [(entry.step, entry.complete) for entry in store.listing()] == [(5, False)]

    rerun = subprocess.run(push_command(folder, uri, s3_store_config), capture_output=True, text=True, timeout=120)

    assert rerun.returncode == 0, rerun.stderr
    sent, present = _counts(rerun.stdout)
    assert present >= 1  # what the killed push had finished was not sent again
    assert sent >= 1 and sent + present == FILES_IN_STEP
    assert store.complete_steps() == [5]
    assert store.latest() == 5
    store.verify(5)


def _counts(summary: str) -> tuple[int, int]:
    # "<uri>: N files sent, M already present (X MB sent)"
    words = summary.replace(",", "").split()
    return int(words[words.index("files") - 1]), int(words[words.index("already") - 1])

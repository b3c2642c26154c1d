"""Two processes under torchrun with DeepSpeed ZeRO-2/3 on gloo give the update of one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from emtune.config import load_config

SCRIPT = Path(__file__).parent / "scripts" / "train_and_dump_params.py"
SETTINGS = {
    "model.path": "builtin:tiny",
    "train.prompts": "builtin:demo",
    "train.max_steps": 2,
    "train.rollouts_per_step": 8,
    "train.rollout_batch_size": 4,  # one generate batch per rank with 2 ranks: same samples as 1 process
    "train.micro_batch_size": 2,
    "train.max_new_tokens": 12,
    "train.temperature": 1.0,
    "train.top_p": 1.0,
    "train.loss_temperature": 1.0,
    "train.learning_rate": 1e-3,
    "train.weight_decay": 0.01,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(tmp_path: Path, name: str, processes: int, strategy: str, **extra: object) -> list[dict]:
    out = tmp_path / name
    out.mkdir()
    cfg = load_config(None, {**SETTINGS, "train.strategy": strategy, "run.out_dir": str(out / "run"), **extra})
    config_file = out / "config.json"
    config_file.write_text(json.dumps(cfg.model_dump(mode="json")))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu"}
    env.setdefault("TORCH_EXTENSIONS_DIR", str(Path.cwd() / ".cache" / "torch_extensions"))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(processes),
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(SCRIPT), str(config_file), str(out),
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, "\n".join(line for line in proc.stderr.splitlines() if "[rank" in line)[-6000:]
    return [torch.load(out / f"rank{r}.pt") for r in range(processes)]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "zero2", "zero3"])
def test_two_ranks_match_each_other_and_one_process(tmp_path: Path, strategy: str, tiny_model_dir: Path) -> None:
    two = launch(tmp_path, "two", 2, strategy)
    assert torch.equal(two[0]["params"], two[1]["params"]), "ranks disagree after a step"
    one = launch(tmp_path, "one", 1, "none")
    assert two[0]["losses"] == pytest.approx(one[0]["losses"], rel=1e-5)
    moved = (one[0]["params"] - two[0]["params"]).abs().max().item()
    assert torch.allclose(two[0]["params"], one[0]["params"], rtol=1e-4, atol=1e-6), moved
    # The step really moved the weights, and the exported step folder holds the trained ones.
    from transformers import AutoModelForCausalLM

    initial = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    initial_vector = torch.cat([p.detach().flatten() for p in initial.parameters()])
    assert (two[0]["params"] - initial_vector).abs().max() > 1e-3
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "two" / "run" / "step-2")
    exported_vector = torch.cat([p.detach().flatten() for p in exported.parameters()])
    assert torch.allclose(exported_vector, two[0]["params"], atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("strategy", "extra"),
    [("zero3", {}), ("zero2", {"train.offload_optimizer": True})],
    ids=["zero3", "zero2-offload"],
)
def test_bf16_deepspeed_exports_a_16bit_model(tmp_path: Path, strategy: str, extra: dict) -> None:
    from safetensors import safe_open

    ranks = launch(tmp_path, "bf16", 2, strategy, **{"train.precision": "bf16", **extra})
    assert torch.equal(ranks[0]["params"], ranks[1]["params"])
    assert all(torch.isfinite(torch.tensor(loss)) for loss in ranks[0]["losses"])
    with safe_open(tmp_path / "bf16" / "run" / "step-2" / "model.safetensors", "pt") as weights:
        dtypes = {weights.get_slice(name).get_dtype() for name in weights.keys()}  # noqa: SIM118
    assert dtypes == {"BF16"}


@pytest.mark.slow
def test_accelerate_launch_runs_the_cli_on_two_processes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    flags = [f"--set={key}={value}" for key, value in SETTINGS.items()]
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port()),
        "-m", "emtune", "train", *flags, "--set=train.strategy=ddp", "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # written once, by rank 0
    assert (out / "step-2" / "checkpoint.json").is_file()


@pytest.mark.slow
def test_two_nodes_without_a_shared_run_folder_leave_no_partial_step_behind(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """Each "node" (a torchrun of its own) has its own run folder: node 0's becomes the step, node 1's shards go."""
    from emtune.train import checkpoint

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    port = free_port()
    nodes = []
    for node in (0, 1):
        out = tmp_path / f"node{node}"
        out.mkdir()
        settings = {**SETTINGS, "train.strategy": "ddp", "train.save_every": 1, "run.out_dir": str(out / "run")}
        (out / "config.json").write_text(json.dumps(load_config(None, settings).model_dump(mode="json")))
        command = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node),
            "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", str(port), str(SCRIPT),
            str(out / "config.json"), str(out),
        ]  # fmt: skip
        log = (out / "stderr.log").open("w")
        nodes.append((subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env), log, out))
    for process, log, out in nodes:
        process.wait(timeout=900)
        log.close()
        assert process.returncode == 0, (out / "stderr.log").read_text()[-4000:]

    assert checkpoint.complete_steps(tmp_path / "node0" / "run") == [1, 2]
    node1 = tmp_path / "node1" / "run"
    assert not checkpoint.complete_steps(node1)
    assert not node1.exists() or not list(node1.glob(".step-*"))

"""The container images, built and run here: `make images` builds the CPU variant of the train image and the
dashboard image with podman from a Debian base made locally (debootstrap from this machine's Debian mirror: no
registry is reachable), then both run as UID 1000 on a read-only root filesystem with writable /tmp and /cache,
as the Helm chart runs them. Slow (minutes, GBs of disk, root): `make test-images`. Its figures (build time, image
sizes) are written to .cache/images/figures.json for docs/images.md."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from emtune import __version__
from emtune.config.images import TRAIN_IMAGE, image_ref

pytestmark = [pytest.mark.images, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "images"
BASE = "localhost/debian:bookworm-local"
REGISTRY = "localhost/emtune-test"
TRAIN = image_ref("train", registry=REGISTRY) + "-cpu"
DASHBOARD = image_ref("dashboard", registry=REGISTRY)
# podman runs containers with runc here (crun fails on rlimits and cgroups), within these limits.
RUN = "run --rm --runtime runc --network none --ulimit nofile=1024:20000 --ulimit nproc=4096:4096".split()
# What the chart does: a non-root user, a read-only root, emptyDirs at /tmp and /cache.
LOCKED_DOWN = (
    "--user 1000:0 --read-only --read-only-tmpfs=false --tmpfs /tmp:rw,mode=1777 --tmpfs /cache:rw,mode=1777".split()
)
COMMANDS = """
import emtune.cli, typer.main
group = typer.main.get_command(emtune.cli.app)
names = []
for name, command in group.commands.items():
    subcommands = getattr(command, "commands", None)
    names += [f"{name} {sub}" for sub in subcommands] if subcommands else [name]
print(" ".join(sorted(names)))
"""


def ensure_tools() -> None:
    """podman, runc and debootstrap from Debian's archive, installed on first use (CI starts bare)."""
    if all(shutil.which(tool) for tool in ("podman", "runc", "debootstrap")):
        return
    if os.geteuid() != 0:
        pytest.fail("building images here needs root (podman without a daemon, debootstrap)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "podman", "buildah", "runc", "debootstrap"],
        check=True,
        env=env,
        timeout=1200,
    )


class Podman:
    """podman on a storage of its own (removed afterwards), so the test neither sees nor leaves other images."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.flags = ["--root", str(root / "storage"), "--runroot", str(root / "run"), "--storage-driver", "overlay"]

    def __call__(self, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["podman", *self.flags, *args], capture_output=True, text=True, timeout=timeout)

    def remove(self) -> None:
        self("rmi", "--all", "--force")
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(self.root))), reverse=True):
            subprocess.run(["umount", mount], check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    ensure_tools()
    tool = Podman(tmp_path_factory.mktemp("containers"))
    env = {**os.environ, "IMAGE_TOOL": "podman", "IMAGE_TOOL_FLAGS": " ".join(tool.flags), "CACHE_DIR": str(CACHE)}
    made = subprocess.run(
        [str(REPO / "images" / "local-base.sh"), BASE], capture_output=True, text=True, env=env, timeout=1200
    )
    assert made.returncode == 0, made.stderr[-3000:]
    yield tool
    tool.remove()


@pytest.fixture(scope="module")
def built(podman: Podman) -> dict[str, object]:
    """`make images` for the CPU train image and the dashboard image; the figures it took."""
    args = [
        "IMAGES=train dashboard",
        "VARIANT=cpu",
        f"BASE_IMAGE={BASE}",
        f"REGISTRY={REGISTRY}",
        "IMAGE_TOOL=podman",
        f"IMAGE_TOOL_FLAGS={' '.join(podman.flags)}",
        "IMAGE_BUILD_FLAGS=--isolation chroot",
    ]
    revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    start = time.monotonic()
    done = subprocess.run(["make", "-s", "images", *args], cwd=REPO, capture_output=True, text=True, timeout=5400)
    seconds = time.monotonic() - start
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    sizes = {}
    for image in (TRAIN, DASHBOARD):
        inspected = podman("image", "inspect", "--format", "{{.Size}}", image)
        assert inspected.returncode == 0, inspected.stderr
        sizes[image] = int(inspected.stdout)
    figures = {"build_seconds": round(seconds), "image_bytes": sizes, "machine": "2-core x86-64 CPU, no GPU, shared"}
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "figures.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return {**figures, "revision": revision}


def config_of(podman: Podman, image: str) -> dict:
    inspected = podman("image", "inspect", image)
    assert inspected.returncode == 0, inspected.stderr
    return json.loads(inspected.stdout)[0]["Config"]


@pytest.mark.parametrize("image", [TRAIN, DASHBOARD])
def test_non_root_labels_caches_and_no_secrets(podman: Podman, built: dict, image: str) -> None:
    config = config_of(podman, image)
    assert config["User"] == "1000:0"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.revision"] == built["revision"]  # the commit checked out when built
    assert labels["org.opencontainers.image.source"].startswith("https://")
    env = dict(item.split("=", 1) for item in config["Env"])
    assert {
        key: env[key]
        for key in (
            "HOME",
            "HF_HOME",
            "TRITON_CACHE_DIR",
            "TORCHINDUCTOR_CACHE_DIR",
            "VLLM_CACHE_ROOT",
            "TORCH_EXTENSIONS_DIR",
            "XDG_CACHE_HOME",
        )
    } == {
        "HOME": "/home/emtune",
        "HF_HOME": "/cache/huggingface",
        "TRITON_CACHE_DIR": "/cache/triton",
        "TORCHINDUCTOR_CACHE_DIR": "/cache/inductor",
        "VLLM_CACHE_ROOT": "/cache/vllm",
        "TORCH_EXTENSIONS_DIR": "/cache/torch_extensions",
        "XDG_CACHE_HOME": "/cache",
    }
    assert not [key for key in env if "CERT" in key or "TOKEN" in key or "SECRET" in key]
    # The build's CA bundle was a secret: nothing of it is left in the image.
    found = podman(*RUN, "--entrypoint", "bash", image, "-c", "ls /run/secrets 2>/dev/null; id -u; id -g")
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == ["1000", "0"]


@pytest.mark.parametrize("image", [TRAIN, DASHBOARD])
def test_an_arbitrary_uid_in_group_0_can_write_home_and_caches(podman: Podman, built: dict, image: str) -> None:
    probe = podman(
        *RUN,
        "--user",
        "1000650000:0",
        "--entrypoint",
        "bash",
        image,
        "-c",
        "touch $HOME/probe /cache/probe && emtune --help >/dev/null && echo ok",
    )
    assert probe.returncode == 0 and probe.stdout.strip() == "ok", probe.stderr[-2000:]


def test_train_image_runs_emtune_train_read_only_as_uid_1000(podman: Podman, built: dict) -> None:
    helped = podman(*RUN, *LOCKED_DOWN, TRAIN, "--help")  # the entrypoint is emtune
    assert helped.returncode == 0 and "train" in helped.stdout, helped.stderr[-2000:]
    script = (
        "emtune train --model builtin:tiny --prompts builtin:demo --max-steps 2 --out /tmp/run"
        " --set train.rollouts_per_step=4 --set train.rollout_batch_size=4 --set train.micro_batch_size=4"
        " --set train.max_new_tokens=8 >&2"
        " && cat /tmp/run/step-2/checkpoint.json && echo --- && cat /tmp/run/metrics.jsonl"
    )
    trained = podman(*RUN, *LOCKED_DOWN, "--entrypoint", "bash", TRAIN, "-c", script, timeout=1200)
    assert trained.returncode == 0, trained.stderr[-3000:]
    checkpoint, metrics = trained.stdout.split("---")
    assert json.loads(checkpoint)["step"] == 2
    rows = [json.loads(line) for line in metrics.splitlines() if line.strip()]
    assert [row["step"] for row in rows] == [1, 2]


def test_train_image_has_deepspeed_cpu_adam_prebuilt(podman: Podman, built: dict) -> None:
    script = (
        "import torch, deepspeed.git_version_info as v\n"
        "assert v.installed_ops['cpu_adam'], v.installed_ops\n"
        "from deepspeed.ops.adam import DeepSpeedCPUAdam\n"
        "p = torch.nn.Parameter(torch.ones(4)); p.grad = torch.ones(4)\n"
        "DeepSpeedCPUAdam([p], lr=0.1).step()\n"
        "import os; ext = '/cache/torch_extensions'\n"
        "assert not (os.path.isdir(ext) and os.listdir(ext)), os.listdir(ext)\n"
        "print(float(p.sum()))\n"
    )
    ran = podman(*RUN, *LOCKED_DOWN, "--entrypoint", "python", TRAIN, "-c", script, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert float(ran.stdout.split()[-1]) < 4.0  # one Adam step moved the weights: the op loaded without a JIT build


def test_dashboard_image_has_no_torch_and_emtunes_commands(podman: Podman, built: dict) -> None:
    no_torch = podman(*RUN, *LOCKED_DOWN, "--entrypoint", "python", DASHBOARD, "-c", "import torch")
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr
    here = subprocess.run([sys.executable, "-c", COMMANDS], capture_output=True, text=True, timeout=300)
    there = podman(*RUN, *LOCKED_DOWN, "--entrypoint", "python", DASHBOARD, "-c", COMMANDS)
    assert there.returncode == 0, there.stderr[-3000:]
    assert there.stdout.split() == here.stdout.split()
    compiled = podman(
        *RUN,
        *LOCKED_DOWN,
        "--entrypoint",
        "bash",
        DASHBOARD,
        "-c",
        "emtune pipeline compile -o /tmp/p.yaml >&2 && cat /tmp/p.yaml",
    )
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    spec = next(yaml.safe_load_all(compiled.stdout))
    assert spec["deploymentSpec"]["executors"]["exec-train"]["container"]["image"] == TRAIN_IMAGE

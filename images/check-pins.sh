#!/usr/bin/env bash
# Checks that images/versions.env's pins resolve together, from PyPI metadata only (nothing is installed): the train
# set (torch, DeepSpeed, transformers, accelerate, emtune's train extras) and the eval set (vLLM with its own torch
# pin, transformers, emtune's eval extras), for this machine's platform; run it with the images' Python (Linux
# x86-64, versions.env's PYTHON_VERSION: DeepSpeed is an sdist, so pip resolves for its own interpreter). Needs PyPI; prints the
# resolved versions of the pinned packages and fails when pip cannot resolve a set or picks another version.
# Usage: images/check-pins.sh   env: PIP_CERT (CA bundle, when PyPI is reached through an intercepting proxy)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
# shellcheck source=versions.env
. "$here/versions.env"
python3 -c "import sys; assert '%d.%d' % sys.version_info[:2] == '$PYTHON_VERSION', 'run with Python $PYTHON_VERSION'"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

resolve() {  # name requirement...
    local name=$1
    shift
    # --isolated: this machine's pip config (local wheel folders, version caps) must not decide.
    python3 -m pip install --isolated ${PIP_CERT:+--cert "$PIP_CERT"} --quiet --dry-run --ignore-installed \
        --report "$work/$name.json" "$@"
    python3 - "$work/$name.json" "$name" <<'PY'
import json, sys
report, name = json.load(open(sys.argv[1])), sys.argv[2]
got = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in report["install"]}
print(name + ": " + " ".join(f"{k}=={got[k]}" for k in ("torch", "deepspeed", "vllm", "transformers", "accelerate") if k in got))
PY
}

wheel_dir="$work/dist"
python3 -m pip wheel --isolated ${PIP_CERT:+--cert "$PIP_CERT"} --quiet --no-deps --wheel-dir "$wheel_dir" "$repo"
emtune=$(echo "$wheel_dir"/emtune-*.whl)
resolve train "torch==$TORCH_VERSION" "deepspeed==$DEEPSPEED_VERSION" "transformers==$TRANSFORMERS_VERSION" \
    "accelerate==$ACCELERATE_VERSION" "emtune[deepspeed,lora,wandb,data,s3,pipeline] @ file://$emtune"
resolve eval "vllm==$VLLM_VERSION" "torch==$TORCH_VERSION" "transformers==$TRANSFORMERS_VERSION" \
    "emtune[eval,data,s3,pipeline,registry] @ file://$emtune"

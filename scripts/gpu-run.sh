#!/usr/bin/env bash
# Run a command on a GPU device machine, whose python has torch, transformers and accelerate but none of
# emtune's other pure-Python needs, and where nothing can be downloaded:
#   scripts/gpu-run.sh --fetch          here (PyPI reachable): put those wheels in .cache/gpu-wheels
#   scripts/gpu-run.sh CMD ARGS...      there (with .cache/gpu-wheels carried along): install them into a
#                                       scratch folder, put this checkout on PYTHONPATH, run CMD
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS="${EMTUNE_GPU_WHEELS:-.cache/gpu-wheels}"
PYTHON="${PYTHON:-python3}"
# pydantic's exact pair of versions, as the dev venv resolves them; the device's python is 3.12 on x86-64.
PACKAGES=(pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5)

if [[ "${1:-}" == "--fetch" ]]; then
    mkdir -p "$WHEELS"
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$WHEELS" "${PACKAGES[@]}"
    echo "wheels for the device machine in $WHEELS (carry it along)"
    exit 0
fi

if ! "$PYTHON" -c "import pydantic" 2>/dev/null; then
    if ! compgen -G "$WHEELS/*.whl" >/dev/null; then
        echo "pydantic is missing and $WHEELS holds no wheels: run 'scripts/gpu-run.sh --fetch' where PyPI is" \
             "reachable and carry $WHEELS to this machine" >&2
        exit 2
    fi
    SITE="${TMPDIR:-/tmp}/emtune-gpu-site"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$WHEELS"/*.whl
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 WANDB_MODE=disabled PYTHONUNBUFFERED=1
exec "$@"

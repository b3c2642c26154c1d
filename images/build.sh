#!/usr/bin/env bash
# Builds emtune's images with whichever builder is present: images/build.sh [--print] [train] [eval] [dashboard]
# (default: all three). First the shared base and the emtune wheel (images/base.Dockerfile), then each role.
# --print only prints the names the images would get (what emtune.config.images defaults to).
#
# Environment (all optional):
#   REGISTRY          where the images are named and pushed          (default: ghcr.io/emtune)
#   TAG               image tag                                      (default: emtune's version)
#   VARIANT           cuda | cpu; cpu builds train with CPU torch      (default: cuda; eval has no cpu variant)
#   BASE_IMAGE        the Debian 12 base                              (default: images/versions.env's, by digest)
#   TORCH_INDEX_URL   extra pip index for torch, e.g. https://download.pytorch.org/whl/cpu for VARIANT=cpu
#   IMAGE_TOOL        docker | podman | buildah                       (default: the first that works)
#   IMAGE_TOOL_FLAGS  global flags for the tool, e.g. "--storage-driver vfs"
#   IMAGE_BUILD_FLAGS extra build flags, e.g. "--isolation chroot" (podman/buildah without a runtime)
#   PIP_CERT_FILE     CA bundle pip trusts inside the build, passed as a build secret, never stored in an image
#                     (default: $PIP_CERT when set)
#   PUSH=1            push the role images after building them
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
print_only=0
if [ "${1:-}" = --print ]; then print_only=1; shift; fi
roles=("$@")
[ ${#roles[@]} -gt 0 ] || roles=(train eval dashboard)

base_override=${BASE_IMAGE:-}
set -a
# shellcheck source=versions.env
. "$here/versions.env"
set +a
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$repo/emtune/__init__.py")
registry=${REGISTRY:-ghcr.io/emtune}
registry=${registry%/}
tag=${TAG:-$version}
variant=${VARIANT:-cuda}
base_image=${base_override:-$BASE_IMAGE}

case "$variant" in
    cuda | cpu) ;;
    *) echo "VARIANT must be cuda or cpu, not '$variant'" >&2; exit 2 ;;
esac
name() {  # role -> image name; only the train image has a cpu variant (the dashboard has no torch at all)
    local suffix=""
    [ "$1" != train ] || [ "$variant" != cpu ] || suffix=-cpu
    echo "$registry/emtune-$1:$tag$suffix"
}
for role in "${roles[@]}"; do
    case "$role" in
        train | dashboard) ;;
        eval) [ "$variant" = cuda ] || { echo "eval has no cpu variant (its torch is vLLM's CUDA pin)" >&2; exit 2; } ;;
        *) echo "unknown image '$role': train, eval or dashboard" >&2; exit 2 ;;
    esac
done
if [ "$print_only" = 1 ]; then
    for role in "${roles[@]}"; do name "$role"; done
    exit 0
fi

# The CPU torch wheel: from PyTorch's CPU index when given, else from a wheel pip can reach without an index here
# (its find-links or a local wheel folder), copied into images/wheels, else from PyTorch's CPU index.
torch_index=${TORCH_INDEX_URL:-}
if [ "$variant" = cpu ] && [ -z "$torch_index" ] && ! ls "$here/wheels/torch-$TORCH_VERSION+cpu-"*.whl >/dev/null 2>&1; then
    python3 -m pip download -q --no-deps --no-index -d "$here/wheels" "torch==$TORCH_VERSION+cpu" >&2 \
        || torch_index=https://download.pytorch.org/whl/cpu
fi

tool=${IMAGE_TOOL:-}
if [ -z "$tool" ]; then
    if command -v docker >/dev/null && docker info >/dev/null 2>&1; then tool=docker
    elif command -v podman >/dev/null; then tool=podman
    elif command -v buildah >/dev/null; then tool=buildah
    else echo "no image builder: install docker, podman or buildah" >&2; exit 2
    fi
fi
read -r -a tool_flags <<<"${IMAGE_TOOL_FLAGS:-}"
read -r -a build_flags <<<"${IMAGE_BUILD_FLAGS:-}"
case "$tool" in
    docker) export DOCKER_BUILDKIT=1; build=(docker "${tool_flags[@]}" build) ;;
    # Docker's image format, as docker builds: the OCI format drops SHELL.
    buildah) build=(buildah "${tool_flags[@]}" bud --format docker) ;;
    *) build=("$tool" "${tool_flags[@]}" build --format docker) ;;
esac

# The secret is always declared; an empty one means pip uses the image's own CA bundle.
cert=${PIP_CERT_FILE:-${PIP_CERT:-}}
secret_file=$(mktemp)
trap 'rm -f "$secret_file"' EXIT
[ -z "$cert" ] || cat "$cert" >"$secret_file"

args=()
while IFS='=' read -r key _; do
    [ "$key" = BASE_IMAGE ] || args+=(--build-arg "$key=${!key}")
done < <(grep -E '^[A-Z_]+=' "$here/versions.env")
args+=(
    --build-arg "BASE_IMAGE=$base_image"
    --build-arg "EMTUNE_VERSION=$version"
    --build-arg "VCS_REF=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
    --build-arg "VARIANT=$variant"
    --build-arg "TORCH_INDEX_URL=$torch_index"
    --build-arg "EMTUNE_BASE=localhost/emtune-base:$tag"
    --build-arg "EMTUNE_WHEEL=localhost/emtune-wheel:$tag"
    --secret "id=pip_cert,src=$secret_file"
)

run_build() {  # dockerfile image [flags...]
    local file=$1 image=$2
    shift 2
    echo "building $image" >&2
    "${build[@]}" "${build_flags[@]}" -f "$here/$file" -t "$image" "${args[@]}" "$@" "$repo"
}

start=$SECONDS
run_build base.Dockerfile "localhost/emtune-base:$tag" --target runtime
run_build base.Dockerfile "localhost/emtune-wheel:$tag" --target wheel
for role in "${roles[@]}"; do
    image=$(name "$role")
    run_build "$role.Dockerfile" "$image"
    if [ "${PUSH:-0}" = 1 ]; then
        "$tool" "${tool_flags[@]}" push "$image"
    fi
done
echo "built ${roles[*]} ($variant) in $((SECONDS - start)) s" >&2

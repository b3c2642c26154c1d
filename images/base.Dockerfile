# What every emtune image shares (built first by images/build.sh; the role images start FROM it):
#   runtime: Debian's Python in a venv at /opt/venv; user emtune (UID 1000, GID 0, group-writable home, so an
#            arbitrary UID in group 0 works too, as OpenShift runs it); caches under /cache and scratch in /tmp,
#            which the chart mounts as emptyDirs so a read-only root filesystem works. No secrets, no tokens.
#   wheel:   the emtune wheel built from this checkout, so every image runs the commit's emtune.
# Build context: the repository root (see .dockerignore).
ARG BASE_IMAGE

FROM ${BASE_IMAGE} AS runtime
ARG PYTHON_VERSION
ARG EMTUNE_VERSION
ARG VCS_REF=unknown
ARG SOURCE_URL=https://github.com/emtune/emtune
LABEL org.opencontainers.image.title="emtune" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.version="${EMTUNE_VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN : "${PYTHON_VERSION:?build with images/build.sh, which reads images/versions.env}" \
    && apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv tini \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -c "import sys; v = '%d.%d' % sys.version_info[:2]; assert v == '${PYTHON_VERSION}', v" \
    && python3 -m venv /opt/venv \
    && useradd --uid 1000 --gid 0 --home-dir /home/emtune --create-home --shell /bin/bash emtune \
    && mkdir -p /cache \
    && chgrp -R 0 /home/emtune /cache \
    && chmod -R g=u /home/emtune /cache \
    && chmod 1777 /cache
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    HOME=/home/emtune \
    XDG_CACHE_HOME=/cache \
    HF_HOME=/cache/huggingface \
    TRITON_CACHE_DIR=/cache/triton \
    TORCHINDUCTOR_CACHE_DIR=/cache/inductor \
    VLLM_CACHE_ROOT=/cache/vllm \
    TORCH_EXTENSIONS_DIR=/cache/torch_extensions \
    EMTUNE_CACHE=/cache/emtune \
    MPLCONFIGDIR=/cache/matplotlib \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /home/emtune
USER 1000:0
ENTRYPOINT ["tini", "--", "emtune"]
CMD ["--help"]

FROM runtime AS wheel
# An intermediate stage that never runs as an image: it builds as root.
# hadolint ignore=DL3002
USER 0:0
COPY pyproject.toml README.md /src/
COPY emtune /src/emtune
COPY components /src/components
COPY workflows /src/workflows
# pip reaches the index through the build host's CA when one is given as the secret `pip_cert` (never stored).
RUN --mount=type=secret,id=pip_cert,mode=0444 \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
    && pip wheel --no-cache-dir --no-deps --wheel-dir /dist /src

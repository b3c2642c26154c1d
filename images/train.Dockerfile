# The train image (also runs the pipeline's prep step and multi-node TrainJobs): torch, DeepSpeed with its CPU-Adam
# (and, for CUDA, fused-Adam) ops prebuilt, accelerate, transformers and emtune with the extras a training pod needs.
#   VARIANT=cuda: PyPI's torch, whose wheels carry the CUDA runtime; the ops are compiled with nvcc from NVIDIA's
#                 Debian 12 repository in a build stage that the image does not keep.
#   VARIANT=cpu:  the CPU build of torch and CPU Adam only; the same stages otherwise (what `make test-images` builds).
# Build with images/build.sh: it builds EMTUNE_BASE and EMTUNE_WHEEL (base.Dockerfile) and passes versions.env.
ARG EMTUNE_BASE
ARG EMTUNE_WHEEL
FROM ${EMTUNE_WHEEL} AS wheel

FROM ${EMTUNE_BASE} AS torch
ARG VARIANT=cuda
ARG TORCH_VERSION
ARG TORCH_INDEX_URL=
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Installs run as root; the final stage switches back to the image's user.
# hadolint ignore=DL3002
USER 0:0
# A compiler and Python's headers stay in the image: Triton compiles its launchers and DeepSpeed its JIT ops at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ python3-dev \
    && rm -rf /var/lib/apt/lists/*
# images/wheels is offered before any index (e.g. the CPU torch wheel where no index serves it).
RUN --mount=type=secret,id=pip_cert,mode=0444 --mount=type=bind,source=images/wheels,target=/wheels \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
    && if [ -n "$TORCH_INDEX_URL" ]; then export PIP_EXTRA_INDEX_URL="$TORCH_INDEX_URL"; fi \
    && local_version=$([ "$VARIANT" = cpu ] && echo +cpu || true) \
    && pip install --no-cache-dir --find-links /wheels \
        "torch==${TORCH_VERSION:?see images/versions.env}${local_version}" "ninja==1.13.2" \
    && echo "torch==${TORCH_VERSION}${local_version}" >/opt/venv/torch-constraint.txt

FROM torch AS deepspeed
ARG VARIANT=cuda
ARG CUDA_VERSION
ARG TORCH_CUDA_ARCH_LIST
ARG DEEPSPEED_VERSION
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# nvcc and the CUDA headers for the fused-Adam kernel, matching the CUDA release torch was built with.
RUN if [ "$VARIANT" = cuda ]; then \
        python3 -c "import urllib.request as u; u.urlretrieve('https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb', '/tmp/keyring.deb')" \
        && dpkg -i /tmp/keyring.deb && rm /tmp/keyring.deb \
        && apt-get update \
        && apt-get install -y --no-install-recommends "cuda-toolkit-$(echo "$CUDA_VERSION" | tr . -)" \
        && rm -rf /var/lib/apt/lists/*; \
    fi
RUN --mount=type=secret,id=pip_cert,mode=0444 \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
    && if [ "$VARIANT" = cuda ]; then \
        export DS_ACCELERATOR=cuda DS_BUILD_FUSED_ADAM=1 CUDA_HOME="/usr/local/cuda-${CUDA_VERSION}" \
               TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST}"; \
    else \
        export DS_ACCELERATOR=cpu; \
    fi \
    && pip install --no-cache-dir -c /opt/venv/torch-constraint.txt "setuptools==84.2.1" "wheel==0.48.0" \
    && DS_BUILD_OPS=0 DS_BUILD_CPU_ADAM=1 pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /dist \
        "deepspeed==${DEEPSPEED_VERSION:?see images/versions.env}"

FROM torch AS train
ARG VARIANT=cuda
ARG TRANSFORMERS_VERSION
ARG ACCELERATE_VERSION
RUN --mount=type=secret,id=pip_cert,mode=0444 \
    --mount=type=bind,from=deepspeed,source=/dist,target=/dist/deepspeed \
    --mount=type=bind,from=wheel,source=/dist,target=/dist/emtune \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
    && emtune_wheel=$(echo /dist/emtune/emtune-*.whl) \
    && pip install --no-cache-dir -c /opt/venv/torch-constraint.txt /dist/deepspeed/deepspeed-*.whl \
        "emtune[deepspeed,lora,wandb,data,s3,pipeline] @ file://${emtune_wheel}" \
        "transformers==${TRANSFORMERS_VERSION:?}" "accelerate==${ACCELERATE_VERSION:?}" \
    && python3 -c "import deepspeed.ops.op_builder as ops; assert ops.CPUAdamBuilder().is_compatible()"
ENV DS_ACCELERATOR=${VARIANT}
USER 1000:0

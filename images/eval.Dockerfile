# The eval image (also renders the report and runs the promote step): vLLM, whose exact torch pin decides this
# image's torch, math-verify, matplotlib, the registry clients and emtune with its eval extras. CUDA only: the CUDA
# runtime comes with torch's and vLLM's wheels.
# Build with images/build.sh: it builds EMTUNE_BASE and EMTUNE_WHEEL (base.Dockerfile) and passes versions.env.
ARG EMTUNE_BASE
ARG EMTUNE_WHEEL
FROM ${EMTUNE_WHEEL} AS wheel

FROM ${EMTUNE_BASE} AS eval
ARG VLLM_VERSION
ARG TORCH_VERSION
ARG TRANSFORMERS_VERSION
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
USER 0:0
# Triton (vLLM's kernels, torch.compile) compiles its launchers with the system C compiler at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev python3-dev \
    && rm -rf /var/lib/apt/lists/*
RUN --mount=type=secret,id=pip_cert,mode=0444 \
    --mount=type=bind,from=wheel,source=/dist,target=/dist/emtune \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
    && emtune_wheel=$(echo /dist/emtune/emtune-*.whl) \
    && pip install --no-cache-dir "vllm==${VLLM_VERSION:?see images/versions.env}" "torch==${TORCH_VERSION:?}" \
        "transformers==${TRANSFORMERS_VERSION:?}" "emtune[eval,data,s3,pipeline,registry] @ file://${emtune_wheel}"
USER 1000:0

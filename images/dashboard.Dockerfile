# The dashboard image: a slim CPU image without torch holding what `emtune dashboard` and kfp need; the chart's
# pipeline-registration hook runs `emtune pipeline sync` from it too. It installs emtune[dashboard,pipeline,s3]
# less the training stack (torch, transformers, accelerate, ...), which none of its commands import.
# Build with images/build.sh: it builds EMTUNE_BASE and EMTUNE_WHEEL (base.Dockerfile) and passes versions.env.
ARG EMTUNE_BASE
ARG EMTUNE_WHEEL
FROM ${EMTUNE_WHEEL} AS wheel

FROM ${EMTUNE_BASE} AS dashboard
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
USER 0:0
RUN --mount=type=secret,id=pip_cert,mode=0444 \
    --mount=type=bind,from=wheel,source=/dist,target=/dist/emtune \
    --mount=type=bind,source=images/requirements.py,target=/tmp/requirements.py \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
    && pip install --no-cache-dir --no-deps /dist/emtune/emtune-*.whl \
    && python3 /tmp/requirements.py --extras dashboard,pipeline,s3 \
        --without torch,transformers,accelerate,tokenizers,safetensors >/tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
USER 1000:0
EXPOSE 8080
CMD ["dashboard"]

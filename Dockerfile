# The gpufleet runtime image: what the kubernetes target's pods run (`gpufleet serve|run|data`).
#
# It installs the runtime bundle and nothing else: the same reproducible wheel and pinned
# requirements.txt that cloud instances install (infra/bundle.py), so a pod and an instance run
# the same code with the same dependencies. `make image` writes the bundle to build/image/bundle/
# and builds:
#   make image IMAGE=registry.example.com/gpufleet-runtime:0.1.0
#   make image TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu    # CPU-only torch (kind, CI)
# Without TORCH_INDEX_URL, pip takes torch from PyPI: the CUDA build, for GPU nodes.
#
# The pods run as uid/gid 10001 (runAsNonRoot needs a numeric USER to verify), with a read-only
# root filesystem: the working directory /var/lib/gpufleet is where the manifests mount the
# config, the artifacts volume and a scratch emptyDir (HOME and TMPDIR point there).
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

ARG BUNDLE=build/image/bundle
ARG TORCH_INDEX_URL=
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/gpufleet/bin:$PATH

RUN groupadd --system --gid 10001 gpufleet \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/gpufleet --no-create-home \
      --shell /usr/sbin/nologin gpufleet \
 && install -d -o 10001 -g 10001 -m 0755 /var/lib/gpufleet

COPY ${BUNDLE}/ /tmp/bundle/
# torch first from TORCH_INDEX_URL when given (its CPU or a specific CUDA build); then the bundle's
# pinned requirements and its wheel, which find that torch already satisfied.
RUN python -m venv /opt/gpufleet \
 && if [ -n "$TORCH_INDEX_URL" ]; then \
      pip install --index-url "$TORCH_INDEX_URL" "$(grep -E '^torch([=<>!~ ]|$)' /tmp/bundle/requirements.txt)"; \
    fi \
 && pip install -r /tmp/bundle/requirements.txt /tmp/bundle/*.whl \
 && rm -rf /tmp/bundle \
 && gpufleet --help >/dev/null

WORKDIR /var/lib/gpufleet
USER 10001:10001
ENTRYPOINT ["gpufleet"]
CMD ["--help"]

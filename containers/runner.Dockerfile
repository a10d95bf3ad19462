# The workflow runner image: yadage, packtivity and recast-atlas as requirements-runner.lock
# pins them (the versions of requirements-preserve.lock, without reana-client and
# snakemake), and a docker client. recast-atlas's docker
# backend runs yadage in such an image, which starts each step's container through the
# docker socket it is given (recast/recastatlas:v0.4.2 is the upstream one; this one is
# built from the same pins as .venv-preserve, without a registry):
#
#   RECAST_DOCKER_IMAGE=$(containers/build.sh --runner) recast run heirloom/agc_zprime --backend docker
#
# containers/build.sh --runner builds it (FROM the same base as the analysis image).
ARG BASE=localhost/heirloom-base:bookworm
FROM ${BASE}

# keep equal to UV_VERSION in setup.sh
ARG UV_VERSION=0.13.9
ARG CA_BUNDLE=
ARG UV_CACHE_DIR=/tmp/uv-cache

LABEL org.opencontainers.image.title="heirloom/workflow-runner" \
      org.opencontainers.image.description="yadage, packtivity, recast-atlas (requirements-runner.lock) and a docker client"

# docker run pulls a missing step image by itself; packtivity's extra pull would fail
# for an image that only exists locally
# containers/steplog.py: Heirloom's one-line messages from each step on the terminal
ENV PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin \
    PACKTIVITY_DOCKER_NOPULL=1 \
    PYTHONPATH=/opt/runner \
    PACKTIVITY_LOGGING_HANDLER=steplog:handlers \
    UV_LINK_MODE=copy

COPY requirements-runner.lock containers/steplog.py /opt/runner/
# graphviz: yadage draws the workflow with `dot` when it ends (recast-atlas asks for it);
# the docker client: the one build.sh mounts from the host (/opt/host-docker), else Debian's
RUN set -eu; \
    if [ -n "$CA_BUNDLE" ]; then export SSL_CERT_FILE="$CA_BUNDLE" PIP_CERT="$CA_BUNDLE"; fi; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update -q; \
    apt-get install -y -q --no-install-recommends graphviz; \
    if [ -x /opt/host-docker ]; then cp /opt/host-docker /usr/local/bin/docker; \
    else apt-get install -y -q --no-install-recommends docker.io; fi; \
    rm -rf /var/lib/apt/lists/*; \
    python3.11 -m venv /opt/venv; \
    /opt/venv/bin/python -m pip install --no-cache-dir -q "uv==${UV_VERSION}"; \
    /opt/venv/bin/uv pip install -q --python /opt/venv/bin/python --compile-bytecode \
        -r /opt/runner/requirements-runner.lock; \
    if [ "$UV_CACHE_DIR" = /tmp/uv-cache ]; then rm -rf /tmp/uv-cache; fi; \
    rm -rf /tmp/* /root/.cache; \
    docker --version; dot -V; yadage-run --help >/dev/null

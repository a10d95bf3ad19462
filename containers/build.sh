#!/usr/bin/env bash
# Build the analysis image under the name the exports write (tasks/export/image.py):
# heirloom/analysis:<version>-<hash of every file the image copies>, or $HEIRLOOM_IMAGE
# with that tag. Prints the image reference as its last line.
#
#   containers/build.sh                                   # local Debian base (containers/base.sh), podman or docker
#   containers/build.sh --base python:3.11-slim-bookworm  # a registry base, pinned by its digest
#   HEIRLOOM_IMAGE=registry.example.org/group/heirloom-analysis containers/build.sh
#
#   containers/build.sh --runner                          # the workflow runner (yadage, recast-atlas, docker client)
#
# An image that exists already under its content tag is not built again (--force builds).
# With podman the build reuses the host's uv download cache and certificate bundle.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BASE=localhost/heirloom-base:bookworm
FORCE=
RUNNER=
while [ $# -gt 0 ]; do
    case "$1" in
        --base) BASE=$2; shift 2 ;;
        --force) FORCE=1; shift ;;
        --runner) RUNNER=1; shift ;;
        *) echo "containers/build.sh: unknown option $1 (use --base REF, --force, --runner)" >&2; exit 2 ;;
    esac
done
ENGINE=${HEIRLOOM_ENGINE:-$(command -v podman >/dev/null 2>&1 && echo podman || echo docker)}
PYTHON=${HEIRLOOM_PYTHON_FOR_TAG:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
if [ "$ENGINE" = podman ] && [ -z "${CONTAINERS_CONF:-}" ]; then
    export CONTAINERS_CONF="$PWD/containers/podman.conf"
fi
log() { printf '[image] %s\n' "$*" >&2; }

if [ -n "$RUNNER" ]; then
    DOCKERFILE=containers/runner.Dockerfile
    IMAGE="heirloom/workflow-runner:$(cat requirements-runner.lock containers/runner.Dockerfile containers/steplog.py | sha256sum | cut -c1-12)"
else
    DOCKERFILE=containers/Dockerfile
    IMAGE=$("$PYTHON" -m tasks.export.image)
fi
if [ -z "$FORCE" ] && "$ENGINE" image inspect "$IMAGE" >/dev/null 2>&1; then
    log "$IMAGE exists (same content): not rebuilt"
    echo "$IMAGE"
    exit 0
fi

args=()
case "$BASE" in
    localhost/*)
        "$ENGINE" image inspect "$BASE" >/dev/null 2>&1 || containers/base.sh "$BASE" >/dev/null
        BASE_ID=$("$ENGINE" image inspect --format '{{.Id}}' "$BASE")
        args+=(--label "heirloom.base.id=$BASE_ID") ;;
    *@sha256:*) ;;
    *)  "$ENGINE" pull --quiet "$BASE" >/dev/null
        digest=$("$ENGINE" image inspect --format '{{index .RepoDigests 0}}' "$BASE")
        log "base $BASE pinned as $digest"
        BASE=$digest ;;
esac
if [ "$ENGINE" = podman ]; then
    args+=(--network host)
    cert=${SSL_CERT_FILE:-${PIP_CERT:-}}
    if [ -n "$cert" ] && [ -f "$cert" ]; then
        args+=(--volume "$cert:$cert:ro" --build-arg "CA_BUNDLE=$cert")
    fi
    uv_cache=${UV_CACHE_DIR:-$HOME/.cache/uv}
    if [ -d "$uv_cache" ]; then
        args+=(--volume "$uv_cache:/uv-cache" --build-arg UV_CACHE_DIR=/uv-cache)
    fi
    if [ -n "$RUNNER" ] && command -v docker >/dev/null 2>&1; then
        args+=(--volume "$(command -v docker):/opt/host-docker:ro")
    fi
fi
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
log "building $IMAGE with $ENGINE from $BASE"
start=$SECONDS
"$ENGINE" build --quiet -f "$DOCKERFILE" --build-arg "BASE=$BASE" --build-arg "GIT_COMMIT=$commit" \
    "${args[@]}" -t "$IMAGE" . >/dev/null
log "built in $((SECONDS - start)) s"
echo "$IMAGE"

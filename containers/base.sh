#!/usr/bin/env bash
# The local base image of containers/Dockerfile, made from Debian packages alone (no
# container registry needed): Debian bookworm, minimal, with Python 3.11 and venv.
#
#   containers/base.sh [NAME]        # default localhost/heirloom-base:bookworm; podman or docker
#
# Needs mmdebstrap (Debian package) and podman or docker. On a machine that reaches a
# registry, containers/build.sh --base python:3.11-slim-bookworm pins that image by
# digest instead. The base's image ID is recorded in the analysis image's labels.
set -euo pipefail
NAME=${1:-localhost/heirloom-base:bookworm}
ENGINE=${HEIRLOOM_ENGINE:-$(command -v podman >/dev/null 2>&1 && echo podman || echo docker)}
command -v mmdebstrap >/dev/null || { echo "containers/base.sh: needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "[base] mmdebstrap bookworm (python3.11, venv, certificates) -> $NAME" >&2
mmdebstrap --quiet --variant=minbase --include=python3.11,python3.11-venv,ca-certificates \
    bookworm "$tmp/rootfs.tar"
"$ENGINE" import --quiet "$tmp/rootfs.tar" "$NAME" >/dev/null
echo "$NAME"

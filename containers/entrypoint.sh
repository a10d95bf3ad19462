#!/bin/sh
# Entry point of the Heirloom images (containers/Dockerfile, containers/heirloom.def):
#
#   docker run IMAGE law run Plot --config configs/demo.yaml
#   apptainer run heirloom.sif law run Plot --config configs/demo.yaml
#
# Runs the command in /opt/heirloom, where law finds law.cfg and its task index
# (.law/index, built into the image). A relative HEIRLOOM_STORE, and the default
# `store`, are taken from the folder the container started in (the image's WORKDIR
# for docker, the caller's folder for apptainer). With no command: the demo analysis.
set -eu
case "${HEIRLOOM_STORE:=store}" in
    /*) ;;
    *) HEIRLOOM_STORE="$PWD/$HEIRLOOM_STORE" ;;
esac
export HEIRLOOM_STORE
cd "${HEIRLOOM_HOME:-/opt/heirloom}"
[ "$#" -gt 0 ] || set -- law run Plot --config configs/demo.yaml
exec "$@"

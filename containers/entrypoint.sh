#!/bin/sh
# Entry point of the Heirloom images (containers/Dockerfile, containers/heirloom.def):
#
#   docker run IMAGE law run Plot --config configs/demo.yaml
#   docker run -w /work/step IMAGE sh -c "heirloom step Fit --config /abs/analysis.yaml ..."
#
# Runs the command in the folder the container started in: packtivity's `-w <stepdir>`,
# REANA's job (no working directory: the image's WORKDIR, /opt/heirloom), apptainer's
# caller folder. `law run` and `heirloom step` work from any folder (the image sets
# LAW_CONFIG_FILE and LAW_INDEX_FILE). A relative HEIRLOOM_STORE, and the default `store`, are taken from
# that folder. With no command: the demo analysis.
set -eu
case "${HEIRLOOM_STORE:=store}" in
    /*) ;;
    *) HEIRLOOM_STORE="$PWD/$HEIRLOOM_STORE" ;;
esac
export HEIRLOOM_STORE
[ "$#" -gt 0 ] || set -- law run Plot --config /opt/heirloom/configs/demo.yaml
exec "$@"

#!/usr/bin/env bash
# Heirloom setup. Usage:
#   ./setup.sh          make .venv from requirements.lock (idempotent, quick when done)
#   ./setup.sh demo     setup + generate demo data + run the full AGC analysis (Plot)
#   ./setup.sh test     setup + preserve + container tools + the test suite
#   ./setup.sh image    setup + build the analysis image (containers/build.sh; podman or docker)
#   ./setup.sh preserve setup + .venv-preserve: yadage, packtivity, reana-client and snakemake
#                       from requirements-preserve.lock (their old jsonschema pins clash with
#                       pyhf's, so they get an environment of their own)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT=$(pwd)
MODE=${1:-setup}
shift || true

PYTHON=${HEIRLOOM_PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
UV_VERSION=0.13.9
VENV=.venv
STAMP=$VENV/.heirloom-stamp

log() { printf '[setup] %s\n' "$*" >&2; }

wanted_stamp() {
    cat requirements.lock pyproject.toml setup.sh | sha256sum | cut -d' ' -f1
}

make_venv() {
    local want; want=$(wanted_stamp)
    if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/law" ]; then
        return 0
    fi
    local start=$SECONDS
    log "creating $VENV from requirements.lock (first time takes about a minute)"
    "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "Heirloom needs Python >= 3.11"'
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
    "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" -r requirements.lock
    "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --no-deps -e .
    # bytecode compiled once here: every law run, batch job and worker process then starts
    # without compiling coffea, pandas, pyarrow... from source (PYTHONDONTWRITEBYTECODE
    # machines would otherwise do it in every process); about 15 s once. (compileall, not
    # uv's --compile-bytecode, which skips an environment that has nothing to install.)
    local site; site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    "$VENV/bin/python" -m compileall -q -j 0 "$site" analysis tasks > /dev/null
    echo "$want" > "$STAMP"
    log "environment ready in $((SECONDS - start)) s; activate it with: source $VENV/bin/activate"
}

side_env() {
    # side_env DIR LOCK TOOL WHAT: an environment of its own for tools whose pins clash with
    # the analysis's, made from LOCK when it is missing, stale or lacks bin/TOOL
    local env=$1 lock=$2 tool=$3 what=$4
    local want; want=$(cat "$lock" setup.sh | sha256sum | cut -d' ' -f1)
    if [ -f "$env/.heirloom-stamp" ] && [ "$(cat "$env/.heirloom-stamp")" = "$want" ] \
            && [ -x "$env/bin/$tool" ]; then
        return 0
    fi
    local start=$SECONDS
    log "creating $env ($what) from $lock"
    [ -x "$env/bin/python" ] || "$PYTHON" -m venv "$env"
    "$VENV/bin/uv" pip install -q --compile-bytecode --python "$env/bin/python" -r "$lock"
    echo "$want" > "$env/.heirloom-stamp"
    log "$env ready in $((SECONDS - start)) s"
}

make_tool_env() {
    side_env .venv-preserve requirements-preserve.lock yadage-run "yadage, packtivity, reana-client, snakemake"
}

debian_packages() {
    # debian_packages WHAT "PACKAGES" COMMANDS...: install PACKAGES (apt, as root) unless
    # every one of COMMANDS is already on the PATH
    local what=$1 want=$2; shift 2
    local missing=()
    for tool in "$@"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        log "$what need: $want (Debian packages); missing: ${missing[*]}"
        return 0
    fi
    local start=$SECONDS
    log "installing $want (Debian packages) for $what"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $want >/dev/null
    log "$what ready in $((SECONDS - start)) s"
}

test_services() {
    # podman runs the exported workflows' containers in the test suite (no Docker daemon
    # needed); mmdebstrap makes the local base image from Debian packages; a single-node
    # Slurm (tests/services/slurm.sh, started and stopped by the tests) runs batch jobs
    debian_packages "the container tests" "podman mmdebstrap runc uidmap fuse-overlayfs slirp4netns" \
        podman mmdebstrap runc
    debian_packages "the batch tests" "slurm-wlm munge" slurmctld slurmd munged sbatch
    # a real XRootD server and a real S3 server (moto's, in .venv-services) for the
    # remote-data and remote-store tests (tests/services/xrootd.sh, s3.sh)
    debian_packages "the remote-data tests" "xrootd-server" xrootd
    # a real headless browser opens `heirloom report`'s page from disk (tests/test_report.py,
    # through Selenium and Debian's chromedriver)
    debian_packages "the report tests" "chromium chromium-driver" chromium chromedriver
    make_services_env
}

make_services_env() {
    side_env .venv-services requirements-services.lock moto_server "moto's S3 server for the tests"
}

install_startup_hook() {
    # `law run` and `heirloom` from any folder of the checkout: a one-line .pth makes both
    # commands find law.cfg, the task index and the store here first (tasks/checkout.py)
    local site; site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    local line='import tasks.checkout; tasks.checkout.at_startup()'
    [ "$(cat "$site/heirloom_law.pth" 2>/dev/null)" = "$line" ] || echo "$line" > "$site/heirloom_law.pth"
}

index_tasks() {
    # the law index lists the tasks for `law run`; refresh it when task modules change
    local sig; sig=$(find tasks -name '*.py' | sort | xargs cat law.cfg | sha256sum | cut -d' ' -f1)
    if [ ! -f .law/index ] || [ "$(cat .law/index.sig 2>/dev/null)" != "$sig" ]; then
        LAW_CONFIG_FILE="$ROOT/law.cfg" LAW_INDEX_FILE="$ROOT/.law/index" "$VENV/bin/law" index -q >/dev/null
        echo "$sig" > .law/index.sig
    fi
}

make_venv
install_startup_hook
index_tasks
export PATH="$ROOT/$VENV/bin:$PATH"

case "$MODE" in
    setup) ;;
    preserve) make_tool_env ;;
    demo)
        start=$SECONDS
        config=${HEIRLOOM_DEMO_CONFIG:-configs/agc_ttbar.yaml}
        log "running the AGC ttbar analysis on generated data ($config): Generate -> Skim -> Select -> Histogram -> Fit -> Plot, Ranking, Significance"
        law run All --config "$config" "$@"
        heirloom show --config "$config"
        log "demo finished in $((SECONDS - start)) s"
        ;;
    image)
        containers/build.sh "$@"
        ;;
    test)
        make_tool_env
        test_services
        set +e
        # two workers (pytest-xdist), each test module whole in one of them (three were slower),
        # the longest modules first (tests/conftest.py: LONGEST_FIRST)
        "$VENV/bin/python" -m pytest -n "${HEIRLOOM_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder "$@"
        rc=$?
        set -e
        [ $rc -eq 5 ] && { echo "no tests were collected" >&2; exit 1; }
        exit $rc
        ;;
    *)
        echo "unknown mode '$MODE'; use: ./setup.sh [setup|demo|test|preserve|image]" >&2
        exit 2
        ;;
esac

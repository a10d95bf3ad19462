#!/usr/bin/env bash
# The commands both CI definitions run (github-actions.yml, gitlab-ci.yml), in one place.
#
#   workflows/ci/run-analysis.sh [CONFIG [RESULTS [LAW_OPTIONS...]]]
#
# CONFIG    analysis config (default: $HEIRLOOM_CI_CONFIG, else configs/demo.yaml)
# RESULTS   folder for the CI artifacts (default: $HEIRLOOM_CI_RESULTS, else ci-results)
# LAW_OPTIONS are passed to `law run` (e.g. --workers 2)
# HEIRLOOM_STORE is the store that the CI restores from its cache before this script and
# saves after it (default: ./store). Relative paths are taken from the caller's directory.
#
# It runs `law run Plot`, prints what ran (`heirloom runs`) and the results
# (`heirloom show`), and copies into RESULTS:
#   by-name/<analysis>/<Task>/<label>/  the outputs of this analysis, symlinks resolved:
#                                       everything of Histogram, Histograms, Fit, Plot;
#                                       only the JSON files (provenance.json, cutflow.json)
#                                       of the event-data tasks Generate, Skim, Select
#   runs.jsonl                          the store's whole run log
#   ran.jsonl                           the lines this run added to it (empty: nothing ran)
#   summary.txt                         what ran and `heirloom show`
# The environment must exist (./setup.sh, or a container image that has `law` on PATH).
set -euo pipefail

absolute() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }

CONFIG=$(absolute "${1:-${HEIRLOOM_CI_CONFIG:-configs/demo.yaml}}")
RESULTS=$(absolute "${2:-${HEIRLOOM_CI_RESULTS:-ci-results}}")
shift $(( $# < 2 ? $# : 2 ))
HEIRLOOM_STORE=$(absolute "${HEIRLOOM_STORE:-store}")
export HEIRLOOM_STORE

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"                        # law finds law.cfg and its task index (.law/index) here
[ -x "$ROOT/.venv/bin/law" ] && export PATH="$ROOT/.venv/bin:$PATH"

log() { printf '[ci] %s\n' "$*" >&2; }
[ -f "$CONFIG" ] || { log "no such config: $CONFIG"; exit 2; }

RUNS="$HEIRLOOM_STORE/runs.jsonl"
count_runs() { if [ -f "$RUNS" ]; then wc -l < "$RUNS" | tr -d ' '; else echo 0; fi; }

before=$(count_runs)
if [ -d "$HEIRLOOM_STORE/objects" ]; then
    log "store $HEIRLOOM_STORE restored: $(find "$HEIRLOOM_STORE/objects" -mindepth 3 -maxdepth 3 -type d | wc -l | tr -d ' ') outputs, $before logged runs"
else
    log "store $HEIRLOOM_STORE is empty: everything runs"
fi

start=$SECONDS
status=0
law run Plot --config "$CONFIG" "$@" || status=$?
after=$(count_runs)
ran=$((after - before))
log "law run Plot exited with $status after $((SECONDS - start)) s; $ran tasks ran"

name=$(python -c 'import sys; from analysis.load import load_config; print(load_config(sys.argv[1]).name)' "$CONFIG") || name=""
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
{
    echo "analysis $name, config $CONFIG, store $HEIRLOOM_STORE"
    echo "law run Plot: exit status $status, $ran tasks ran ($before runs in the restored store)"
    if [ "$ran" -gt 0 ]; then
        echo "== heirloom runs --last $ran (the tasks this run ran)"
        heirloom runs --last "$ran"
    else
        echo "== nothing ran: every output came from the cached store"
    fi
    echo "== heirloom show"
    heirloom show --config "$CONFIG" || true
} | tee "$RESULTS/summary.txt"

# artifacts: the run log and the by-name outputs of this analysis (symlinks resolved)
if [ -f "$RUNS" ]; then
    cp "$RUNS" "$RESULTS/runs.jsonl"
    tail -n +"$((before + 1))" "$RUNS" > "$RESULTS/ran.jsonl"
else
    : > "$RESULTS/ran.jsonl"
fi
shopt -s nullglob
if [ -n "$name" ]; then
    for link in "$HEIRLOOM_STORE/by-name/$name"/*/*; do
        [ -d "$link" ] || continue
        family=$(basename "$(dirname "$link")")
        dest="$RESULTS/by-name/$name/$family/$(basename "$link")"
        mkdir -p "$dest"
        case $family in
            Generate|Skim|Select) for file in "$link"/*.json; do cp -L "$file" "$dest/"; done ;;
            *) cp -RL "$link"/. "$dest/" ;;
        esac
    done
fi
log "results and provenance in $RESULTS"

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    { echo '```'; cat "$RESULTS/summary.txt"; echo '```'; } >> "$GITHUB_STEP_SUMMARY"
fi
exit "$status"

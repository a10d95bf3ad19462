#!/usr/bin/env bash
# The preservation checks of both CI definitions (github-actions.yml, gitlab-ci.yml), one
# CI job each, in one place. Run ./setup.sh preserve first: it makes .venv (heirloom) and
# .venv-preserve (reana-client, recast).
#
#   workflows/ci/preservation-checks.sh exports    the committed exports are what `heirloom export` writes now
#   workflows/ci/preservation-checks.sh validate   reana.yaml passes `reana-client validate`; the exports
#                                                  pass `heirloom export check`
#   workflows/ci/preservation-checks.sh recast     the recast catalogue entry passes `recast catalogue check`
#
# exports: regenerates the committed exports in the checkout, with the commands that made
# them (tests/test_export.py::test_committed_exports_are_current), then
# `git diff --exit-code -- workflows reana.yaml`; a file the exports add that git does not
# know fails too. It rewrites files in the checkout: run it on a clean one (as CI does).
#
# Exit status: 0 the check passed; 1 it found a problem (the log says which and what to
# do); 2 wrong use or a missing tool. Each command is printed before it runs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BIN=.venv/bin
TOOLS=.venv-preserve/bin
export PATH="$ROOT/$BIN:$PATH"

log() { printf '[ci] %s\n' "$*" >&2; }
show() { log "\$ $*"; }
fail() {
    log "FAILED: $*"
    if [ -n "${GITHUB_ACTIONS:-}" ]; then echo "::error::$*"; fi
    exit 1
}
need() {
    local tool
    for tool; do
        [ -x "$tool" ] || { log "$tool is missing: run ./setup.sh preserve"; exit 2; }
    done
}

check_exports() {
    need "$BIN/heirloom"
    # The committed exports name the default image (heirloom/analysis:<version>-<hash>);
    # an $HEIRLOOM_IMAGE in the environment would name another one and show as drift.
    local export_all=(heirloom export all --config configs/agc_ttbar.yaml)
    local export_recast=(heirloom export recast --config configs/reinterpret_example.yaml
                         --new-signal configs/reinterpret_zprime_1000.yaml)
    show "${export_all[*]}"
    env -u HEIRLOOM_IMAGE "${export_all[@]}"
    show "${export_recast[*]}"
    env -u HEIRLOOM_IMAGE "${export_recast[@]}"

    local status=0 untracked
    show "git diff --exit-code -- workflows reana.yaml"
    git diff --exit-code -- workflows reana.yaml || status=1
    untracked=$(git ls-files --others --exclude-standard -- workflows reana.yaml)
    if [ -n "$untracked" ]; then
        log "files in workflows/ that are not committed (an export writes them):"
        sed 's/^/  /' <<<"$untracked" >&2
        status=1
    fi
    if [ "$status" -ne 0 ]; then
        fail "the committed exports (workflows/, reana.yaml) are not what the analysis exports now. Re-export and commit: ./setup.sh && .venv/bin/${export_all[*]} && .venv/bin/${export_recast[*]} && git add workflows reana.yaml && git commit"
    fi
    log "the committed exports are current"
}

check_validate() {
    need "$TOOLS/reana-client" "$BIN/heirloom"
    local status=0 report
    show "$TOOLS/reana-client validate -f reana.yaml"
    # reana-client exits 0 on warnings: a warning fails the check too
    report=$("$TOOLS/reana-client" validate -f reana.yaml 2>&1) || status=1
    printf '%s\n' "$report"
    if grep -Eq '(->|==>) (WARNING|ERROR)' <<<"$report"; then status=1; fi
    [ "$status" -eq 0 ] || log "reana.yaml does not validate (the lines above say why)"

    local check=(heirloom export check --reana reana.yaml workflows/yadage/agc_ttbar workflows/recast/agc_zprime/specs)
    show "${check[*]}"
    "${check[@]}" || { status=1; log "heirloom export check found problems (one line each above)"; }
    [ "$status" -eq 0 ] || fail "the exported workflows do not validate: fix the analysis or the exporter, then re-export and commit"
    log "reana.yaml and the exports validate"
}

check_recast() {
    need "$TOOLS/recast"
    local status=0 report
    show "RECAST_ATLAS_CATALOGUE=workflows/recast/agc_zprime $TOOLS/recast catalogue check heirloom/agc_zprime"
    report=$(RECAST_ATLAS_CATALOGUE=workflows/recast/agc_zprime "$TOOLS/recast" catalogue check heirloom/agc_zprime 2>&1) \
        || status=1
    printf '%s\n' "$report"
    # recast exits 0 also when the entry is broken ("Sadly something is wrong"): read what it says
    grep -q "Everything looks good" <<<"$report" || status=1
    [ "$status" -eq 0 ] || fail "the recast catalogue entry workflows/recast/agc_zprime does not pass recast catalogue check"
    log "the recast catalogue entry is valid"
}

case "${1:-}" in
    exports) check_exports ;;
    validate) check_validate ;;
    recast) check_recast ;;
    *) echo "usage: workflows/ci/preservation-checks.sh exports|validate|recast" >&2; exit 2 ;;
esac

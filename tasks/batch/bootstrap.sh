# Sourced by law's job script before it runs a branch (tasks/batch/submission.py fills in the
# @...@ values of one submission). It puts the job in the submitter's locked environment,
# running the submitted code snapshot against the submitter's store.
heirloom_code=@CODE@
heirloom_venv=@VENV@
export HEIRLOOM_STORE=@STORE@
export HEIRLOOM_BATCH_ROOT=@BATCH_ROOT@
# a remote store (s3://, root://) needs no shared filesystem: the job reads and writes it
# through a cache of its node's own (HEIRLOOM_JOB_CACHE, else under TMPDIR)
case "$HEIRLOOM_STORE" in
    s3://*|root://*)
        export HEIRLOOM_CACHE="${HEIRLOOM_JOB_CACHE:-${TMPDIR:-/tmp}/heirloom-cache-$(printf %s "$HEIRLOOM_STORE" | sha256sum | cut -c1-12)}"
        ;;
esac
export HEIRLOOM_STORE_UPSTREAM=@UPSTREAM@
[ -n "$HEIRLOOM_STORE_UPSTREAM" ] || unset HEIRLOOM_STORE_UPSTREAM
# HEIRLOOM_BATCH_CODE runs the jobs from another checkout (a shared one); keys still decide
[ -n "${HEIRLOOM_BATCH_CODE:-}" ] && heirloom_code=$HEIRLOOM_BATCH_CODE
if [ ! -d "$heirloom_code" ]; then
    >&2 echo "heirloom: the code snapshot $heirloom_code is not visible on $(hostname) (is the store on a shared filesystem?)"
    return 1
fi
if [ ! -x "$heirloom_venv/bin/python" ]; then
    # no shared environment on this node: build one from the snapshot's lock, once per lock
    lock="$heirloom_code/requirements.lock"
    heirloom_venv="${TMPDIR:-/tmp}/heirloom-venv-$(sha256sum "$lock" | cut -c1-16)"
    if [ ! -e "$heirloom_venv/.heirloom-complete" ]; then
        echo "heirloom: building the environment from $lock in $heirloom_venv"
        (
            flock 9
            [ -e "$heirloom_venv/.heirloom-complete" ] && exit 0
            rm -rf "$heirloom_venv" && python3.11 -m venv "$heirloom_venv" && \
                "$heirloom_venv/bin/pip" install -q --require-hashes -r "$lock" && \
                touch "$heirloom_venv/.heirloom-complete"
        ) 9>"$heirloom_venv.lock" || { >&2 echo "heirloom: could not build the environment from $lock"; return 1; }
    fi
fi
export PATH="$heirloom_venv/bin:$PATH"
export VIRTUAL_ENV="$heirloom_venv"
export PYTHONPATH="$heirloom_code${PYTHONPATH:+:$PYTHONPATH}"
export LAW_CONFIG_FILE="$heirloom_code/law.cfg"
export LAW_INDEX_FILE="$heirloom_code/.law/index"
export PYTHONDONTWRITEBYTECODE=1
cd "$heirloom_code"
echo "heirloom: job on $(hostname) runs $heirloom_code with $heirloom_venv, store $HEIRLOOM_STORE"

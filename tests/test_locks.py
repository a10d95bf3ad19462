"""Per-key locks with a heartbeat lease (analysis/store/locks.py): one computes, others wait;
crashed holders free their keys at once, other hosts' live leases are respected; the cleaner
removes only the staging of dead writers and never leaves ``tmp/``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from analysis.errors import StoreError
from analysis.store import locks

ROOT = Path(__file__).resolve().parent.parent
KEY = "0123456789abcdef0123456789abcdef01234567"
HOUR = 3600.0


def wait_for(condition, timeout_s: float = 5.0) -> bool:
    """Poll ``condition`` (a real event) until true or ``timeout_s`` passed; its last value."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return bool(condition())
        time.sleep(0.01)
    return True


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def plant(root: Path, family: str = "Select", key: str = KEY, **fields) -> dict:
    """Write a lock file as another process would (default: this host and pid, an hour's lease)."""
    now = time.time()
    info = {"host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex,
            "started": now, "expires": now + HOUR, **fields}
    path = root / "locks" / f"{family}-{key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))
    return info


def stage(root: Path, name: str, age_s: float = 0.0) -> Path:
    """A staging folder ``tmp/<name>`` with a file in it, its mtime ``age_s`` in the past."""
    folder = root / "tmp" / name
    folder.mkdir(parents=True)
    (folder / "part.parquet").write_text("x")
    past = time.time() - age_s
    os.utime(folder, (past, past))
    return folder


# ---- two processes race for one key ---------------------------------------------------------

RACER = """
import json, sys, time
from pathlib import Path
from analysis.store import locks
root, name, key = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
deadline = time.monotonic() + 15
while not (root / "go").exists() and time.monotonic() < deadline:
    time.sleep(0.005)
waited = []
def on_wait(info):
    waited.append(info)
    (root / f"waiting-{name}").write_text(json.dumps(info))
with locks.hold(root, "Select", key, on_wait=on_wait, is_done=(root / "done").exists,
                poll_s=0.01, max_poll_s=0.1, timeout_s=15) as mine:
    if mine:
        with open(root / "computed.txt", "a") as out:
            out.write(name + "\\n")
        while not list(root.glob("waiting-*")) and time.monotonic() < deadline:
            time.sleep(0.01)      # hold the lock until the other racer is seen waiting
        (root / "done").write_text(name)
print(json.dumps({"name": name, "mine": mine, "waited_for": waited[0]["pid"] if waited else None}))
"""


def test_two_processes_one_computes_the_other_waits_and_reuses(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path), name, KEY], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in "ab"]
    (tmp_path / "go").write_text("")
    outcomes = []
    for racer in racers:
        out, err = racer.communicate(timeout=30)
        assert racer.returncode == 0, err
        outcomes.append(json.loads(out))
    computed = (tmp_path / "computed.txt").read_text().split()
    assert len(computed) == 1                                   # exactly one computation
    winner = next(o for o in outcomes if o["mine"])
    loser = next(o for o in outcomes if not o["mine"])
    assert computed == [winner["name"]]
    assert loser["waited_for"] == racers["ab".index(winner["name"])].pid    # it waited for the winner
    assert (tmp_path / "done").read_text() == winner["name"]
    assert locks.holder(tmp_path, "Select", KEY) is None         # released


# ---- stale and foreign locks ----------------------------------------------------------------

def test_lock_of_a_dead_local_process_is_broken_at_once(tmp_path, dead_pid):
    plant(tmp_path, pid=dead_pid)                # an hour left on its lease, but its process is gone
    waits = []
    with locks.hold(tmp_path, "Select", KEY, on_wait=waits.append, timeout_s=2) as mine:
        held = locks.holder(tmp_path, "Select", KEY)
    assert mine is True and waits == []
    assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
    assert list((tmp_path / "locks").iterdir()) == []           # no debris of the breaking


def test_live_lease_of_another_host_is_waited_for(tmp_path, dead_pid):
    # another host's pid means nothing here, even one that is not alive on this host
    other = plant(tmp_path, host="worker-7.invalid", pid=dead_pid)
    waits = []
    with pytest.raises(StoreError) as caught:
        with locks.hold(tmp_path, "Select", KEY, on_wait=waits.append, timeout_s=0.3, poll_s=0.02):
            pytest.fail("took a lock that another host holds")
    message = str(caught.value)
    assert "worker-7.invalid" in message and str(dead_pid) in message and KEY in message
    assert waits == [other]                                     # told once whom it waits for
    assert locks.holder(tmp_path, "Select", KEY) == other       # and left it alone


def test_expired_lease_of_another_host_is_broken(tmp_path):
    plant(tmp_path, host="worker-7.invalid", pid=4242, expires=time.time() - 1)
    with locks.hold(tmp_path, "Select", KEY, timeout_s=2) as mine:
        assert mine is True
        assert locks.holder(tmp_path, "Select", KEY)["pid"] == os.getpid()


def test_waiter_reuses_a_result_committed_before_the_holder_releases(tmp_path):
    other = plant(tmp_path, host="worker-7.invalid", pid=4242)
    done = threading.Event()
    with locks.hold(tmp_path, "Select", KEY, on_wait=lambda info: done.set(), is_done=done.is_set,
                    timeout_s=2) as mine:
        assert mine is False
    assert locks.holder(tmp_path, "Select", KEY) == other      # the waiter took and removed nothing


def test_done_after_taking_the_lock_means_no_computation(tmp_path):
    with locks.hold(tmp_path, "Select", KEY, is_done=lambda: True) as mine:
        assert mine is False
        assert locks.holder(tmp_path, "Select", KEY) is None   # released at once


def test_lease_alive_rules(dead_pid):
    here, now = socket.gethostname(), 1000.0
    assert locks.lease_alive({"host": "elsewhere", "pid": dead_pid, "expires": now + 1}, now)
    assert not locks.lease_alive({"host": "elsewhere", "pid": os.getpid(), "expires": now - 1}, now)
    assert not locks.lease_alive({"host": here, "pid": dead_pid, "expires": now + HOUR}, now)
    assert locks.lease_alive({"host": here, "pid": os.getpid(), "expires": now + HOUR}, now)
    # the same hostname in another pid namespace (a container): its pids are not ours to test
    assert locks.lease_alive({"host": here, "pid": dead_pid, "pidns": "pid:[1]", "expires": now + 1}, now)


def test_a_lock_being_written_counts_as_live_for_one_lease(tmp_path):
    path = tmp_path / "locks" / f"Select-{KEY}.lock"
    path.parent.mkdir()
    path.write_text("")                                         # made by O_EXCL, not yet written
    info = locks.holder(tmp_path, "Select", KEY)
    assert locks.lease_alive(info) and not locks.lease_alive(info, now=time.time() + locks.lease_seconds() + 1)


def test_lease_length_from_the_environment(monkeypatch):
    monkeypatch.setenv("HEIRLOOM_LEASE_S", "42")
    assert locks.lease_seconds() == 42.0
    monkeypatch.setenv("HEIRLOOM_LEASE_S", "-3")
    with pytest.raises(StoreError, match="HEIRLOOM_LEASE_S"):
        locks.lease_seconds()


# ---- heartbeat and release ------------------------------------------------------------------

def test_heartbeat_renews_the_lease(tmp_path):
    with locks.hold(tmp_path, "Fit", KEY, lease_s=0.4) as mine:
        first = locks.holder(tmp_path, "Fit", KEY)
        renewed = wait_for(lambda: locks.holder(tmp_path, "Fit", KEY)["expires"] > first["expires"] + 0.05)
        later = locks.holder(tmp_path, "Fit", KEY)
    assert mine and renewed
    assert locks.lease_alive(later, now=first["expires"] + 0.05)   # alive past the first lease
    assert later["token"] == first["token"] and later["started"] == first["started"]
    assert locks.holder(tmp_path, "Fit", KEY) is None
    assert list((tmp_path / "locks").iterdir()) == []           # no heartbeat temporaries left


def test_release_keeps_a_lock_another_process_has_taken_since(tmp_path):
    with locks.hold(tmp_path, "Fit", KEY, lease_s=0.4) as mine:
        successor = plant(tmp_path, "Fit", host="worker-7.invalid", pid=4242)   # took it over
        beats_stopped = wait_for(lambda: not any(t.name == "heirloom-lease" for t in threading.enumerate()))
    assert mine and beats_stopped                   # the heartbeat saw the lock was no longer ours
    assert locks.holder(tmp_path, "Fit", KEY) == successor      # neither renewed nor deleted


def test_breaking_rechecks_the_record_it_judged(tmp_path, dead_pid, monkeypatch):
    stale = plant(tmp_path, pid=dead_pid)
    lock = locks._Lock(tmp_path / "locks" / f"Select-{KEY}.lock")
    fresh, rename = {}, os.rename

    def racing_rename(src, dst):                # a new holder's record lands just before the rename
        fresh.update(plant(tmp_path, host="worker-7.invalid", pid=4242))
        monkeypatch.setattr(os, "rename", rename)
        rename(src, dst)
    monkeypatch.setattr(os, "rename", racing_rename)
    assert lock.remove_if(stale) is False
    assert fresh and locks.holder(tmp_path, "Select", KEY) == fresh             # linked back
    assert sorted(p.name for p in (tmp_path / "locks").iterdir()) == [lock.path.name]
    assert lock.remove_if(fresh) is True and locks.holder(tmp_path, "Select", KEY) is None


def test_renew_never_overwrites_a_successor(tmp_path, monkeypatch):
    lock = locks._Lock(tmp_path / "locks" / f"Fit-{KEY}.lock")
    token = lock.create(60.0)
    successor, write = {}, locks._Lock.write

    def racing_write(path, info, flag):         # the lock is taken over while the heartbeat writes
        write(path, info, flag)
        successor.update(plant(tmp_path, "Fit", host="worker-7.invalid", pid=4242))
    monkeypatch.setattr(locks._Lock, "write", staticmethod(racing_write))
    assert lock.renew(token, 60.0) is False
    assert successor and locks.holder(tmp_path, "Fit", KEY) == successor
    assert sorted(p.name for p in (tmp_path / "locks").iterdir()) == [lock.path.name]   # no temporary


# ---- cleaning -------------------------------------------------------------------------------

def test_clean_spares_old_staging_under_a_live_lease_of_this_process(tmp_path, dead_pid):
    with locks.hold(tmp_path, "Select", KEY):
        old = stage(tmp_path, f"Select-{KEY}-{dead_pid}-0a1b2c3d", age_s=7 * HOUR)
        assert locks.clean_stale_staging(tmp_path) == []
        assert (old / "part.parquet").exists()


def test_clean_spares_staging_under_another_hosts_live_lease(tmp_path, dead_pid):
    plant(tmp_path, host="worker-7.invalid", pid=dead_pid, started=time.time() - 30 * HOUR)
    old = stage(tmp_path, f"Select-{KEY}-{dead_pid}-0a1b2c3d", age_s=7 * HOUR)
    assert locks.clean_stale_staging(tmp_path) == []
    assert old.is_dir()


def test_clean_removes_staging_of_a_dead_process_and_its_expired_lock(tmp_path, dead_pid):
    lock = tmp_path / "locks" / f"Select-{KEY}.lock"
    plant(tmp_path, pid=dead_pid, expires=time.time() - 10)
    dead = stage(tmp_path, f"Select-{KEY}-{dead_pid}-0a1b2c3d")           # fresh, but its writer is gone
    unlocked = stage(tmp_path, f"Fit-{KEY}-{dead_pid}-deadbeef")          # no lock at all
    removed = locks.clean_stale_staging(tmp_path)
    assert set(removed) == {dead, unlocked, lock}
    assert not dead.exists() and not unlocked.exists() and not lock.exists()


def test_clean_protects_lockless_staging_of_a_live_process_for_ten_minutes(tmp_path):
    young = stage(tmp_path, f"Select-{KEY}-{os.getpid()}-0a1b2c3d", age_s=60)
    old = stage(tmp_path, f"Fit-{KEY}-{os.getpid()}-0a1b2c3d", age_s=11 * 60)
    assert locks.clean_stale_staging(tmp_path) == [old]
    assert young.is_dir() and not old.exists()


def test_clean_removes_unparsable_names_only_when_old(tmp_path):
    young = stage(tmp_path, "not-a-staging-name", age_s=60)
    old = stage(tmp_path, "leftover", age_s=11 * 60)
    assert locks.clean_stale_staging(tmp_path) == [old]
    assert young.is_dir()
    later = time.time() + 11 * 60                               # the clock is injectable
    assert locks.clean_stale_staging(tmp_path, now=later) == [young]


def test_clean_never_leaves_tmp(tmp_path, dead_pid):
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "result.json").write_text("{}")
    (tmp_path / "tmp").mkdir()
    link = tmp_path / "tmp" / f"Select-{KEY}-{dead_pid}-0a1b2c3d"
    link.symlink_to(outside, target_is_directory=True)
    os.utime(link, (0, 0), follow_symlinks=False)
    inner = stage(tmp_path, f"Fit-{KEY}-{dead_pid}-deadbeef", age_s=7 * HOUR)
    (inner / "escape").symlink_to(outside, target_is_directory=True)     # a link inside a stale folder
    os.utime(inner, (0, 0))
    assert locks.clean_stale_staging(tmp_path) == [inner]
    assert (outside / "result.json").read_text() == "{}"
    assert link.is_symlink()                                    # a symlink in tmp/ is left alone


def test_clean_removes_old_temporaries_of_heartbeats(tmp_path):
    (tmp_path / "locks").mkdir()
    old = tmp_path / "locks" / f"Select-{KEY}.lock.hb-0a1b2c3d"
    young = tmp_path / "locks" / f"Fit-{KEY}.lock.gone-0a1b2c3d"
    for path, age in ((old, 2 * HOUR), (young, 5)):
        path.write_text("{}")
        os.utime(path, (time.time() - age,) * 2)
    assert locks.clean_stale_staging(tmp_path) == [old]
    assert young.exists() and not old.exists()

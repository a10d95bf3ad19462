"""Per-key locks with a heartbeat lease, for a store on a local disk or a shared filesystem (NFS).

The lock of ``<family>/<key>`` is ``<store>/locks/<family>-<key>.lock``, made by ``os.open(O_CREAT |
O_EXCL)`` (atomic, also on NFSv3+), holding the JSON ``{host, pid, pidns, token, started, expires}``.
A daemon thread of its holder renews ``expires = now + lease`` every ``lease / 4`` s (``os.replace``
of a temporary ``<lock>.hb-<token>``) while the lock carries its token. A lease is expired when
``expires < now``, or at once when its host (and pid namespace) is ours and its pid is gone;
another host's live lease holds until it expires, however old. A lock is broken (expired) or
released (token) by a rename to a unique name (one remover wins), a re-read to check it is the
record judged (else a link back) and a delete. A lock being written expires a lease after its
mtime. The lease is ``$HEIRLOOM_LEASE_S`` s (default 300); hosts need clocks in step (NTP).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from analysis.errors import StoreError

LEASE_ENV = "HEIRLOOM_LEASE_S"
STAGING_GRACE_S = 600.0      # a staging folder whose writer holds no lock is spared this long
_PIDNS = os.readlink("/proc/self/ns/pid") if os.path.exists("/proc/self/ns/pid") else ""


def lease_seconds() -> float:
    """The lease length: ``$HEIRLOOM_LEASE_S`` seconds, or 300.

    >>> lease_seconds() > 0
    True
    """
    text = os.environ.get(LEASE_ENV, "").strip() or "300"
    with contextlib.suppress(ValueError):
        if 0 < float(text) < float("inf"):
            return float(text)
    raise StoreError(f"${LEASE_ENV} must be a positive number of seconds, not {text!r}")


def holder(root: Path, family: str, key: str) -> dict | None:
    """The record of the lock of ``family``/``key``, or None; it may be expired (see :func:`lease_alive`).

    >>> holder(outdir, "Select", "ab12") is None
    True
    """
    return _Lock(Path(root) / "locks" / f"{family}-{key}.lock").read()


def lease_alive(info: dict, now: float | None = None) -> bool:
    """Whether a lock record still holds: not past ``expires`` and, if of this host, its pid lives.

    >>> [lease_alive({"host": "elsewhere", "pid": 1, "expires": 100.0}, now) for now in (50.0, 150.0)]
    [True, False]
    """
    if info["expires"] < (time.time() if now is None else now):
        return False
    return info["host"] != socket.gethostname() or info.get("pidns", _PIDNS) != _PIDNS or _pid_alive(info["pid"])


@contextlib.contextmanager
def hold(root: Path, family: str, key: str, *, on_wait: Callable[[dict], object] | None = None,
         is_done: Callable[[], bool] | None = None, poll_s: float = 0.05, max_poll_s: float = 3.0,
         timeout_s: float | None = None, lease_s: float | None = None) -> Iterator[bool]:
    """Hold the lock of ``family``/``key`` for a ``with`` block; yield whether to compute.

    While another live process holds it, call ``on_wait(its record)`` once and poll (``poll_s``, backing
    off to ``max_poll_s``, for at most ``timeout_s``). Yield False once ``is_done()`` (checked also
    after taking the lock), else True, the lease renewed until the block ends.

    >>> with hold(outdir, "Select", "ab12", is_done=lambda: False) as mine:
    ...     mine, holder(outdir, "Select", "ab12")["pid"] == os.getpid()
    (True, True)
    >>> holder(outdir, "Select", "ab12") is None
    True
    """
    lock, what = _Lock(Path(root) / "locks" / f"{family}-{key}.lock"), f"{family}[{key}]"
    lease = lease_seconds() if lease_s is None else lease_s
    token = lock.acquire(what, lease, on_wait, is_done or (lambda: False), (poll_s, max_poll_s), timeout_s)
    if token is None:
        yield False
        return
    stopped = threading.Event()
    beat = threading.Thread(target=lock.beat, args=(token, lease, stopped), name="heirloom-lease", daemon=True)
    beat.start()
    try:
        yield True
    finally:
        stopped.set()
        beat.join()
        lock.remove_if(token)                       # unless lost meanwhile: then it is not ours to remove


def clean_stale_staging(root: Path, *, now: float | None = None) -> list[Path]:
    """Remove the debris of crashed processes: staging folders, expired locks, temporaries.

    A staging folder ``tmp/<family>-<key>-<pid>-<8hex>`` goes only when no live lease covers its
    key and (if its writer took no lock) its pid is gone from this host or it is over 10 minutes
    old; one named otherwise, when over 10 minutes old. Only real directories in ``tmp/`` are
    removed, symlinks never followed. Returns the removed paths (folders, locks, temporaries).

    >>> clean_stale_staging(outdir)
    []
    """
    root, now = Path(root), time.time() if now is None else now
    removed = []
    for stage in sorted((root / "tmp").glob("*")):
        if stage.is_dir() and not stage.is_symlink() and _stage_stale(root, stage, now):
            shutil.rmtree(stage, ignore_errors=True)
            removed.append(stage)
    for path in sorted((root / "locks").glob("*")):
        if path.suffix == ".lock" and not path.is_dir():
            seen = _Lock(path).read()
            if seen is not None and not lease_alive(seen, now) and _Lock(path).remove_if(seen):
                removed.append(path)
        elif path.is_file() and _age(path, now) > max(STAGING_GRACE_S, lease_seconds()):
            path.unlink(missing_ok=True)            # a heartbeat's or a breaker's temporary
            removed.append(path)
    return removed


@dataclass(frozen=True)
class _Lock:
    """One lock file, and what can be done to it atomically."""
    path: Path

    def acquire(self, what: str, lease_s: float, on_wait: Callable[[dict], object] | None,
                is_done: Callable[[], bool], poll: tuple[float, float], timeout_s: float | None) -> str | None:
        """Take the lock and return our token; None as soon as ``is_done()``."""
        deadline, delay = float("inf") if timeout_s is None else time.monotonic() + timeout_s, poll[0]
        while True:
            if (token := self.create(lease_s)) is not None:     # ours, unless it is done meanwhile
                return None if is_done() and self.remove_if(token) else token
            seen = self.read()
            if seen is not None and not lease_alive(seen):
                self.remove_if(seen)               # break it, then try again
            if seen is None or not lease_alive(seen):
                continue
            if is_done():
                return None
            if on_wait is not None and seen.get("token") is not None:     # once, and not while it is written
                on_wait(seen)
                on_wait = None
            if (left := deadline - time.monotonic()) <= 0:
                raise StoreError(f"timed out after {timeout_s:g} s waiting for {what}, computed by {seen['host']}:"
                                 f"{seen['pid']} (lease ends in {seen['expires'] - time.time():.0f} s; {self.path})")
            time.sleep(min(delay, left))
            delay = min(delay * 1.5, poll[1])

    def read(self) -> dict | None:
        """Its record, or None if there is no lock; one being written reads as a foreign lease."""
        try:
            text, made = self.path.read_text(), self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        with contextlib.suppress(ValueError):
            if isinstance(info := json.loads(text), dict) and {"host", "pid", "expires"} <= info.keys():
                return info
        return {"host": "?", "pid": 0, "token": None, "started": made, "expires": made + lease_seconds()}

    def create(self, lease_s: float) -> str | None:
        """Make the lock with a fresh record of ours and return its token; None if there is one."""
        info = {"host": socket.gethostname(), "pid": os.getpid(), "pidns": _PIDNS, "token": uuid.uuid4().hex,
                "started": time.time(), "expires": time.time() + lease_s}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            self.write(self.path, info, os.O_EXCL)
            return str(info["token"])
        return None

    def remove_if(self, expected: dict | str) -> bool:
        """Delete the lock if it holds the record ``expected`` (or carries that token), atomically."""
        def matches(got: dict | None) -> bool:
            return got is not None and (got == expected or got.get("token") == expected)
        if not matches(self.read()):
            return False
        aside = _Lock(self.path.with_name(f"{self.path.name}.gone-{uuid.uuid4().hex[:8]}"))
        try:
            os.rename(self.path, aside.path)
        except FileNotFoundError:
            return False
        if not (removed := matches(aside.read())):       # not the record judged: put it back
            with contextlib.suppress(OSError):
                os.link(aside.path, self.path)
        aside.path.unlink(missing_ok=True)
        return removed

    def renew(self, token: str, lease_s: float) -> bool:
        """Push our lock's ``expires`` to now + ``lease_s``; False (nothing written) if not ours."""
        if (info := self.read()) is None or info.get("token") != token:
            return False
        temp = self.path.with_name(f"{self.path.name}.hb-{token[:8]}")
        self.write(temp, dict(info, expires=time.time() + lease_s), os.O_TRUNC)
        if ours := (self.read() or {}).get("token") == token:   # else lost meanwhile: leave the successor's
            os.replace(temp, self.path)
        temp.unlink(missing_ok=True)
        return ours

    def beat(self, token: str, lease_s: float, stopped: threading.Event) -> None:
        """The heartbeat thread: renew every ``lease_s / 4`` s until ``stopped`` or the lock is lost."""
        while not stopped.wait(lease_s / 4):
            with contextlib.suppress(OSError):       # a passing NFS hiccup: try at the next beat
                if not self.renew(token, lease_s):
                    return

    @staticmethod
    def write(path: Path, info: dict, flag: int) -> None:
        """Write ``info`` as JSON into a file opened with ``O_CREAT | flag`` (``O_EXCL``: a new one)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | flag, 0o644)
        try:
            os.write(fd, json.dumps(info, sort_keys=True).encode())     # a few hundred bytes: one write
            os.fsync(fd)
        except BaseException:
            path.unlink(missing_ok=True)              # ours, just made: leave no half-written file
            raise
        finally:
            os.close(fd)


def _stage_stale(root: Path, stage: Path, now: float) -> bool:
    """No live lease covers it, and its pid is gone from this host or it is over 10 minutes old."""
    parts = stage.name.rsplit("-", 3)                # <family>-<key>-<pid>-<8hex>
    parsed = len(parts) == 4 and parts[2].isdigit() and len(parts[3]) == 8
    if parsed and (info := holder(root, parts[0], parts[1])) is not None and lease_alive(info, now):
        return False
    return _age(stage, now) > STAGING_GRACE_S or (parsed and not _pid_alive(int(parts[2])))


def _age(path: Path, now: float) -> float:
    with contextlib.suppress(FileNotFoundError):
        return now - os.lstat(path).st_mtime
    return 0.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        pass
    return pid > 0

"""Cost of identifying input files by content (key format 2): BLAKE3 of every byte.

Measures, for a 1 GB file and for the AGC inputs at hand, the cold identity (the first
``Manifest.identify``: reads and hashes the whole file, and reads the tree's entries and
branches), the cached identity (a no-op rerun: one ``stat``), and for reference a plain
read of the file and sha256 of it. "Cold" means first hash by this process; the page
cache may hold the file (the script says whether it could drop it).

    .venv/bin/python benchmarks/input_identity.py [--repeat 5] [--size-gb 1]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from _common import ROOT, machine, markdown_table, stats

SHARED = ROOT.parent / "shared" / "data" / "nanoaod"


def drop_page_cache() -> bool:
    """Ask the kernel to drop clean pages (needs root and a writable /proc/sys); True if it did."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def timed_once(function) -> float:
    t0 = time.perf_counter()
    function()
    return time.perf_counter() - t0


def read_all(path: Path) -> None:
    with open(path, "rb") as stream:
        while stream.read(1 << 24):
            pass


def sha256_all(path: Path) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 24), b""):
            digest.update(block)


def measure(path: Path, repeat: int, tree: str = "Events") -> list:
    """Rows of (what, median, min, max, MB/s of the median)."""
    from analysis.io.fileid import Manifest, file_digest

    size_mb = path.stat().st_size / 1e6
    rows = []
    store = Path(tempfile.mkdtemp(prefix="heirloom-identity-"))
    try:
        def cold():
            drop_page_cache()
            return timed_once(lambda: Manifest(store).identify(path, tree, rehash=True))

        def cached():
            ledger = Manifest(store)
            ledger.identify(path, tree)
            ledger.save()
            return timed_once(lambda: Manifest(store).identify(path, tree))

        is_root = path.suffix == ".root"
        measures = [("plain read", lambda: (drop_page_cache(), timed_once(lambda: read_all(path)))[1]),
                    ("sha256 (reference)", lambda: (drop_page_cache(), timed_once(lambda: sha256_all(path)))[1]),
                    ("BLAKE3 digest", lambda: (drop_page_cache(), timed_once(lambda: file_digest(path)))[1])]
        if is_root:
            measures += [("identify, cold (hash + tree metadata)", cold), ("identify, cached (stat only)", cached)]
        for what, function in measures:
            times = [function() for _ in range(repeat)]
            median = stats(times)[0]
            rows.append((f"{path.name}: {what}", *stats(times), size_mb / median if median else float("inf")))
    finally:
        shutil.rmtree(store, ignore_errors=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size-gb", type=float, default=1.0, help="size of the synthetic file (default 1)")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="heirloom-identity-"))
    try:
        big = folder / "big.bin"
        with open(big, "wb") as stream:                      # incompressible bytes, written once
            block = os.urandom(1 << 24)
            for _ in range(int(args.size_gb * 1e9) // len(block)):
                stream.write(block)
        rows = measure(big, args.repeat)
        inputs = sorted(SHARED.glob("*.root")) if SHARED.exists() else []
        for path in inputs:
            rows += measure(path, args.repeat)
        dropped = drop_page_cache()
        print(f"## Input identity ({args.repeat} runs each; {machine()})\n")
        print(f"page cache dropped before each cold measurement: {'yes' if dropped else 'no (not permitted here)'}\n")
        print(markdown_table(["what", "median [s]", "min [s]", "max [s]", "MB/s"], rows))
        if not inputs:
            print(f"\n(no AGC input files at {SHARED}: only the synthetic file was measured)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

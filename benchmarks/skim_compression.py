"""Which compression a skim is written with: write speed, size and the time to read it back.

A skim is written once and read by every Select that follows it (every cut change), so
its compression trades the Skim's write time against each later read. For each candidate
(uproot's LZ4, ZSTD and ZLIB at two levels each, and none) the script writes the same
chunk as Skim writes it (``analysis.io.skim.write_tree``): ``--events`` generated ttbar
events, the branches configs/demo.yaml reads (``analysis.io.columns.needed_branches``),
nothing cut. Then it reads every branch back with uproot, as Select's event loop does.
Each figure is the median of ``--repeat`` runs. The page cache is warm, since the file
was just written.

    .venv/bin/python benchmarks/skim_compression.py [--events 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import DEMO, machine, markdown_table


def candidates() -> list:
    """(name, uproot compression) pairs; None is no compression."""
    import uproot

    return [("LZ4 level 1 (Heirloom's skims)", uproot.LZ4(1)), ("LZ4 level 4", uproot.LZ4(4)),
            ("ZSTD level 1", uproot.ZSTD(1)), ("ZSTD level 5", uproot.ZSTD(5)),
            ("ZLIB level 1", uproot.ZLIB(1)), ("ZLIB level 4 (uproot's default)", uproot.ZLIB(4)),
            ("none", None)]


def chunk(folder: Path, events: int) -> tuple[dict, list, int]:
    """The branches a demo skim keeps, of ``events`` generated ttbar events, and their
    uncompressed size in bytes."""
    import awkward as ak

    from analysis.io.demo_streams import BRANCHES
    from analysis.io.generate import generate_file
    from analysis.io.columns import needed_branches
    from analysis.io.skim import read_chunk
    from analysis.load import load_config

    source = folder / "ttbar.root"
    generate_file(source, "ttbar", events, seed=1)
    branches = needed_branches(load_config(DEMO), BRANCHES)
    arrays = read_chunk(str(source), "Events", branches, 0, events)
    return arrays, branches, sum(ak.Array(a).nbytes if not hasattr(a, "nbytes") else a.nbytes
                                 for a in arrays.values())


def measure(arrays: dict, branches: list, compression, out: Path, repeat: int) -> tuple[float, float, int]:
    """Median write and read-back seconds, and the file's size in bytes."""
    import uproot

    from analysis.io.skim import write_tree

    writes, reads = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        write_tree(out, arrays, compression=compression if compression is not None else uproot.ZLIB(0))
        writes.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with uproot.open(out) as handle:
            handle["Events"].arrays(branches, how=dict)
        reads.append(time.perf_counter() - t0)
    return statistics.median(writes), statistics.median(reads), out.stat().st_size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="heirloom-skim-compression-") as tmp:
        arrays, branches, raw = chunk(Path(tmp), args.events)
        rows = []
        for name, compression in candidates():
            write, read, size = measure(arrays, branches, compression, Path(tmp) / "skim.root", args.repeat)
            rows.append([name, size / 1e6, raw / size, write, raw / 1e6 / write, read, write + 3 * read])
    print(f"\n## Skim compression ({args.events:,} generated ttbar events, {len(branches)} branches, "
          f"{raw / 1e6:.1f} MB in memory; median of {args.repeat}; {machine()})\n")
    print(markdown_table(["compression", "size [MB]", "ratio", "write [s]", "write [MB/s]", "read back [s]",
                          "write + 3 reads [s]"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

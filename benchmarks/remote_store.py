"""A no-op of an analysis against a store on S3: wall time and requests.

Starts the test S3 server (moto's, tests/services/s3.sh; ``./setup.sh test`` makes
.venv-services), runs the analysis once into ``s3://bench/store`` (cache A), then times,
each in a fresh interpreter as a user runs it:

1. ``law run Plot`` with cache A (the machine that ran it);
2. ``law run Plot`` with an empty cache each time (a colleague's clone, CI);
3. the completeness of every task of the DAG, asked one by one (what luigi does when the top
   task is not complete yet), with an empty cache.

Requests are counted from the S3 server's own log (one line per request it answered).
Goal in issue 13: a no-op of the full AGC DAG under 3 s here.

    .venv/bin/python benchmarks/remote_store.py [--config configs/agc_ttbar.yaml] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from _common import ROOT, VENV_BIN, machine, markdown_table, stats

SERVICE = ROOT / "tests" / "services" / "s3.sh"
GOAL_SECONDS = 3.0

DAG_COMPLETENESS = """
import time
from tasks import Plot
t0 = time.perf_counter()
seen, todo = {}, [Plot(config=%r)]
while todo:
    task = todo.pop()
    if (task.task_family, task.label()) in seen:
        continue
    seen[(task.task_family, task.label())] = task.complete()
    todo += list(task.input_tasks().values())
print(len(seen), sum(seen.values()), round(time.perf_counter() - t0, 3))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_s3(state: Path) -> dict:
    subprocess.run(["bash", str(SERVICE), "start", str(state), str(free_port())], check=True, timeout=120)
    out = subprocess.run(["bash", str(SERVICE), "env", str(state)], check=True, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def requests(server: dict) -> int:
    return len(Path(server["HEIRLOOM_S3_LOG"]).read_text().splitlines())


def run(args: list, server: dict, cache: Path) -> tuple[float, int, str]:
    """(wall seconds, requests, stdout) of one command against the S3 store."""
    env = dict(os.environ, **server, HEIRLOOM_STORE="s3://bench/store", HEIRLOOM_CACHE=str(cache),
               PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    before, t0 = requests(server), time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args[:3]))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    if "done in" in proc.stdout + proc.stderr and args[1:2] == ["run"] and cache.name != "first":
        raise SystemExit("a task ran during a no-op run: the store did not serve it")
    return seconds, requests(server) - before, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "agc_ttbar.yaml"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    config = str(Path(args.config).absolute())
    work = Path(tempfile.mkdtemp(prefix="heirloom-bench-s3-"))
    server = start_s3(work / "s3")
    try:
        import s3fs

        s3fs.S3FileSystem(client_kwargs={"endpoint_url": server["AWS_ENDPOINT_URL"]}, key="x",
                          secret="x").call_s3("create_bucket", Bucket="bench")
        law = [str(VENV_BIN / "law"), "run", "Plot", "--config", config]
        first, first_requests, _ = run(law, server, work / "first")
        print(f"first run into the S3 store: {first:.1f} s, {first_requests} requests", flush=True)
        rows = []
        warm = [run(law, server, work / "first") for _ in range(args.repeat)]
        cold = [run(law, server, work / f"empty-{n}") for n in range(args.repeat)]
        dag = [run([str(VENV_BIN / "python"), "-c", DAG_COMPLETENESS % config], server, work / f"dag-{n}")
               for n in range(args.repeat)]
        for label, results in (("`law run Plot`, the cache that ran it", warm),
                               ("`law run Plot`, an empty cache (another clone)", cold),
                               ("every task's completeness, asked one by one, empty cache", dag)):
            median, low, high = stats([seconds for seconds, _, _ in results])
            rows.append([label, median, low, high, f"{sorted(r for _, r, _ in results)[len(results) // 2]}"])
        tasks, complete, _ = dag[0][2].split()
        print(f"\n{Path(config).name}: {tasks} tasks in the DAG ({complete} complete); "
              f"median of {args.repeat}; goal for the no-op: under {GOAL_SECONDS:.0f} s\n")
        print(markdown_table(["no-op against s3:// (moto on 127.0.0.1)", "median s", "min s", "max s", "requests"],
                             rows))
        print(f"\n{machine()}")
    finally:
        subprocess.run(["bash", str(SERVICE), "stop", str(work / "s3")], timeout=60)


if __name__ == "__main__":
    main()

"""The exported yadage workflow on the analysis image versus ``law run``, and its no-op run.

Per repeat, alternating and each into a fresh store or work folder:

1. ``law run Plot --config <cfg>`` (the reference);
2. ``yadage-run`` of the exported ``workflow.yml``: one step per task family, each in the
   analysis image (podman through its Docker API), started as REANA starts jobs (a
   non-root uid, no working directory);
3. the same workflow given law run's store as its ``cache`` (nothing to compute: the
   per-step start-up, the "no-op run").

The image is built first (``containers/build.sh``; not timed). Prints a Markdown table
(median, min, max) and the ratio container/law run. Project goals: at most 2x ``law
run`` on the demo, and a no-op run under 30 s. Needs podman (``./setup.sh test``
installs it) and ``.venv-preserve`` (``./setup.sh preserve``).

    .venv/bin/python benchmarks/container_workflow.py [--config configs/demo.yaml] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _common import DEMO, ROOT, VENV_BIN, law_run, machine, markdown_table, stats

TOOLS = ROOT / ".venv-preserve" / "bin"


def podman_service(folder: Path) -> tuple[subprocess.Popen, str]:
    """podman's Docker API on a socket in ``folder``; waits (bounded) until it answers."""
    socket = folder / "podman.sock"
    service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{socket}"],
                               env=container_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host = f"unix://{socket}"
    for _ in range(120):
        if subprocess.run(["docker", "--host", host, "version"], capture_output=True).returncode == 0:
            return service, host
        time.sleep(0.5)
    service.terminate()
    raise SystemExit("podman's Docker API did not answer")


def container_env(**extra) -> dict:
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}", **extra)
    env.setdefault("CONTAINERS_CONF", str(ROOT / "containers" / "podman.conf"))
    return env


def check(command: list, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, command))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def yadage(bundle: Path, work: Path, host: str) -> float:
    env = container_env(DOCKER_HOST=host, PACKTIVITY_DOCKER_NOPULL="1", PACKTIVITY_DOCKER_CMD_MOD="--user 1000:1000")
    t0 = time.perf_counter()
    check([TOOLS / "yadage-run", work, "workflow.yml", "inputs.yml", "-d", f"initdir={bundle}"], cwd=bundle,
          env=env, preexec_fn=lambda: os.umask(0))
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(DEMO))
    parser.add_argument("--task", default="Plot")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    config = Path(args.config).resolve()

    image = check([ROOT / "containers" / "build.sh"], env=container_env()).stdout.split()[-1]
    folder = Path(tempfile.mkdtemp(prefix="hl-bench-", dir="/tmp"))
    service, host = podman_service(folder)
    times: dict[str, list] = {"law run": [], "container workflow": [], "no-op run": []}
    try:
        bundle = folder / "bundle"
        check([VENV_BIN / "heirloom", "export", "yadage", "--config", config, "--task", args.task, "--out", bundle])
        families = check(["grep", "-c", "^- name:", bundle / "workflow.yml"]).stdout.strip()
        for i in range(args.repeat):
            store = folder / f"law-{i}"
            times["law run"].append(law_run(args.task, config, store))
            times["container workflow"].append(yadage(bundle, folder / f"work-{i}", host))
            shutil.rmtree(bundle / "store", ignore_errors=True)
            check(["cp", "-al", store, bundle / "store"])            # the workflow's cache: everything
            times["no-op run"].append(yadage(bundle, folder / f"noop-{i}", host))
            shutil.rmtree(bundle / "store")
    finally:
        service.terminate()
        service.wait(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)

    law = stats(times["law run"])[0]
    rows = [[name, *stats(values), stats(values)[0] / law] for name, values in times.items()]
    print(f"### Exported workflow in containers vs law run ({config.name}, task {args.task}, {families} "
          f"steps, image {image}, --repeat {args.repeat})\n")
    print(markdown_table(["command", "median [s]", "min [s]", "max [s]", "/ law run"], rows))
    print(f"\n{machine()}")


if __name__ == "__main__":
    main()

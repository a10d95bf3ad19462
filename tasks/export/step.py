"""``heirloom step``: one step of an exported workflow, run with ``law run``.

    heirloom step Skim --of Plot --config /ws/analysis.yaml --store /ws/Skim/store \\
        --upstream /ws/Generate/store --publish /ws/Skim/heirloom-step.yml
    heirloom step Skim --config analysis.yaml --store /data/store --dataset ttbar --chunk 0

With ``--of TOP`` the step runs every task of its family under ``TOP`` together
(``law run Branches``, :mod:`tasks.branches`); otherwise the one task its arguments name.
It runs in this process, from the Heirloom installation's folder (where law.cfg and the
task index are), whatever the folder it starts in: REANA starts jobs with no working
directory as a non-root user, packtivity with ``-w <step folder>``. Every path it is
given is made absolute first.

Outputs go into ``--store``; the stores of the steps it depends on (``--upstream``) are
read, never written (``HEIRLOOM_STORE_UPSTREAM``). ``--publish`` (YAML) tells the engine
what ran: the family, each task's label, key and output folder, the store and the stores
below it (``stores``, for the steps after it), and the task's numbers (the fitted POI,
the limits). ``--results DIR`` copies the outputs, as real files, to ``DIR/<Task>/<label>/``
(REANA's declared outputs). A relative ``--store`` is taken inside ``$REANA_WORKSPACE``
when that is set; otherwise it must be absolute. Exit status: law's; a failure is one line.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from analysis.errors import HeirloomError
from analysis.lang.trust import TRUST_FILE_NAME

HOME = Path(__file__).resolve().parents[2]          # the folder with law.cfg
RESULTS = ("poi", "significance", "limit")           # provenance entries copied into the publish file


class StepError(HeirloomError):
    pass


def in_workspace(path: str) -> Path | None:
    """``path`` made absolute: as it is, or inside ``$REANA_WORKSPACE`` (REANA); None when
    it is relative and there is no workspace."""
    if Path(path).is_absolute():
        return Path(path)
    workspace = os.environ.get("REANA_WORKSPACE")
    return Path(workspace) / path if workspace else None


def resolve_store(store: str) -> Path:
    path = in_workspace(store)
    if path is None:
        raise StepError(f"--store {store!r} is relative, but every workflow step runs in a folder of its own: "
                        "give an absolute path (yadage-run ... -p store=$PWD/store)")
    return path


def upstream_stores(paths: list[str]) -> list[str]:
    """The ``--upstream`` stores that exist, absolute; the others are skipped (the ``cache``
    parameter names a store that a workflow may or may not be given)."""
    found: list[str] = []
    for path in paths:
        where = in_workspace(path)
        if where is not None and (where / "objects").is_dir() and str(where) not in found:
            found.append(str(where))
    return found


def run_step(task: str, config: str, store: str, args: list[str], publish: str | None = None, *,
             of: str | None = None, upstream: list[str] | None = None, results: str | None = None) -> int:
    """Run one task (or, with ``of``, every task of its family under ``of``) through
    ``law run``; write the publish file and the results when it succeeded."""
    config_path = Path(config).resolve()
    if not config_path.is_file():
        raise StepError(f"config {config!r} not found (from {Path.cwd()})")
    store_path = resolve_store(store)
    store_path.mkdir(parents=True, exist_ok=True)
    below = upstream_stores(upstream or [])
    publish_path = Path(publish).resolve() if publish else None
    results_path = Path(results).resolve() if results else None
    target = ["Branches", "--family", task, "--of", of] if of else [task]
    argv = ["run", *target, "--config", str(config_path), *args]
    print(f"heirloom step: law {' '.join(argv)} (store {store_path}"
          + (f", reading {len(below)} upstream" if below else "") + ")", flush=True)
    os.environ["HEIRLOOM_STORE"] = str(store_path)
    os.environ["HEIRLOOM_STORE_UPSTREAM"] = os.pathsep.join(below)
    vouched = config_path.parent / TRUST_FILE_NAME     # a bundle's plugins (docs/security.md)
    if vouched.is_file():
        os.environ["HEIRLOOM_TRUSTED_PLUGINS"] = os.pathsep.join(
            p for p in (os.environ.get("HEIRLOOM_TRUSTED_PLUGINS", ""), str(vouched)) if p)
    os.chdir(HOME)                         # the installation's law.cfg and task index
    os.environ.update(LAW_CONFIG_FILE=str(HOME / "law.cfg"), LAW_INDEX_FILE=str(HOME / ".law" / "index"))
    code = _law(argv)
    if code == 0 and (publish_path or results_path):
        record = outcome(task, str(config_path), args, of)
        record.update(store=str(store_path), stores=[str(store_path), *[s for s in below if s != str(store_path)]])
        if publish_path:
            from tasks.export.common import write_yaml

            write_yaml(publish_path, record)
        if results_path:
            copy_results(record, results_path)
    return code


def _law(argv: list[str]) -> int:
    import law.cli.cli                     # in this process: one interpreter start per step

    law.config.Config._instance = None     # read law.cfg again, from HOME (not the step's folder)
    law.config.Config.instance()
    try:
        law.cli.cli.run(argv)
        return 0
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)


def outcome(task: str, config: str, args: list[str], of: str | None) -> dict:
    """What ran: the family, and per task its label, key, output folder and numbers."""
    from tasks.branches import family_tasks, tops

    if of:
        ran = family_tasks(tops(of, config), task)
    else:
        from luigi.cmdline_parser import CmdlineParser

        with CmdlineParser.global_instance([task, "--config", config, *_task_arguments(args)]) as parser:
            ran = [parser.get_task_obj()]
    record: dict = {"task": task, "tasks": []}
    for obj in ran:
        entry = obj.store_entry()
        if not entry.exists():
            raise StepError(f"{task}[{obj.label()}] reported success but its output {entry.path} is missing")
        item = {"label": obj.label(), "key": obj.key(), "output": str(entry.path)}
        provenance = entry.provenance()
        numbers = {name: provenance[name] for name in RESULTS if name in provenance}
        if numbers:                        # e.g. the fitted POI, the limits: readable where the engine looks
            item["results"] = numbers
        record["tasks"].append(item)
    if len(record["tasks"]) == 1:          # one task: its fields at the top too (recast reads them there)
        record.update({k: v for k, v in record["tasks"][0].items()})
    return record


def copy_results(record: dict, folder: Path) -> None:
    """Copy each task's output folder (files, provenance.json) to ``folder/<Task>/<label>/``."""
    for item in record["tasks"]:
        target = folder / record["task"] / item["label"]
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(item["output"], target, symlinks=False)


def _task_arguments(args: list[str]) -> list[str]:
    """``args`` without law/luigi's global options (``--workers``, ``--executor``, ...)."""
    globals_ = {"--workers", "--executor", "--scheduler", "--log-level", "--local-scheduler"}
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in globals_:
            skip = "=" not in arg and name != "--local-scheduler"
            continue
        out.append(arg)
    return out


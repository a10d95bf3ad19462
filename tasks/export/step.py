"""``heirloom step``: one task of an exported workflow, run with ``law run``.

    heirloom step Skim --config analysis.yaml --store /data/store --publish out.yml --dataset ttbar --chunk 0

Runs ``law run <Task> --config <config> <arguments>`` in this process, from the Heirloom
installation's folder (where law.cfg and the task index are), with ``HEIRLOOM_STORE``
set, so a workflow engine can start it from any folder; then writes ``--publish`` (YAML: task, label, key, output
folder, and the task's numbers: the fitted POI, the limits) for the engine to pass on. A relative ``--store`` is taken inside
``$REANA_WORKSPACE`` when that is set (REANA); otherwise it must be absolute, since each
workflow step runs in a folder of its own. Exit status: law's.
"""

from __future__ import annotations

import os
from pathlib import Path

from analysis.errors import HeirloomError
from analysis.lang.trust import TRUST_FILE_NAME

HOME = Path(__file__).resolve().parents[2]          # the folder with law.cfg
RESULTS = ("poi", "significance", "limit")           # provenance entries copied into the publish file


class StepError(HeirloomError):
    pass


def resolve_store(store: str) -> Path:
    path = Path(store)
    if path.is_absolute():
        return path
    workspace = os.environ.get("REANA_WORKSPACE")
    if workspace:
        return Path(workspace) / path
    raise StepError(f"--store {store!r} is relative, but every workflow step runs in a folder of its own: "
                    "give an absolute path (yadage-run ... -p store=$PWD/store)")


def run_step(task: str, config: str, store: str, args: list[str], publish: str | None = None) -> int:
    """Run one task through ``law run``; write the publish file when it succeeded."""
    config_path = Path(config).resolve()
    if not config_path.is_file():
        raise StepError(f"config {config!r} not found (from {Path.cwd()})")
    store_path = resolve_store(store)
    store_path.mkdir(parents=True, exist_ok=True)
    publish_path = Path(publish).resolve() if publish else None
    argv = ["run", task, "--config", str(config_path), *args]
    print(f"heirloom step: law {' '.join(argv)} (store {store_path})", flush=True)
    os.environ["HEIRLOOM_STORE"] = str(store_path)
    vouched = config_path.parent / TRUST_FILE_NAME     # a bundle's plugins (docs/security.md)
    if vouched.is_file():
        os.environ["HEIRLOOM_TRUSTED_PLUGINS"] = os.pathsep.join(
            p for p in (os.environ.get("HEIRLOOM_TRUSTED_PLUGINS", ""), str(vouched)) if p)
    os.chdir(HOME)                         # law finds law.cfg and the task index here
    import law.cli.cli                     # in this process: one interpreter start per step

    law.config.Config._instance = None     # read law.cfg again, from HOME (not the step's folder)
    law.config.Config.instance()

    try:
        law.cli.cli.run(argv)
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    if code == 0 and publish_path:
        write_publish(task, str(config_path), args, store_path, publish_path)
    return code


def write_publish(task: str, config: str, args: list[str], store_path: Path, publish: Path) -> None:
    import yaml
    from luigi.cmdline_parser import CmdlineParser

    import tasks  # noqa: F401  (registers the task families)

    task_args = _task_arguments(args)
    with CmdlineParser.global_instance([task, "--config", config, *task_args]) as parser:
        obj = parser.get_task_obj()
    entry = obj.store_entry()
    if not entry.exists():
        raise StepError(f"{task}[{obj.label()}] reported success but its output {entry.path} is missing")
    record = {"task": task, "label": obj.label(), "key": obj.key(), "output": str(entry.path)}
    provenance = entry.provenance()
    results = {name: provenance[name] for name in RESULTS if name in provenance}
    if results:                            # e.g. the fitted POI, the limits: readable where the engine looks
        record["results"] = results
    publish.parent.mkdir(parents=True, exist_ok=True)
    publish.write_text(yaml.safe_dump(record, sort_keys=False))


def _task_arguments(args: list[str]) -> list[str]:
    """``args`` without law/luigi's global options (``--workers``, ``--executor``, ...)."""
    globals_ = {"--workers", "--executor", "--scheduler", "--log-level", "--local-scheduler"}
    out, skip = [], False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in globals_:
            skip = "=" not in arg and name != "--local-scheduler"
            continue
        out.append(arg)
    return out

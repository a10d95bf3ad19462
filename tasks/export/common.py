"""What every exporter shares: the DAG of a config, the bundle, the image, the step command."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from tasks.export.bundle import write_bundle
from tasks.export.dag import Stage, stages, walk
from tasks.export.image import default_image


@dataclass
class Export:
    """A config's DAG below ``task``, bundled into ``outdir``."""

    config: str
    task: str
    outdir: Path
    image: str
    stages: list[Stage]
    config_file: str          # the bundled config, relative to outdir
    analysis: str


def prepare(config: str, task: str, outdir: str | Path, image: str | None = None) -> Export:
    """Walk ``task``'s dependency tree for ``config`` and bundle the config into ``outdir``."""
    from analysis.load import load_config
    from tasks.branches import tops

    try:
        roots = tops(task, config)
    except ValueError as err:
        raise SystemExit(f"heirloom export: {err}") from None
    cfg = load_config(config)
    outdir = Path(outdir)
    config_file = write_bundle(cfg, outdir, source=shown_path(config))
    return Export(config=config, task=task, outdir=outdir, image=default_image(image),
                  stages=stages(walk(roots)), config_file=config_file, analysis=cfg.name)


def rebundled(exp: Export, outdir: str | Path) -> Export:
    """``exp`` for another folder, with the config bundled there too (no second DAG walk)."""
    from dataclasses import replace

    from analysis.load import load_config

    outdir = Path(outdir)
    write_bundle(load_config(exp.config), outdir, source=shown_path(exp.config))
    return replace(exp, outdir=outdir)


def step_command(task: str, config: str, store: str, args: str, publish: str) -> str:
    """The command every exported step runs: ``law run`` of one task, through ``heirloom step``."""
    return f"heirloom step {task} --config {config} --store {store} --publish {publish} {args}".rstrip()


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data):          # every repeated block written out in full
        return True


def write_yaml(path: Path, data, header: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.dump(data, Dumper=_NoAliases, sort_keys=False, width=1000,
                                       default_flow_style=False))


def header(exp: Export, what: str) -> str:
    return (f"# {what}: written by `heirloom export` from {shown_path(exp.config)} (task {exp.task}).\n"
            f"# Do not edit: change the config and export again.\n")


def shown_path(config: str) -> str:
    """The config path as given relative to the current folder when inside it (stable output)."""
    path = Path(config)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)

"""What every exporter shares: the DAG of a config, the bundle, the image, the step command."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from tasks.export.bundle import write_bundle
from tasks.export.dag import Stage, stages, walk

IMAGE_NAME = "heirloom/analysis"


def default_image(image: str | None = None) -> str:
    """The analysis image the exports name: ``image`` (``--image``), else ``$HEIRLOOM_IMAGE``,
    else ``heirloom/analysis``; without a tag, the Heirloom version is the tag (what
    ``docker build -f containers/Dockerfile -t heirloom/analysis:<version> .`` makes).

    >>> default_image("registry.example/heirloom")          # doctest: +SKIP
    'registry.example/heirloom:0.1.0'
    """
    from analysis import __version__

    image = image or os.environ.get("HEIRLOOM_IMAGE") or IMAGE_NAME
    name, tag = split_image(image)
    return f"{name}:{tag or __version__}"


def split_image(image: str) -> tuple[str, str]:
    """``"heirloom/analysis:0.1.0"`` -> ``("heirloom/analysis", "0.1.0")``; no tag: ``""``
    (a ``:`` in a registry's host:port is not a tag)."""
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return image, ""
    return name, tag


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
    import tasks as task_module
    from analysis.load import load_config

    cls = getattr(task_module, task, None)
    if cls is None or not hasattr(cls, "task_family"):
        raise SystemExit(f"heirloom export: unknown task '{task}' (one of {', '.join(task_module.__all__)})")
    cfg = load_config(config)
    outdir = Path(outdir)
    config_file = write_bundle(cfg, outdir, source=_display(config))
    return Export(config=config, task=task, outdir=outdir, image=default_image(image),
                  stages=stages(walk(cls(config=config))), config_file=config_file, analysis=cfg.name)


def rebundled(exp: Export, outdir: str | Path) -> Export:
    """``exp`` for another folder, with the config bundled there too (no second DAG walk)."""
    from dataclasses import replace

    from analysis.load import load_config

    outdir = Path(outdir)
    write_bundle(load_config(exp.config), outdir, source=_display(exp.config))
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
    return (f"# {what}: written by `heirloom export` from {_display(exp.config)} (task {exp.task}).\n"
            f"# Do not edit: change the config and export again.\n")


def _display(config: str) -> str:
    """The config path as given relative to the current folder when inside it (stable output)."""
    path = Path(config)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)

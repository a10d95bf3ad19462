"""Exporters: the live law DAG of a config written as yadage, Snakemake and REANA specs.

``heirloom export yadage|snakemake|reana --config C`` walks the same dependency tree that
``law run`` executes (:mod:`tasks.export.dag`), bundles the config with what it reads
(:mod:`tasks.export.bundle`) and writes the workflow files. Every step runs
``heirloom step <Task> --config ... --store ...``, i.e. ``law run`` of that one task, so an
exported workflow and ``law run`` compute the same content addresses.
"""


def export(kind: str, config: str, task: str = "All", out: str | None = None, image: str | None = None,
           new_signal: str | None = None) -> list:
    """Write the files of ``kind`` (yadage, snakemake, reana, recast or all) for ``config``
    into ``out`` or ``workflows/<kind>/<analysis>/`` (reana: ``reana.yaml``); return
    their paths. The DAG is walked once, whatever ``kind`` writes.

    >>> export("all", "configs/agc_ttbar.yaml")[-1]          # doctest: +SKIP
    PosixPath('workflows/snakemake/agc_ttbar/config.yaml')
    """
    from pathlib import Path

    from analysis.load import load_config
    from tasks.export import common, reana, recast, snakemake, yadage

    name = load_config(config).name
    folder = {k: Path(out) if out and kind == k else Path(f"workflows/{k}/{name}")
              for k in ("yadage", "snakemake", "recast")}
    if kind == "recast":
        if new_signal:             # rewritten below: its copies from an earlier export must not claim paths first
            (folder["recast"] / "specs" / recast.NEW_SIGNAL).unlink(missing_ok=True)
        return recast.export(common.prepare(config, task, folder["recast"] / "specs", image), new_signal)
    exp = common.prepare(config, task, folder["snakemake" if kind == "snakemake" else "yadage"], image)
    written = []
    if kind in ("yadage", "reana", "all"):
        written += yadage.export(exp)
    if kind in ("reana", "all"):
        written += reana.export(exp, Path(out) if out and kind == "reana" else Path("reana.yaml"))
    if kind in ("snakemake", "all"):
        written += snakemake.export(exp if kind == "snakemake" else common.rebundled(exp, folder["snakemake"]))
    return written

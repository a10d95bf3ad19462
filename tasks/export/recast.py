"""``recast.yml``: a reinterpretation fork as an entry of the recast-atlas catalogue.

Writes ``<folder>/recast.yml`` and ``<folder>/specs/`` (the yadage export of the fork's
``Limit`` DAG, where recast-atlas looks for it by default). The example inputs are
``default`` (the fork as it is) and ``newsignal`` (another fork, bundled beside it as
``newsignal.yaml``: a different signal, same analysis); the result is the ``Limit``
step's publish file with the observed and expected limits.

    heirloom export recast --config configs/reinterpret_example.yaml \\
        --new-signal configs/reinterpret_zprime_1000.yaml
    RECAST_ATLAS_CATALOGUE=workflows/recast/agc_zprime recast catalogue describe heirloom/agc_zprime
"""

from __future__ import annotations

from pathlib import Path

from tasks.export import yadage
from tasks.export.bundle import write_bundle
from tasks.export.common import Export, shown_path, header, write_yaml

NEW_SIGNAL = "newsignal.yaml"


def catalogue_entry(exp: Export, new_signal: str | None, description: str) -> dict:
    """The entry; its examples run from the folder the export ran in (the repository root):
    that folder is the init folder (``initdir: ..``, relative to recast's work folder),
    so the configs are found there and its ``store`` is reused read-only."""
    specs = shown_path(str(exp.outdir))
    defaults = {**yadage.inputs(exp), "config": f"{specs}/{exp.config_file}"}
    dataopts = {"initdir": ".."}
    examples = {"default": {"dataopts": dataopts, "initdata": defaults}}
    if new_signal:
        examples["newsignal"] = {"dataopts": dataopts, "initdata": {**defaults, "config": f"{specs}/{new_signal}"}}
    last = exp.stages[-1]
    return {
        "name": f"heirloom/{exp.analysis}",
        "metadata": {
            "author": "Heirloom (exported from the live law DAG)",
            "short_description": description,
            "input requirements": ("initdata.config: a Heirloom config that forks the bundled analysis.yaml "
                                   "with the new signal (its dataset: generator parameters or files:, and its "
                                   "cross-section), in the init folder; initdata.cache: a store in the init "
                                   "folder whose results are reused read-only (optional)"),
        },
        "spec": {"workflow": "workflow.yml"},
        "example_inputs": examples,
        "results": [{"name": f"{last.family}: observed and expected results",
                     "relpath": f"{last.family}/{yadage.PUBLISH}", "load_yaml": True}],
    }


def export(exp: Export, new_signal_config: str | None = None) -> list:
    """Write recast.yml and specs/ for ``exp`` (whose outdir is the specs folder)."""
    from analysis.load import load_config

    written = yadage.export(exp)
    new_signal = None
    if new_signal_config:
        new_signal = write_bundle(load_config(new_signal_config), exp.outdir, new_signal_config, NEW_SIGNAL)
        written.append(exp.outdir / new_signal)
    cfg = load_config(exp.config)
    description = cfg.data.get("description") or f"{exp.analysis}: limits on a new signal"
    path = Path(exp.outdir).parent / "recast.yml"
    write_yaml(path, catalogue_entry(exp, new_signal, description), header(exp, "recast-atlas catalogue entry"))
    return written + [path]

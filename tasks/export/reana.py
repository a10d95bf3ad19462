"""``reana.yaml``: a config's yadage export as a REANA workflow.

It names the exported yadage folder as the input directory, the workflow file whose steps
run in the analysis image, the same parameters as ``inputs.yml`` (with the config's path
inside the workspace), and as outputs the final steps' publish files and their ``results/``
folders (the final tasks' files and provenance, copied as plain files: no links). Check it with ``reana-client validate``; submit
with ``reana-client run -w <name>``.
"""

from __future__ import annotations

import os
from pathlib import Path

from tasks.export import yadage
from tasks.export.common import Export, header, write_yaml
from tasks.export.dag import final_stages

REANA_VERSION = "0.9.0"


def reana_spec(exp: Export, location: Path) -> dict:
    """The reana.yaml of ``exp`` (a yadage export) for a file written at ``location``."""
    folder = Path(os.path.relpath(exp.outdir.resolve(), location.resolve().parent)).as_posix()
    parameters = yadage.inputs(exp)
    parameters["config"] = f"{folder}/{parameters['config']}"
    finals = [stage.family for stage in final_stages(exp.stages)]   # their folders: publish file, results/
    return {
        "version": REANA_VERSION,
        "inputs": {"directories": [folder], "parameters": parameters},
        "workflow": {"type": "yadage", "file": f"{folder}/workflow.yml"},
        "outputs": {"files": [f"{family}/{yadage.PUBLISH}" for family in finals],
                    "directories": [f"{family}/{yadage.RESULTS}" for family in finals]},
    }


def export(exp: Export, location: Path) -> list:
    """Write ``reana.yaml`` at ``location`` for the yadage export ``exp``."""
    write_yaml(location, reana_spec(exp, location), header(exp, "REANA specification"))
    return [location]

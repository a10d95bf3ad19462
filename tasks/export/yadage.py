"""A yadage workflow of a config's DAG: one step per task family, its branches run together.

Each stage is one step, ``heirloom step <Family> --of <Task>``: ``law run`` of every task
of that family under the exported task, in one process (one container start per family,
not per task), in the order of the DAG. Each step writes its outputs into a store in its
own folder (``{workdir}/store``) and reads the stores of the steps before it, which it
is given as ``--upstream``, with the ``cache`` store (yadage's data model: a step writes only its own folder, and
sees the folders of its dependencies read-only). The final steps (those no step needs:
Plot, Ranking, Significance of ``All``) also copy their outputs, as plain files, to
``{workdir}/results/`` (what reana.yaml declares as outputs). Every
path a step gets is absolute, so nothing depends on the folder a container starts in.

Files written into the export folder:

- ``workflow.yml``: the stages; each step runs in the analysis image
  (``docker-encapsulated``, for REANA and any yadage with a container runtime), named by
  its content tag (:mod:`tasks.export.image`);
- ``workflow-local.yml``: the same stages, each step a local process
  (``localproc-env``: needs ``heirloom`` on PATH, e.g. ``source .venv/bin/activate``);
- ``inputs.yml``: the parameters: the bundled config, and ``cache``, a store to reuse
  read-only (``store``: when the init folder has one, e.g. the repository's own store);
- ``analysis.yaml`` (+ ``plugins/``, ``corrections/``, ``inputs/``): see :mod:`tasks.export.bundle`.

The structure (workflow*.yml) depends on the task families only; a changed cut changes
``analysis.yaml``.

    cd workflows/yadage/agc_ttbar
    yadage-run work workflow-local.yml inputs.yml -d initdir=$PWD
"""

from __future__ import annotations

from tasks.export.common import Export, header, write_yaml
from tasks.export.dag import final_stages
from tasks.export.image import split_image

PUBLISH = "heirloom-step.yml"
CACHE = "store"
RESULTS = "results"


def upstream_parameter(family: str) -> str:
    return f"stores_{family}"


def command(exp: Export, family: str, after: tuple, last: bool) -> str:
    """The step's command line (yadage interpolates the ``{...}`` parameters)."""
    cmd = f"heirloom step {family} --of {exp.task} --config {{config}} --store {{store}} --publish {{publish}}"
    if last:
        cmd += " --results {results}"
    return cmd + " --upstream {cache} " + " ".join("{%s}" % upstream_parameter(dep) for dep in after)


def workflow(exp: Export, local: bool) -> dict:
    """The stages of ``exp``: steps in the analysis image, or local processes (``local``).

    A stage's parameters carry the names of the workflow inputs they take (``config``),
    as ``reana-client validate`` expects."""
    stages = []
    finals = {stage.family for stage in final_stages(exp.stages)}
    for stage in exp.stages:
        last = stage.family in finals
        parameters = {"config": {"step": "init", "output": "config"},
                      "cache": {"step": "init", "output": "cache"},
                      "store": "{workdir}/store",
                      "publish": "{workdir}/" + PUBLISH}
        if last:
            parameters["results"] = "{workdir}/" + RESULTS
        for dep in stage.after:
            parameters[upstream_parameter(dep)] = {"step": dep, "output": "stores"}
        stages.append({
            "name": stage.family,
            "dependencies": list(stage.after) or ["init"],
            "scheduler": {
                "scheduler_type": "singlestep-stage",
                "parameters": parameters,
                "step": step(exp, command(exp, stage.family, stage.after, last), local),
            },
        })
    return {"stages": stages}


def step(exp: Export, cmd: str, local: bool) -> dict:
    """A step running ``cmd``, in the analysis image or as a local process (``local``)."""
    name, tag = split_image(exp.image)
    environment = ({"environment_type": "localproc-env"} if local else
                   {"environment_type": "docker-encapsulated", "image": name, "imagetag": tag})
    return {
        "process": {"process_type": "string-interpolated-cmd", "cmd": cmd},
        "publisher": {"publisher_type": "fromyaml-pub", "yamlfile": PUBLISH},
        "environment": environment,
    }


def inputs(exp: Export) -> dict:
    """The workflow's parameters: the config, and ``cache``, a store whose results the
    steps reuse, read-only (``store`` in the folder the workflow starts from, when there is one)."""
    return {"config": exp.config_file, "cache": CACHE}


def export(exp: Export) -> list:
    """Write the yadage files of ``exp`` (see the module doc); return their paths."""
    out = exp.outdir
    files = {
        out / "workflow.yml": (workflow(exp, local=False), "yadage workflow, steps in the analysis image"),
        out / "workflow-local.yml": (workflow(exp, local=True), "yadage workflow, steps as local processes"),
        out / "inputs.yml": (inputs(exp), "yadage parameters"),
    }
    for path, (data, what) in files.items():
        write_yaml(path, data, header(exp, what))
    return list(files)

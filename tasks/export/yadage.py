"""A yadage workflow of a config's DAG: one stage per task family, scattered over its tasks.

Every stage runs the same step, ``heirloom step <Task> ...`` (written into each stage, so
the workflow resolves from any top-level folder: REANA resolves references from the
workspace root). Files written into the export folder:

- ``workflow.yml``: the stages; each step runs in the analysis image
  (``docker-encapsulated``, for REANA and any yadage with a container runtime);
- ``workflow-local.yml``: the same stages, each step a local process
  (``localproc-env``: needs ``heirloom`` on PATH, e.g. ``source .venv/bin/activate``);
- ``inputs.yml``: the parameters: the bundled config, the store, each stage's task arguments;
- ``analysis.yaml`` (+ ``plugins/``, ``corrections/``): the config, see :mod:`tasks.export.bundle`.

The structure (workflow*.yml) depends on the task families only; a changed cut
changes ``analysis.yaml``, a changed dataset list the task arguments in ``inputs.yml``.

    cd workflows/yadage/agc_ttbar
    yadage-run work workflow-local.yml inputs.yml -d initdir=$PWD -p store=$PWD/store
"""

from __future__ import annotations

from tasks.export.common import Export, header, split_image, step_command, write_yaml

PUBLISH = "heirloom-step.yml"


def args_parameter(family: str) -> str:
    return f"{family}_args"


def workflow(exp: Export, local: bool) -> dict:
    """The stages of ``exp``: steps in the analysis image, or local processes (``local``).

    A stage's parameters carry the names of the workflow inputs they take (``config``,
    ``store``, ``<Task>_args``), as ``reana-client validate`` expects."""
    stages = []
    for stage in exp.stages:
        args = args_parameter(stage.family)
        stages.append({
            "name": stage.family,
            "dependencies": list(stage.after) or ["init"],
            "scheduler": {
                "scheduler_type": "multistep-stage",
                "parameters": {name: {"step": "init", "output": name} for name in ("config", "store", args)},
                "scatter": {"method": "zip", "parameters": [args]},
                "step": step(exp, stage.family, local),
            },
        })
    return {"stages": stages}


def step(exp: Export, family: str, local: bool) -> dict:
    """The step of a stage: ``heirloom step <family>``, in the analysis image or a local process."""
    name, tag = split_image(exp.image)
    environment = ({"environment_type": "localproc-env"} if local else
                   {"environment_type": "docker-encapsulated", "image": name, "imagetag": tag})
    return {
        "process": {"process_type": "string-interpolated-cmd",
                    "cmd": step_command(family, "{config}", "{store}", "{%s}" % args_parameter(family), PUBLISH)},
        "publisher": {"publisher_type": "fromyaml-pub", "yamlfile": PUBLISH},
        "environment": environment,
    }


def inputs(exp: Export) -> dict:
    data = {"config": exp.config_file, "store": "store"}
    for stage in exp.stages:
        # "--" for a task without parameters: yadage would read "" as the path of its initdir
        data[args_parameter(stage.family)] = [args or "--" for args in stage.args()]
    return data


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

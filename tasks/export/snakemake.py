"""A Snakefile of a config's DAG: one rule per task family, one job per task.

Files written into the export folder:

- ``Snakefile``: the rules (their structure depends on the task families only);
- ``config.yaml``: the parameters: the bundled config, the store, the image, and for each
  task its ``law run`` arguments and the tasks it needs (exact per-task dependencies);
- ``analysis.yaml`` (+ ``plugins/``, ``corrections/``): the config, see :mod:`tasks.export.bundle`.

Each job runs ``heirloom step`` and writes a marker ``heirloom-done/<Task>/<label>.yml``
(key and store path of the result) in snakemake's working folder. Run it with::

    snakemake -s workflows/snakemake/agc_ttbar/Snakefile --cores 2 --config store=$PWD/store

(``--use-singularity`` runs each job in the analysis image instead.)
"""

from __future__ import annotations

from tasks.export.common import Export, header, step_command, write_yaml
from tasks.export.dag import final_stages

MARKERS = "heirloom-done"

PREAMBLE = '''import os

configfile: os.path.join(workflow.basedir, "config.yaml")

CONFIG = os.path.join(workflow.basedir, config["config"])
STORE = os.path.abspath(config["store"])
TASKS = config["tasks"]


def marker(ident):
    family, label = ident.split("/", 1)
    return f"{markers}/{{family}}/{{label}}.yml"


def needs(family):
    return lambda wildcards: [marker(ident) for ident in TASKS[family][wildcards.label]["requires"]]


def arguments(family):
    return lambda wildcards: TASKS[family][wildcards.label]["args"]


wildcard_constraints:
    label="[^/]+"


rule all:
    input: [marker(ident) for ident in config["targets"]]
'''

RULE = '''

rule {family}:
    input: needs("{family}")
    output: "{markers}/{family}/{{label}}.yml"
    params: args=arguments("{family}"), config=CONFIG, store=STORE
    container: "docker://" + config["image"]
    shell: "{command}"
'''


def snakefile(exp: Export) -> str:
    command = step_command(task="{family}", config="{{params.config}}", store="{{params.store}}",
                           args="{{params.args}}", publish="{{output}}")
    text = PREAMBLE.format(markers=MARKERS)
    for stage in exp.stages:
        text += RULE.format(family=stage.family, markers=MARKERS, command=command.format(family=stage.family))
    return text


def parameters(exp: Export) -> dict:
    tasks: dict = {}
    for stage in exp.stages:
        tasks[stage.family] = {node.label: {"args": node.cli_args(),
                                            "requires": [f"{f}/{label}" for f, label in node.requires]}
                               for node in stage.nodes}
    return {"config": exp.config_file, "store": "store", "image": exp.image,
            "targets": [f"{top.family}/{node.label}" for top in final_stages(exp.stages) for node in top.nodes],
            "tasks": tasks}


def export(exp: Export) -> list:
    """Write the Snakefile and its config.yaml (see the module doc); return their paths."""
    snake, params = exp.outdir / "Snakefile", exp.outdir / "config.yaml"
    snake.parent.mkdir(parents=True, exist_ok=True)
    snake.write_text(header(exp, "Snakefile") + snakefile(exp))
    write_yaml(params, parameters(exp), header(exp, "Snakemake parameters"))
    return [snake, params]

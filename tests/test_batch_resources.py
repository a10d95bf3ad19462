"""Batch resources (``resources:``): located config errors, merging, and their rendering for
Slurm (sbatch options), HTCondor (submit descriptions parsed by HTCondor's own parser, law's
job files) and Dask on both (dask-jobqueue job scripts). No batch system runs here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from analysis.batch.dask_clusters import cluster_options, make_cluster
from analysis.batch.htcondor import check_submit, quote_arguments, render_submit, submit_commands
from analysis.batch.law_jobs import htcondor_job_config, slurm_job_config
from analysis.batch.resources import (TASK_FAMILIES, Resources, check_resources, family_resources, jdl_resources,
                                      parse_memory, parse_walltime, sbatch_options)
from analysis.config import ConfigError
from analysis.config.schema import MEMORY_PATTERN, WALLTIME_PATTERN
from analysis.config import read_config
from analysis.load import load_config
from conftest import ROOT

DEMO = ROOT / "configs" / "demo.yaml"
GPU_FIT = "resources:\n  default: {memory: 2GB, walltime: '30'}\n  Fit:\n    gpus: 1\n    memory: 4GB\n"


def config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(f"extends: {DEMO}\n{body}")
    return path


# ---- the config section ---------------------------------------------------------------------
BAD = {   # body, key, line (of the body), words of the message
    "memory": ("resources:\n  Skim:\n    cpus: 2\n    memory: 4 gigs\n", "resources.Skim.memory", 4,
               "'4 gigs' is not a memory size"),
    "memory_list": ("resources:\n  Skim: {memory: [4]}\n", "resources.Skim.memory", 2, "not a memory size"),
    "walltime": ("resources:\n  default:\n    walltime: '1:75:00'\n", "resources.default.walltime", 3,
                 "is not a walltime"),
    "walltime_unquoted": ("resources:\n  Fit:\n    walltime: 45:00\n", "resources.Fit.walltime", 3,
                          "2700 is not a walltime in quotes"),      # YAML 1.1: base 60, not 45 minutes
    "cpus": ("resources:\n  Fit:\n    cpus: 0\n", "resources.Fit.cpus", 3, "minimum of 1"),
    "gpus": ("resources:\n  Fit:\n    gpus: 1.5\n", "resources.Fit.gpus", 3, "not of type 'integer'"),
    "unknown_key": ("resources:\n  Fit:\n    gpu: 1\n", "resources.Fit.gpu", 3, "unknown key 'gpu'"),
    "family": ("resources:\n  default: {cpus: 1}\n  skim: {cpus: 2}\n", "resources.skim", 3,
               "is not a task family"),
    "partition": ("resources:\n  Fit: {partition: 'gpu\\nqueue'}\n", "resources.Fit.partition", 2,
                  "is not a partition name"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_resources_name_key_and_line(tmp_path, case):
    body, key, line, words = BAD[case]
    path = config(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.key, info.value.line, info.value.file) == (key, line + 1, str(path))
    assert words in str(info.value)


def test_family_resources_merge_default_under_family(tmp_path):
    cfg = load_config(config(tmp_path, GPU_FIT + "  Skim: {cpus: 4, partition: short}\n"))
    assert family_resources(cfg, "Fit") == Resources(cpus=1, memory_mb=4096, gpus=1, walltime_s=1800)
    assert family_resources(cfg, "Skim") == Resources(cpus=4, memory_mb=2048, walltime_s=1800, partition="short")
    assert family_resources(cfg, "Plot") == Resources(memory_mb=2048, walltime_s=1800)     # default only
    assert family_resources(load_config(DEMO), "Fit") == Resources()                         # no section
    assert family_resources(None, "Fit") == Resources()


def test_a_value_the_schema_lets_through_fails_located_at_load_and_use(tmp_path):
    path = config(tmp_path, "resources:\n  default: {cpus: 1}\n  Skim:\n    memory: 0GB\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)                   # load_config checks every entry before anything runs
    assert (info.value.key, info.value.line) == ("resources.Skim.memory", 5)
    cfg = read_config(path)                 # the schema alone lets it through
    with pytest.raises(ConfigError) as info:
        family_resources(cfg, "Skim")
    assert (info.value.key, info.value.line) == ("resources.Skim.memory", 5)
    family_resources(cfg, "Fit")            # the bad entry is Skim's only


def test_check_resources_refuses_an_unknown_family(tmp_path):
    path = config(tmp_path, "resources:\n  default: {cpus: 2}\n  Skimm: {cpus: 2}\n")
    with pytest.raises(ConfigError, match="unknown task family 'Skimm'") as info:
        load_config(path)                   # as law run loads it
    assert (info.value.key, info.value.line) == ("resources.Skimm", 4)
    with pytest.raises(ConfigError, match="unknown task family 'Skimm'"):
        check_resources(read_config(path))
    check_resources(load_config(config(tmp_path, GPU_FIT)))


def test_task_families_are_the_tasks():
    """TASK_FAMILIES (the library cannot import tasks/) names every task a user runs."""
    import tasks

    families = {getattr(tasks, name).get_task_family() for name in tasks.__all__ if name != "All"}   # All: a wrapper
    assert families <= set(TASK_FAMILIES), families - set(TASK_FAMILIES)


def test_resources_stay_out_of_the_content_keys(tmp_path, monkeypatch):
    from tasks import Fit, Skim

    monkeypatch.setenv("HEIRLOOM_STORE", str(tmp_path / "store"))
    path = config(tmp_path, GPU_FIT)
    assert Fit(config=str(path)).key() == Fit(config=str(DEMO)).key()
    skim = {"dataset": "ttbar", "chunk": 0}
    assert Skim(config=str(path), **skim).config_excerpt() == Skim(config=str(DEMO), **skim).config_excerpt()


# ---- units ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, mib", [("4GB", 4096), ("4G", 4096), ("4gib", 4096), ("2000MB", 2000),
                                       ("1.5GiB", 1536), (" 512 M ", 512), ("1T", 1048576), ("1536K", 2),
                                       (300, 300), ("300", 300)])
def test_parse_memory_is_binary_mib(text, mib):
    assert parse_memory(text) == mib
    assert isinstance(text, int) or re.search(MEMORY_PATTERN, text)      # the schema lets it in too


@pytest.mark.parametrize("text", ["4 gigs", "4B", "GB", "-1GB", "4GBB", "1e3MB", "4\nGB", ""])
def test_bad_memory_is_refused_by_parser_and_schema(text):
    with pytest.raises(ValueError):
        parse_memory(text)
    assert not re.search(MEMORY_PATTERN, text)


@pytest.mark.parametrize("value, seconds", [("01:00:00", 3600), ("1:30:05", 5405), ("45:00", 2700),
                                            ("90:30", 5430), (90, 5400), ("90", 5400), ("2-00:00:00", 172800),
                                            ("48:00:00", 172800)])
def test_parse_walltime(value, seconds):
    assert parse_walltime(value) == seconds
    assert isinstance(value, int) or re.search(WALLTIME_PATTERN, value)


@pytest.mark.parametrize("value", ["1h", "1:60:00", "10:61", "1-10", "", "01:00:00:00", "1:2:3"])
def test_bad_walltime_is_refused_by_parser_and_schema(value):
    with pytest.raises(ValueError):
        parse_walltime(value)
    assert not re.search(WALLTIME_PATTERN, value)


# ---- Slurm and HTCondor -------------------------------------------------------------------------
FULL = Resources(cpus=2, memory_mb=4096, gpus=1, walltime_s=93784, partition="gpu")


def test_sbatch_options():
    assert sbatch_options(FULL) == ["--cpus-per-task=2", "--mem=4096M", "--gres=gpu:1", "--time=1-02:03:04",
                                    "--partition=gpu"]
    assert sbatch_options(Resources(cpus=3)) == ["--cpus-per-task=3"]


def test_jdl_of_a_gpu_task_parses_with_htcondor(tmp_path):
    """resources: {Fit: {gpus: 1, memory: 4GB}} -> a submit description HTCondor reads."""
    res = family_resources(load_config(config(tmp_path, GPU_FIT)), "Fit")
    text = render_submit(res, "/usr/bin/env", ["law", "run", "Fit", "--config", "my analysis.yaml"],
                         environment={"HEIRLOOM_STORE": "/data/store"}, batch_name="Fit")
    sub = check_submit(text)
    assert sub["request_gpus"] == "1" and sub["request_memory"] == "4096" and sub["request_cpus"] == "1"
    assert sub["universe"] == "vanilla" and sub["getenv"] == "True"
    assert submit_commands(sub)["+MaxRuntime"] == "1800"
    assert sub["arguments"] == "\"law run Fit --config 'my analysis.yaml'\""
    assert sub["environment"] == '"HEIRLOOM_STORE=/data/store"'


def test_jdl_refuses_what_would_inject_a_command():
    with pytest.raises(ValueError, match="line break"):
        render_submit(Resources(), "/bin/true", ["a\nrequest_gpus = 8"])
    with pytest.raises(ValueError, match="not a ClassAd expression"):
        check_submit("executable = /bin/true\nrequest_cpus = 2 cores\nqueue\n")
    with pytest.raises(ValueError, match="no 'queue'"):
        check_submit("executable = /bin/true\n")
    assert quote_arguments(["it's", 'say "hi"']) == "\"'it''s' 'say \"\"hi\"\"'\""


def test_law_htcondor_job_file_carries_the_resources(tmp_path):
    """law's own JDL (HTCondorJobFileFactory) with htcondor_job_config's lines parses."""
    from law.contrib.htcondor import HTCondorJobFileFactory

    (tmp_path / "wrapper.sh").write_text("#!/bin/sh\n")
    factory = HTCondorJobFileFactory(dir=str(tmp_path / "jobs"), mkdtemp=False, cleanup=False)
    c = factory.get_config()
    c.custom_content = [("initialdir", str(tmp_path)), ("request_cpus", "8")]
    c = htcondor_job_config(c, FULL)
    job_file, _ = factory(executable=str(tmp_path / "wrapper.sh"), arguments=["a"], postfix="_0",
                          custom_content=c.custom_content)
    sub = check_submit(Path(job_file).read_text())
    assert (sub["request_cpus"], sub["request_gpus"], sub["request_memory"]) == ("2", "1", "4096")
    assert sub["accounting_group"] == "gpu" and submit_commands(sub)["+MaxRuntime"] == "93784"


def test_law_slurm_job_file_carries_the_resources(tmp_path):
    from law.contrib.slurm import SlurmJobFileFactory

    (tmp_path / "wrapper.sh").write_text("#!/bin/sh\n")
    factory = SlurmJobFileFactory(dir=str(tmp_path / "jobs"), mkdtemp=False, cleanup=False)
    c = factory.get_config()
    c.custom_content, c.partition = [], None
    c = slurm_job_config(c, FULL)
    job_file, _ = factory(executable=str(tmp_path / "wrapper.sh"), arguments=["a"], postfix="_0",
                          custom_content=c.custom_content, partition=c.partition)
    directives = [line for line in Path(job_file).read_text().splitlines() if line.startswith("#SBATCH")]
    for option in sbatch_options(FULL):
        assert f"#SBATCH {option}" in directives
    c.custom_content, c.partition = [], "long"          # law's --slurm-partition wins
    assert slurm_job_config(c, FULL).partition == "long"


def test_jdl_resources_keys():
    assert jdl_resources(FULL) == {"request_cpus": "2", "request_memory": "4096", "request_gpus": "1",
                                   "+MaxRuntime": "93784", "accounting_group": "gpu"}


# ---- Dask on a batch system --------------------------------------------------------------------
LOCAL = {"scheduler_options": {"host": "127.0.0.1", "dashboard_address": None}}
GPU = Resources(cpus=2, memory_mb=4096, gpus=1, walltime_s=3600, partition="gpu")


def test_htcondor_cluster_job_script_asks_for_the_resources():
    with make_cluster("htcondor", GPU, 0, **LOCAL) as cluster:
        script = cluster.job_script()
    sub = check_submit(script.split("\n", 1)[1])         # without the '#!/usr/bin/env condor_submit'
    assert sub["request_gpus"] == "1" and sub["accounting_group"] == "gpu"
    assert submit_commands(sub)["+DaskWorkerCores"] == "2"
    assert submit_commands(sub)["+DaskWorkerMemory"] == str(4096 * 1024 * 1024)
    assert submit_commands(sub)["+MaxRuntime"] == "3600"
    assert "--resources GPU=1" in sub["Arguments"] and "--nthreads 2" in sub["Arguments"]


def test_slurm_cluster_job_script_asks_for_the_resources():
    with make_cluster("slurm", GPU, 0, **LOCAL) as cluster:
        script = cluster.job_script()
    lines = script.splitlines()
    for line in ("#SBATCH --cpus-per-task=2", "#SBATCH --mem=4096M", "#SBATCH -t 01:00:00",
                 "#SBATCH -p gpu", "#SBATCH --gres=gpu:1"):
        assert line in lines
    assert "--resources GPU=1" in script and "--nthreads 2" in script


def test_cluster_options_without_gpus_or_memory():
    opts = cluster_options("slurm", Resources(cpus=3))
    assert opts["memory"] == "6144MiB" and opts["job_extra_directives"] == []
    assert "worker_extra_args" not in opts and "walltime" not in opts
    with pytest.raises(ValueError, match="unknown cluster kind"):
        cluster_options("pbs", Resources())
    with pytest.raises(ValueError, match="jobs"):
        make_cluster("slurm", Resources(), -1)

"""Reinterpreting a published likelihood (``likelihood:`` configs): the config kind, the
archive and its PatchSet, CLs over the executors, PublishedLikelihood -> CLsScan ->
ExclusionPlot, and the ATLAS sbottom regression value.

The reference (../shared/docs/REFERENCES.md, section 3; pyhf's own regression test):
Region A, point 1300_205_60, qtilde, mu = 1: observed CLs = 0.24443628, expected band
0.0902, 0.1938, 0.3843, 0.6558, 0.8910. A toy archive made here covers the rest on
machines without ../shared/data.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import tarfile
from pathlib import Path

import pyhf
import pytest

from analysis.likelihood import cls_scan
from analysis.config import ConfigError
from analysis.load import load_config
from analysis.likelihood.published import check_archive, read_likelihood
from conftest import ROOT, VENV_BIN, law_run, requires_shared, runs

ARCHIVE = ROOT.parent / "shared" / "data" / "likelihoods" / "pyhf-ins1748602-probability-models.tar.gz"
REFERENCE_POINT = "sbottom_1300_205_60"
REFERENCE_OBSERVED = 0.24443628
REFERENCE_EXPECTED = [0.0902, 0.1938, 0.3843, 0.6558, 0.8910]
SMALL_SUBSET = [REFERENCE_POINT, "sbottom_600_300_60", "sbottom_1000_850_60"]

# ---- a toy published likelihood: 2 bins, a 3 x 3 grid of signal points ----------------------
TOY_POINTS = [(a, b) for a in (100, 200, 300) for b in (10, 50, 90)]
TOY_BACKGROUND = {
    "channels": [{"name": "SR", "samples": [{"name": "background", "data": [50.0, 30.0], "modifiers": [
        {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}}]}]}],
    "observations": [{"name": "SR", "data": [52.0, 28.0]}],
    "measurements": [{"name": "meas", "config": {"poi": "mu_SIG", "parameters": []}}],
    "version": "1.0.0",
}


def toy_patch(a: int, b: int) -> list:
    """The signal of point (a, b) added to the channel: large at small a and b."""
    yield_ = 60.0 * math.exp(-(a - 100) / 100) * (1 - b / 200)
    return [{"op": "add", "path": "/channels/0/samples/0", "value": {
        "name": "signal", "data": [0.6 * yield_, 0.4 * yield_],
        "modifiers": [{"name": "mu_SIG", "type": "normfactor", "data": None}]}}]


def toy_archive(path: Path, members: dict | None = None) -> Path:
    """A tar.gz like HEPData's: ``SignalRegion/BkgOnly.json`` + one patch file per point."""
    if members is None:
        members = {"SignalRegion/BkgOnly.json": TOY_BACKGROUND}
        members.update({f"SignalRegion/patch.toy_{a}_{b}.json": toy_patch(a, b) for a, b in TOY_POINTS})
    with tarfile.open(path, "w:gz") as archive:
        for name, content in {"README.md": "toy", **members}.items():
            data = (content if isinstance(content, str) else json.dumps(content)).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


TOY_CONFIG = """
name: {name}
likelihood:
  archive: toy.tar.gz
  region: SignalRegion
  labels: [m_a, m_b]
  hepdata: ins0000001
  plot: {{x: m_a, y: m_b}}
"""


def toy_config(folder: Path, extra: str = "", name: str = "toy_reinterpretation", archive=True) -> Path:
    if archive:
        toy_archive(folder / "toy.tar.gz")
    path = folder / f"{name}.yaml"
    path.write_text(TOY_CONFIG.format(name=name) + extra)
    return path


def config_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return err.value


# ---- the config kind ----------------------------------------------------------------------------
def test_likelihood_config_needs_no_datasets_and_loads_without_the_archive(tmp_path):
    cfg = load_config(toy_config(tmp_path, archive=False))
    assert cfg.datasets == {} and cfg.regions == {}
    assert load_config(ROOT / "configs" / "sbottom_regionA.yaml").section("likelihood", "region") == "RegionA"
    assert load_config(ROOT / "configs" / "sbottom_regionB.yaml").section("likelihood", "region") == "RegionB"


@pytest.mark.parametrize("extra, key, message", [
    ("datasets: {data: {kind: data, files: [x.root]}}\n", "datasets", "either an event analysis or a published"),
    ("  labelz: [m]\n", "likelihood.labelz", "unknown key 'labelz'"),
    ("  test_statistic: q0\n", "likelihood.test_statistic", "is not one of"),
    ("  points: []\n", "likelihood.points", ""),
])
def test_likelihood_config_errors_are_located(tmp_path, extra, key, message):
    path = toy_config(tmp_path, archive=False)
    text = path.read_text()
    path.write_text(text + extra if extra.startswith(" ") else extra + text)
    err = config_error(path)
    assert err.key == key and message in err.message and err.line is not None


def test_plot_axes_must_be_labels_and_the_record_must_be_known(tmp_path):
    path = toy_config(tmp_path, archive=False)
    path.write_text(path.read_text().replace("y: m_b", "y: m_c"))
    assert "unknown label 'm_c'" in config_error(path).message
    path.write_text(path.read_text().replace("  hepdata: ins0000001\n", "").replace("y: m_c", "y: m_b"))
    assert "HEPData record" in config_error(path).message


def test_a_config_of_neither_kind_says_what_it_needs(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("name: nothing\n")
    assert "'datasets' and 'regions'" in config_error(path).message and "'likelihood'" in config_error(path).message


# ---- the archive ----------------------------------------------------------------------------------
def test_archive_becomes_a_verified_patchset(tmp_path):
    likelihood = read_likelihood(load_config(toy_config(tmp_path)))
    patchset = pyhf.PatchSet(likelihood.patchset)
    patchset.verify(likelihood.background_only)
    assert patchset.labels == ["m_a", "m_b"] and len(patchset) == len(TOY_POINTS)
    assert list(patchset["toy_200_50"].values) == [200, 50]
    assert patchset.references == {"hepdata": "ins0000001"}


def test_a_patchset_member_is_read_as_it_is(tmp_path):
    plain = read_likelihood(load_config(toy_config(tmp_path))).patchset
    folder = tmp_path / "ps"
    folder.mkdir()
    toy_archive(folder / "toy.tar.gz", {"SignalRegion/BkgOnly.json": TOY_BACKGROUND,
                                        "SignalRegion/patchset.json": plain})
    config = toy_config(folder, "  patches: patchset.json\n", archive=False)
    assert read_likelihood(load_config(config)).patchset["patches"] == plain["patches"]


@pytest.mark.parametrize("extra, key, needle", [
    ("  background_only: Missing.json\n", "likelihood.background_only", "SignalRegion/Missing.json"),
    ("  patches: signal.*.json\n", "likelihood.patches", "SignalRegion/signal.*.json"),
    ("  points: [toy_100_*, toy_999_*]\n", "likelihood.points", "'toy_999_*' matches no point"),
])
def test_archive_members_are_checked_before_anything_runs(tmp_path, extra, key, needle):
    cfg = load_config(toy_config(tmp_path, extra))
    with pytest.raises(ConfigError) as err:
        check_archive(cfg)
    assert err.value.key == key and needle in err.value.message


# ---- CLs ------------------------------------------------------------------------------------------
def test_executors_give_the_same_cls(tmp_path):
    likelihood = read_likelihood(load_config(toy_config(tmp_path)))
    patches, labels = likelihood.patchset["patches"], ["m_a", "m_b"]
    lines = []
    iterative = cls_scan.scan(likelihood.background_only, patches, cls_scan.ScanSettings(), labels, report=lines.append)
    futures = cls_scan.scan(likelihood.background_only, patches, cls_scan.ScanSettings(), labels,
                            executor="futures", workers=2, report=lambda line: None)
    assert [p.name for p in futures] == [p.name for p in iterative]
    for a, b in zip(iterative, futures):
        assert b.cls_obs == pytest.approx(a.cls_obs, abs=1e-9) and b.cls_exp == pytest.approx(a.cls_exp, abs=1e-9)
    assert lines[-1].startswith(f"CLsScan: {len(patches)}/{len(patches)} points (100 %)")
    excluded = {p.name for p in iterative if p.excluded}
    assert "toy_100_10" in excluded and "toy_300_90" not in excluded


def test_chain_on_a_toy_archive(tmp_path):
    store, config = tmp_path / "store", toy_config(tmp_path)
    law_run("ExclusionPlot", config, store)
    plot = (store / "by-name" / "toy_reinterpretation" / "ExclusionPlot" / "all").resolve()
    assert {"exclusion.png", "cls_table.md", "cls_table.csv", "provenance.json"} <= {p.name for p in plot.iterdir()}
    scan = (store / "by-name" / "toy_reinterpretation" / "CLsScan" / "all").resolve()
    table = json.loads((scan / "cls.json").read_text())
    assert table["labels"] == ["m_a", "m_b"] and len(table["points"]) == len(TOY_POINTS)
    assert all(row["excluded"] == (row["cls_obs"] < 0.05) and len(row["cls_exp"]) == 5 for row in table["points"])
    assert "toy_300_90" in (plot / "cls_table.md").read_text()
    shown = subprocess.run([str(VENV_BIN / "heirloom"), "show", "--config", str(config)],
                           cwd=ROOT, env=dict(os.environ, HEIRLOOM_STORE=str(store)),
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert str(scan / "cls.json") in shown.stdout and "exclusion.png" in shown.stdout
    assert f"{len(TOY_POINTS)} points" in shown.stdout


def test_bad_archive_path_is_a_config_error(tmp_path):
    config = toy_config(tmp_path, archive=False)
    proc = law_run("ExclusionPlot", config, tmp_path / "store", check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "config error" in proc.stderr and "key 'likelihood.archive'" in proc.stderr
    assert "toy.tar.gz" in proc.stderr
    assert not runs(tmp_path / "store")


# ---- ATLAS sbottom multi-b (HEPData ins1748602) -----------------------------------------------------
def _keys(store: Path, name: str) -> dict:
    return {task: (store / "by-name" / name / task / "all").resolve().name for task in ("PublishedLikelihood", "CLsScan")}


@requires_shared("likelihoods", ARCHIVE.name)
def test_sbottom_reference_point_and_dask_equals_iterative(tmp_path):
    config = tmp_path / "sbottom_subset.yaml"
    config.write_text(f"extends: {ROOT / 'configs' / 'sbottom_regionA.yaml'}\nname: sbottom_subset\n"
                      f"likelihood:\n  points: {json.dumps(SMALL_SUBSET)}\n")
    iterative_store, dask_store = tmp_path / "iterative", tmp_path / "dask"
    law_run("ExclusionPlot", config, iterative_store)
    law_run("CLsScan", config, dask_store, "--executor", "dask", "--workers", "2")

    tables = [json.loads((store / "by-name" / "sbottom_subset" / "CLsScan" / "all" / "cls.json").read_text())
              for store in (iterative_store, dask_store)]
    rows = [{row["name"]: row for row in table["points"]} for table in tables]
    reference = rows[0][REFERENCE_POINT]
    assert (reference["m_sbottom"], reference["m_neutralino2"], reference["m_neutralino1"]) == (1300, 205, 60)
    assert reference["cls_obs"] == pytest.approx(REFERENCE_OBSERVED, rel=1e-5)
    assert reference["cls_exp"] == pytest.approx(REFERENCE_EXPECTED, abs=1e-3)
    assert not reference["excluded"]
    assert sorted(rows[1]) == sorted(rows[0]) == sorted(SMALL_SUBSET)
    for name, row in rows[0].items():
        assert rows[1][name]["cls_obs"] == pytest.approx(row["cls_obs"], abs=1e-6, rel=0)
        assert rows[1][name]["cls_exp"] == pytest.approx(row["cls_exp"], abs=1e-6, rel=0)
        assert rows[1][name]["excluded"] == row["excluded"]
    assert _keys(iterative_store, "sbottom_subset") == _keys(dask_store, "sbottom_subset")   # executor: no key
    plot = (iterative_store / "by-name" / "sbottom_subset" / "ExclusionPlot" / "all").resolve()
    assert (plot / "exclusion.png").stat().st_size > 10_000 and REFERENCE_POINT in (plot / "cls_table.csv").read_text()
    provenance = json.loads((dask_store / "by-name" / "sbottom_subset" / "CLsScan" / "all" / "provenance.json")
                            .read_text())
    assert {k: provenance["executor"][k] for k in ("name", "workers", "scheduler", "cluster")} == \
        {"name": "dask", "workers": 2, "scheduler": None, "cluster": "local"}

"""Read-only upstream stores (``HEIRLOOM_STORE_UPSTREAM``): a complete object found there
is used where it is; what is missing is computed into the store itself; the upstream
store is never written; a damaged upstream object is named in one line, never used."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import law_run, runs, small_demo, write_config


def snapshot(store: Path) -> dict:
    return {str(p.relative_to(store)): (p.stat().st_size, p.stat().st_mtime_ns) for p in store.rglob("*")}


def test_upstream_objects_are_reused_in_place_and_never_written(tmp_path, monkeypatch):
    config = small_demo(tmp_path)
    upstream, mine = tmp_path / "group-store", tmp_path / "my-store"
    law_run("Histograms", config, upstream)
    before = snapshot(upstream)
    os.chmod(upstream, 0o555)                            # as a colleague's store would be
    monkeypatch.setenv("HEIRLOOM_STORE_UPSTREAM", f"{tmp_path / 'missing'}{os.pathsep}{upstream}")
    try:
        law_run("Histograms", config, mine)
        assert runs(mine) == []                          # everything found upstream
        law_run("Fit", config, mine)                     # only what is missing runs, into my store
        assert [r["task"] for r in runs(mine)] == ["Fit"]
        cut = write_config(tmp_path, "cut.yaml", f"extends: {config.name}\nobjects:\n"
                           "  jets: {from: Jet, where: \"(Jet.pt > 40) & (abs(Jet.eta) < 2.4)\"}\n")
        law_run("Histograms", cut, mine)                 # a changed cut: the chain below it, in my store
        ran = {r["task"] for r in runs(mine)}
        assert {"Select", "Histogram", "Histograms"} <= ran and "Generate" not in ran
    finally:
        os.chmod(upstream, 0o755)
    assert snapshot(upstream) == before


def test_a_damaged_upstream_object_is_named_not_used(tmp_path, monkeypatch):
    config = small_demo(tmp_path)
    upstream, mine = tmp_path / "group-store", tmp_path / "my-store"
    law_run("Histograms", config, upstream)
    [histograms] = (upstream / "objects" / "Histograms").glob("*/*")
    data = next(p for p in histograms.iterdir() if p.name != "provenance.json")
    data.write_bytes(b"x" * data.stat().st_size)        # same size: only a rehash sees it
    monkeypatch.setenv("HEIRLOOM_STORE_UPSTREAM", str(upstream))
    proc = law_run("Fit", config, mine, check=False)
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    assert f"read-only store {upstream}" in message and "damaged" in message
    assert not (mine / "objects" / "Fit").exists()

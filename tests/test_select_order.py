"""Select's output does not depend on where its input files are: chunks are merged in the
order of the list of files (a Skim's place in its dataset), not in the order of their
paths, which hold store keys that change with the code. Sums in another order would
differ in their last bits, so a code change would otherwise change histograms."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq

from conftest import ROOT


def _selected(files, tmp_path, name):
    from coffea import processor

    from analysis.load import load_config
    from analysis.select.processor import Source, run_selection
    from analysis.select.selection import plan_from_config
    from analysis.select.tables import write_selected

    plan = plan_from_config(load_config(ROOT / "configs" / "demo.yaml"), "ttbar")
    out = run_selection([f if isinstance(f, Source) else str(f) for f in files], plan, processor.IterativeExecutor(status=False), chunksize=3000)
    write_selected(out["chunks"], plan, tmp_path / f"{name}.parquet")
    return pq.read_table(tmp_path / f"{name}.parquet").to_pandas()       # equals(): NaN where NaN, values exact


def test_the_merged_table_follows_the_list_of_files_not_their_paths(tmp_path):
    from analysis.io.generate import generate_file

    first, second = tmp_path / "first.root", tmp_path / "second.root"
    generate_file(first, "ttbar", 5_000, seed=11)
    generate_file(second, "ttbar", 5_000, seed=12)
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    ordered = [shutil.copy(first, here / "a.root"), shutil.copy(second, here / "z.root")]     # paths in list order
    reversed_paths = [shutil.copy(first, there / "z.root"), shutil.copy(second, there / "a.root")]
    one, other = _selected(ordered, tmp_path, "one"), _selected(reversed_paths, tmp_path, "other")
    assert len(one) > 100
    assert one.equals(other)
    swapped = _selected(ordered[::-1], tmp_path, "swapped")       # the list's order does decide it
    assert len(swapped) == len(one) and not swapped.equals(one)


def test_skims_that_say_their_entries_are_not_opened_to_plan_the_chunks(tmp_path, monkeypatch):
    """Select gives each skim's entries (from the Skim's stats): coffea plans the same chunks
    without opening the files, and the table is the same as when coffea asks the files."""
    import uproot

    from analysis.io.generate import generate_file
    from analysis.select.processor import Source

    files = [tmp_path / "a.root", tmp_path / "b.root"]
    generate_file(files[0], "ttbar", 7_000, seed=21)
    generate_file(files[1], "ttbar", 4_000, seed=22)
    asked = _selected(files, tmp_path, "asked")
    opened: list = []
    real_open = uproot.open
    monkeypatch.setattr(uproot, "open", lambda path, *a, **k: opened.append(path) or real_open(path, *a, **k))
    told = _selected([Source(str(files[0]), entries=7_000), Source(str(files[1]), entries=4_000)], tmp_path, "told")
    assert len(asked) > 100 and told.equals(asked)
    # coffea opens a file once per chunk to read it, never to plan: chunks of about 3,000
    # entries (its rule: round(entries / 3000) of them), 2 of 3,500 and 1 of 4,000
    assert len(opened) == 3

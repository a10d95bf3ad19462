"""docs/tutorial.md cannot drift: every command it gives is run, in a copy of the checkout
with a store of its own, as a reader who has just cloned runs it, and every output it
quotes (fit results, cutflows, file lists, what `heirloom why` says, what reran) must be
what the run printed (tests/doc_runner.py says how quoted output is compared)."""

from pathlib import Path

from conftest import ROOT, SHARED
from doc_runner import copy_checkout, parse, reader_env, run

DOC = "docs/tutorial.md"


def test_every_command_of_the_tutorial_runs_and_prints_what_it_quotes(tmp_path):
    steps = parse((ROOT / DOC).read_text())
    assert sum(s.kind == "run" for s in steps) >= 15 and any(s.kind == "write" for s in steps)
    checkout = copy_checkout(ROOT, tmp_path / "heirloom")
    env = reader_env(tmp_path / "home")
    failures, skipped = run(steps, checkout, env, doc=DOC, shared_data=Path(SHARED).exists(),
                            substitute={"/tmp/": f"{tmp_path}/tmp-"})
    assert not failures, "\n\n".join(failures)
    assert not skipped
    assert (checkout / "store" / "by-name" / "agc_demo" / "Plot" / "all").is_dir()

"""README.md cannot drift: every command it presents as runnable is run, in a copy of the
checkout, as a reader who has just cloned runs it, and the numbers and files it quotes
must be what the run printed (tests/doc_runner.py says how output is compared).

The AGC analysis that `./setup.sh demo` runs is computed into the suite's shared AGC store
(``agc_store``), which other tests fill with the same keys: the README's commands then
spend their time on what only they run. The store is what the README's
``HEIRLOOM_STORE`` points at, which the README documents."""

from pathlib import Path

from conftest import ROOT, SHARED
from doc_runner import copy_checkout, parse, reader_env, run

DOC = "README.md"


def test_every_command_of_the_readme_runs_and_prints_what_it_quotes(tmp_path, agc_store):
    steps = parse((ROOT / DOC).read_text())
    commands = [s.text for s in steps if s.kind == "run"]
    assert any(c.startswith("./setup.sh demo") for c in commands)
    assert not any(c.startswith("./setup.sh test") for c in commands)
    assert any(s.kind == "same" for s in steps)
    checkout = copy_checkout(ROOT, tmp_path / "heirloom")
    (tmp_path / "shared").symlink_to(ROOT.parent / "shared")   # configs name ../../shared/data
    env = dict(reader_env(tmp_path / "home"), HEIRLOOM_STORE=str(agc_store))
    failures, skipped = run(steps, checkout, env, doc=DOC, shared_data=Path(SHARED).exists())
    assert not failures, "\n\n".join(failures)
    if skipped:
        print("not run without ../shared/data:", *skipped, sep="\n  ")
    assert (checkout / "workflows" / "yadage" / "agc_ttbar").is_dir()

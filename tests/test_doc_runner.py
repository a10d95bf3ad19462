"""The doc test's reader (tests/doc_runner.py): what it runs, and what it accepts as the
quoted output. A reader that accepted anything would make the doc tests pass on drift."""

from doc_runner import mismatch, parse, run

DOC = '''\
<!-- doc-test: not run: needs a network -->
```sh
git clone <url> x
```

<!-- doc-test: skip ./setup.sh test -- the suite -->
```sh
./setup.sh test        # the suite
echo one   # a comment, not output
# one
    # an indented comment
```

<!-- doc-test: write notes/a.txt -->
```text
alpha
```

<!-- doc-test: append notes/a.txt -->
```text
beta
```

```sh
cat notes/a.txt
```

```
alpha
beta
```

<!-- doc-test: needs shared data -->
```sh
python -c "
print(2)
"
```
'''


def test_the_reader_follows_markers_comments_and_multi_line_commands():
    steps = parse(DOC)
    assert [(s.kind, s.text.split()[0] if s.kind == "run" else s.path) for s in steps] == [
        ("run", "echo"), ("write", "notes/a.txt"), ("append", "notes/a.txt"), ("run", "cat"), ("run", "python")]
    assert steps[0].expected == ("one",)
    assert steps[3].expected == ("alpha", "beta")
    assert steps[4].condition == "needs shared data" and steps[4].text.count("\n") == 2


def test_a_run_writes_files_and_fails_on_drifted_output(tmp_path):
    steps = parse(DOC)
    failures, skipped = run(steps, tmp_path, {"PATH": "/usr/bin:/bin"}, doc="D.md", shared_data=False)
    assert failures == [] and len(skipped) == 1 and skipped[0].startswith("D.md:")
    assert (tmp_path / "notes" / "a.txt").read_text() == "alpha\nbeta\n"
    drifted = parse(DOC.replace("# one", "# two"))
    failures, _ = run(drifted, tmp_path, {"PATH": "/usr/bin:/bin"}, doc="D.md", shared_data=False)
    assert len(failures) == 1 and failures[0].startswith("D.md:9:") and "'two'" in failures[0]


def test_numbers_must_match_while_times_keys_and_dates_may_differ():
    printed = "2026-12-02T01:00:09.843+00:00  Fit  all  450042676f01  2.7 s\nttbar_norm = 1.0311 +- 0.0986\n"
    assert mismatch(("2026-11-23T19:58:23.534+00:00  Fit  all  0abfc7c7440a  5.0 s",), printed, "x") is None
    assert mismatch(("ttbar_norm = 1.0312 +- 0.0986",), printed, "x") is not None
    assert mismatch(("ttbar_norm = …",), printed, "x") is None


def test_quoted_lines_between_ellipses_must_be_printed_together_and_in_order():
    printed = "a\nb\nc\nd\n"
    assert mismatch(("a", "b", "...", "d"), printed, "x") is None
    assert mismatch(("a", "c"), printed, "x") is not None           # not together
    assert mismatch(("c", "...", "a"), printed, "x") is not None    # not in order
    assert mismatch(("d", "b", "c", "a"), printed, "x", any_order=True) is None
    assert mismatch(("d", "b", "c"), printed, "x", any_order=True) == "printed but not quoted: 'a'"


def test_a_quoted_ls_must_name_exactly_the_files_listed():
    assert mismatch(("b.png  a.png",), "a.png\nb.png\n", "ls out/") is None
    assert "ls lists" in mismatch(("a.png",), "a.png\nb.png\n", "ls out/")

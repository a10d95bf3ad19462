"""The report page: one ``index.html`` and the files it shows, copied into ``assets/``.

The page opens from disk: no script, no server, nothing fetched from elsewhere (its
Content-Security-Policy forbids scripts and any source but its own folder). Every link
is relative and leads to a copied file or to an anchor of the page.

>>> from analysis.report.model import COMPLETE, Report, TaskEntry
>>> obj = outdir / "object"; obj.mkdir()
>>> _ = (obj / "cutflow.md").write_text("| step | <b>x</b> |\\n|---|---|\\n| all | 5 |\\n")
>>> task = TaskEntry("Plot", "all", COMPLETE, "ab" * 20, folder=obj, files=("cutflow.md",))
>>> index = write_report(Report("demo", "configs/demo.yaml", "store", "now", (task,)), outdir / "report")
>>> sorted(p.name for p in index.parent.rglob("*") if p.is_file())
['.heirloom-report', 'Plot-all-cutflow.md', 'index.html']
>>> text = index.read_text(); "&lt;b&gt;x&lt;/b&gt;" in text, "<script" in text
(True, False)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from analysis.errors import HeirloomError
from analysis.report import content, graph, provenance
from analysis.report.html import Html, Names, fields, join, link, slug, tag, void
from analysis.report.model import NOT_RUN, Report, TaskEntry

MARKER = ".heirloom-report"
SECTIONS = (("results", "Results"), ("plots", "Plots"), ("tables", "Tables"), ("tasks", "Task graph"),
            ("provenance", "Provenance"))
POLICY = "default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
STYLE = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 1em 3em;color:#222}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #ccc;padding:.5em 0}
nav a{margin-right:1.2em}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
table.data{display:block;overflow-x:auto;max-width:100%}
table.data td{font-variant-numeric:tabular-nums}
table.fields th{background:#f4f4f4;font-weight:normal;white-space:nowrap}
.status{padding:0 .4em;border-radius:3px}
.complete{background:#d4edda}.not-run{background:#e9ecef}.damaged{background:#f8d7da}
svg{max-width:100%;height:auto}
figure{display:inline-block;margin:.5em;vertical-align:top;max-width:560px}
figure img{max-width:100%;border:1px solid #ddd}
pre{background:#f7f7f7;padding:.5em;overflow:auto;max-height:30em}
.note{color:#666}.headline{font-size:1.2em}
section.task{border-top:1px solid #ddd;margin-top:1em}
[id]{scroll-margin-top:3em}
"""


class Assets:
    """Copies of the files the page shows, under ``assets/`` with unique plain names."""

    def __init__(self, root: Path) -> None:
        self.root, self.names = root, Names()
        self.copied: dict[Path, str] = {}

    def add(self, task: TaskEntry, name: str) -> str:
        """Copy ``name`` of ``task`` once; return its link relative to ``index.html``."""
        assert task.folder is not None
        source = task.folder / name
        if source not in self.copied:
            stem, dot, suffix = name.rpartition(".")
            target = self.names.new(task.family, task.label, stem, suffix="." + slug(suffix)) if dot else \
                self.names.new(task.family, task.label, name)
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, self.root / target)
            self.copied[source] = f"{self.root.name}/{target}"
        return link(self.copied[source])


def write_report(report: Report, outdir: Path) -> Path:
    """Write ``index.html`` (and ``assets/``) into ``outdir``: an empty or new folder, or one
    that holds an earlier report (which is replaced). Returns the path of ``index.html``."""
    outdir = _prepare(outdir)
    names = Names()
    ids = {task.ident: names.new("task", task.family, task.label) for task in report.tasks}
    family_ids = {family: names.new("family", family) for family in report.family_order()}
    by_key = {(task.family, task.key): ids[task.ident] for task in report.tasks if task.key}
    assets = Assets(outdir / "assets")
    body = [_header(report), tag("nav", join(tag("a", title, href=f"#{anchor}") for anchor, title in SECTIONS)),
            _section("results", _results(report, ids)), _section("plots", _plots(report, ids, assets)),
            _section("tables", _tables(report, ids, assets)),
            _section("tasks", join([graph.family_graph(report, family_ids),
                                    graph.family_tables(report, ids, family_ids)])),
            _section("provenance", join(provenance.task_details(task, ids[task.ident], by_key)
                                        for task in report.tasks))]
    index = outdir / "index.html"
    index.write_text(_page(f"{report.analysis}: Heirloom report", join(body)), encoding="utf-8")
    return index


def _prepare(outdir: Path) -> Path:
    """The output folder, emptied of an earlier report; never a folder of other files."""
    if outdir.exists() and not outdir.is_dir():
        raise HeirloomError(f"report folder {outdir} is a file")
    if outdir.is_dir() and any(outdir.iterdir()):
        if not (outdir / MARKER).is_file():
            raise HeirloomError(f"report folder {outdir} holds other files: give an empty or new folder "
                                "(a folder with an earlier report is replaced)")
        for name in ("index.html", "assets"):
            path = outdir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / MARKER).write_text("written by `heirloom report`: this folder is replaced by the next report\n")
    return outdir


def _page(title: str, body: Html) -> str:
    head = join([void("meta", charset="utf-8"), void("meta", http_equiv="Content-Security-Policy", content=POLICY),
                 void("meta", name="viewport", content="width=device-width, initial-scale=1"),
                 void("meta", name="generator", content="heirloom report"), tag("title", title),
                 tag("style", Html(STYLE))])
    return "<!DOCTYPE html>\n" + tag("html", join([tag("head", head), tag("body", body)]), lang="en") + "\n"


def _header(report: Report) -> Html:
    counts = report.counts()
    summary = f"{len(report.tasks)} tasks: " + ", ".join(f"{n} {status}" for status, n in counts.items())
    rows = [("description", report.description)] if report.description else []
    rows += [("config", report.config), ("store", report.store), ("written", report.created), ("tasks", summary)]
    notes = join(tag("p", note, class_="note") for note in report.notes)
    return join([tag("h1", f"Heirloom report: {report.analysis}"), fields(rows), notes])


def _section(anchor: str, body: Html) -> Html:
    title = dict(SECTIONS)[anchor]
    return tag("section", join([tag("h2", title), body]), id=anchor)


def _files(report: Report, suffixes: tuple[str, ...]) -> list[tuple[TaskEntry, str]]:
    return [(task, name) for task in report.tasks for name in task.files if name.lower().endswith(suffixes)]


def _read(task: TaskEntry, name: str) -> str:
    assert task.folder is not None
    return (task.folder / name).read_text(encoding="utf-8", errors="replace")


def _origin(task: TaskEntry, name: str, ids: dict) -> Html:
    return join([name, " from ", tag("a", task.title, href=f"#{ids[task.ident]}")])


def _results(report: Report, ids: dict) -> Html:
    parts = []
    for task, name in _files(report, (".json",)):
        try:
            data = json.loads(_read(task, name))
        except ValueError:
            continue
        if content.is_result(data):
            parts += [tag("h3", _origin(task, name, ids)), content.result(data)]
    return join(parts) if parts else _nothing(report, "no fit or limit results yet")


def _plots(report: Report, ids: dict, assets: Assets) -> Html:
    figures = []
    for task, name in _files(report, (".png", ".svg")):
        target = assets.add(task, name)
        figures.append(tag("figure", join([tag("a", void("img", src=target, alt=name, loading="eager"), href=target),
                                           tag("figcaption", _origin(task, name, ids))])))
    return join(figures) if figures else _nothing(report, "no plots yet")


def _tables(report: Report, ids: dict, assets: Assets) -> Html:
    parts = []
    for task in report.tasks:
        for stem, group in content.files_by_stem(task.files).items():
            shown = next((n for n in group if n.lower().endswith(".md")), None) or next(
                (n for n in group if n.lower().endswith(".csv")), None)
            links = join([tag("a", name, href=assets.add(task, name)) for name in group], " · ")
            parts += [tag("h3", _origin(task, stem, ids)), tag("p", join(["files: ", links]), class_="note")]
            if shown is not None:
                text = _read(task, shown)
                parts.append(content.markdown(text) if shown.lower().endswith(".md") else content.csv_table(text))
    return join(parts) if parts else _nothing(report, "no tables yet")


def _nothing(report: Report, what: str) -> Html:
    waiting = sum(task.status == NOT_RUN for task in report.tasks)
    hint = f" ({waiting} tasks have not run: `law run` them with --config {report.config})" if waiting else ""
    return tag("p", what + hint, class_="note")

"""``heirloom report`` in a real headless browser (Debian's chromium, driven by Selenium
through Debian's chromedriver): the page opens from disk without console errors, every
image loads, every link leads to a file next to the page or to an anchor of it, and text
from a config or a provenance record is shown as text, never run as markup."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from conftest import ROOT, VENV_BIN, law_run, write_config

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'


@dataclass
class Page:
    """What the browser saw of a report."""

    logs: list
    images: list           # [src, complete, naturalWidth]
    refs: list             # every href and src attribute, as written
    ids: set
    scripts: int
    nested_shapes: int     # SVG shapes with content: an unclosed <rect> swallows what follows
    pwned: object
    text: str


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail("chromium and chromedriver are not installed: ./setup.sh test installs them "
                    "(apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-extensions", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver, index: Path) -> Page:
    """Load ``index`` from disk and wait until it and its images have loaded."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")                       # drop what an earlier page logged
    driver.get(index.resolve().as_uri())
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"))
    return Page(
        logs=driver.get_log("browser"),
        images=driver.execute_script(
            "return Array.from(document.images, i => [i.getAttribute('src'), i.complete, i.naturalWidth])"),
        refs=driver.execute_script("return Array.from(document.querySelectorAll('[href], [src]'), "
                                   "e => e.getAttribute('href') ?? e.getAttribute('src'))"),
        ids=set(driver.execute_script("return Array.from(document.querySelectorAll('[id]'), e => e.id)")),
        scripts=driver.execute_script("return document.scripts.length"),
        nested_shapes=driver.execute_script("return document.querySelectorAll('svg rect *, svg line *').length"),
        pwned=driver.execute_script("return window.pwned === undefined ? null : window.pwned"),
        text=driver.find_element(By.TAG_NAME, "body").get_attribute("textContent"))


def check_page(page: Page, index: Path, *, images: bool = True) -> None:
    """No console errors, every image loaded, every link local and resolving, no script."""
    errors = [entry for entry in page.logs if entry.get("level") == "SEVERE"]
    assert not errors, f"console errors: {errors}"
    assert page.scripts == 0 and page.pwned is None
    assert page.nested_shapes == 0, "the task graph's SVG is malformed"
    if images:
        assert page.images, "the page shows no image"
    broken = [src for src, complete, width in page.images if not (complete and width > 0)]
    assert not broken, f"images that did not load: {broken}"
    folder = index.parent.resolve()
    for ref in page.refs:
        parts = urlsplit(ref)
        assert not parts.scheme and not parts.netloc, f"not a link to the report's own files: {ref!r}"
        if not parts.path:
            assert unquote(parts.fragment) in page.ids, f"link to a missing anchor: {ref!r}"
            continue
        target = (folder / unquote(parts.path)).resolve()
        assert target.is_file() and target.is_relative_to(folder), f"link to a missing file: {ref!r}"
        if parts.fragment:
            assert target == index.resolve() and unquote(parts.fragment) in page.ids, ref


def heirloom_report(config: Path, store: Path, out: Path) -> tuple[Path, str]:
    """``heirloom report --config C --out DIR`` with its own store: (index.html, stderr)."""
    env = dict(os.environ, HEIRLOOM_STORE=str(store), PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    proc = subprocess.run([str(VENV_BIN / "heirloom"), "report", "--config", str(config), "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    index = Path(proc.stdout.strip().splitlines()[-1])
    assert index == out / "index.html" and index.is_file()
    return index, proc.stderr


def gathered(store: Path, config: Path, monkeypatch) -> dict:
    """{(family, label): TaskEntry} as the report gathers them (in this process)."""
    from tasks.report import gather

    monkeypatch.setenv("HEIRLOOM_STORE", str(store))
    return {task.ident: task for task in gather(str(config)).tasks}


def statuses(store: Path, config: Path, monkeypatch) -> dict:
    """{(family, label): status} as the report gathers them (in this process)."""
    return {ident: task.status for ident, task in gathered(store, config, monkeypatch).items()}


def write_png(path: Path) -> None:
    """A valid 1 x 1 PNG (a browser must decode it: naturalWidth 1)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


# ---- the library alone: hostile text everywhere -------------------------------------------
def test_the_page_shows_a_strangers_text_as_text(tmp_path, browser):
    """Every string a config or a record can carry, hostile, in every place the page shows
    one; file names with ``#``, ``?`` and spaces; the browser runs nothing and every link holds."""
    from analysis.report.model import COMPLETE, DAMAGED, NOT_RUN, Report, TaskEntry
    from analysis.report.page import write_report

    obj = tmp_path / "object"
    (obj / "sub dir").mkdir(parents=True)
    write_png(obj / "a b#1?.png")
    write_png(obj / "sub dir" / f"{HOSTILE[:8]}.png")
    (obj / "yields.md").write_text(f"# {HOSTILE}\n| process | {HOSTILE} |\n|---|---|\n| ttbar | 1.0 ± 0.1 |\n")
    (obj / "yields.csv").write_text(f"process,{HOSTILE}\nttbar,1.0\n")
    (obj / "fit_result.json").write_text(json.dumps({
        "format": "heirloom.fit-result", "poi": HOSTILE, "bestfit": 1.0, "uncertainty": 0.1,
        "minos": {HOSTILE: [-0.1, 0.1]}, "labels": [HOSTILE], "kinds": [HOSTILE], "values": [1.0], "errors": [0.1]}))
    (obj / "other.json").write_text(json.dumps({"format": "heirloom.new-thing", HOSTILE: [HOSTILE]}))
    record = {"key": "ab" * 20, "analysis": HOSTILE, "config_file": HOSTILE, "argv": [HOSTILE],
              "inputs": {HOSTILE: {"file": HOSTILE, "blake3": HOSTILE}}, "config_excerpt": {HOSTILE: HOSTILE},
              "code": {"identity": HOSTILE, "plugins": {HOSTILE: HOSTILE}}, "git": {"commit": HOSTILE},
              "outputs": {HOSTILE: HOSTILE}, HOSTILE: {HOSTILE: HOSTILE}}
    files = ("a b#1?.png", f"sub dir/{HOSTILE[:8]}.png", "yields.md", "yields.csv", "fit_result.json", "other.json")
    tasks = (TaskEntry(HOSTILE, HOSTILE, COMPLETE, "ab" * 20, provenance=record, folder=obj, files=files),
             TaskEntry("Fit", HOSTILE, DAMAGED, "cd" * 20, problem=HOSTILE, requires=((HOSTILE, HOSTILE),)),
             TaskEntry("Plot", "all", NOT_RUN, "ef" * 20, components={"config": {"title": HOSTILE}},
                       requires=(("Fit", HOSTILE),), note=HOSTILE))
    index = write_report(Report(HOSTILE, HOSTILE, HOSTILE, HOSTILE, tasks, notes=(HOSTILE,), description=HOSTILE),
                         tmp_path / "report")
    source = index.read_text()
    assert "<script" not in source and "<img src=x" not in source
    page = open_page(browser, index)
    check_page(page, index)
    assert len(page.images) == 2
    assert page.text.count(HOSTILE) >= 10, "the hostile text is shown, as text"


def test_the_report_folder_is_replaced_only_when_it_holds_a_report(tmp_path):
    from analysis.errors import HeirloomError
    from analysis.report.model import NOT_RUN, Report, TaskEntry
    from analysis.report.page import write_report

    data = Report("a", "c.yaml", "store", "now", (TaskEntry("Fit", "all", NOT_RUN),))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    with pytest.raises(HeirloomError, match="holds other files"):
        write_report(data, tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "keep me"
    first = write_report(data, tmp_path / "report")
    (first.parent / "assets").mkdir()
    (first.parent / "assets" / "old.png").write_text("stale")
    write_report(data, tmp_path / "report")
    assert not (first.parent / "assets").exists() and first.is_file()


# ---- the command on real stores -----------------------------------------------------------
def test_report_of_an_analysis_that_has_not_run(tmp_path, browser, monkeypatch):
    """An empty store: every task of the AGC analysis is 'not run', with the key it would
    have; the page still passes the browser's checks. A planted object folder that is not
    a complete object shows as 'damaged'."""
    store, config = tmp_path / "store", ROOT / "configs" / "agc_ttbar.yaml"
    index, said = heirloom_report(config, store, tmp_path / "report")
    tasks = gathered(store, config, monkeypatch)
    found = {ident: task.status for ident, task in tasks.items()}
    assert set(found.values()) == {"not run"}
    assert {"Generate", "Skim", "Select", "Histogram", "Histograms", "Fit", "Plot", "AGCHistograms"} <= {
        family for family, _ in found}
    assert f"{len(found)} tasks (0 complete, {len(found)} not run, 0 damaged)" in said
    page = open_page(browser, index)
    check_page(page, index, images=False)
    assert "no plots yet" in page.text

    key = tasks[("Histograms", "all")].key
    folder = store / "objects" / "Histograms" / key[:2] / key
    folder.mkdir(parents=True)
    (folder / "histograms.json").write_text("{}")            # no provenance.json: not complete
    index, _ = heirloom_report(config, store, tmp_path / "report")
    found = statuses(store, config, monkeypatch)
    assert found.pop(("Histograms", "all")) == "damaged" and set(found.values()) == {"not run"}
    page = open_page(browser, index)
    check_page(page, index, images=False)
    assert "provenance.json missing" in page.text


def test_report_of_the_agc_analysis(agc_store, tmp_path, browser, monkeypatch):
    """The acceptance: `heirloom report --config configs/agc_ttbar.yaml` on the session's
    AGC store, after `law run Plot`: plots, the fit result and the cutflow are shown, every
    task up to Plot is complete, and the page passes the browser's checks."""
    config = ROOT / "configs" / "agc_ttbar.yaml"
    started = time.time()
    law_run("Plot", config, agc_store)
    plotted = time.time() - started
    index, said = heirloom_report(config, agc_store, tmp_path / "report")
    found = statuses(agc_store, config, monkeypatch)
    needed = {ident for ident in found if ident[0] not in ("AGCHistograms", "Ranking", "Significance")}
    assert all(found[ident] == "complete" for ident in needed), {i: s for i, s in found.items() if s != "complete"}
    page = open_page(browser, index)
    check_page(page, index)
    assert any(src.endswith("_postfit.png") for src, _, _ in page.images)
    assert "ttbar_norm = " in page.text and "goodness of fit" in page.text
    assert "four_jets" in page.text                              # the cutflow table
    print(f"law run Plot on the AGC store: {plotted:.1f} s; {said.strip()}")


def test_hostile_labels_in_a_fork_are_shown_as_text(agc_store, tmp_path, browser):
    """A fork whose description, dataset label and plot title carry markup: its Plot (on
    the AGC store: only Plot reruns) writes the label into the cutflow table, and the
    report shows it as text."""
    config = write_config(tmp_path, "hostile.yaml", f"""\
extends: {ROOT / 'configs' / 'agc_ttbar.yaml'}
name: agc_hostile
description: {json.dumps(HOSTILE)}
datasets: {{wjets: {{label: {json.dumps(HOSTILE)}}}}}
plots: {{title: {json.dumps(HOSTILE)}}}
""")
    law_run("Plot", config, agc_store)
    index, _ = heirloom_report(config, agc_store, tmp_path / "report")
    assert "<script" not in index.read_text()
    page = open_page(browser, index)
    check_page(page, index)
    assert page.text.count(HOSTILE) >= 2                         # the description and the cutflow's header

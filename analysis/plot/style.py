"""Plot style from the config: experiment label, luminosity and energy, process colours, axis labels.

The config's ``plots:`` section (docs/config-reference.md) says how figures look:

- ``experiment`` (drawn in bold above the plots; "CMS", "ATLAS", "LHCb" and "ALICE" also
  get their experiment's mplhep style in the distributions) and ``label`` (the text after
  it, e.g. "Open Data", "Preliminary"); ``cms_label: X`` is short for ``experiment: CMS, label: X``;
- ``energy``: the centre-of-mass energy, a number in TeV (default 13) or a text with its
  unit ("900 GeV"); ``""`` leaves it out. The luminosity next to it is the config's
  ``lumi`` (pb^-1), shown in fb^-1, when the config sets one;
- ``ratio_range``: the y range of the data/MC ratio panels (default ``[0.5, 1.5]``);
- ``title``, ``log_y``, ``formats`` (see :mod:`analysis.plot.plotting`).

Every process keeps one colour in every fork (:func:`process_colors`).

>>> lumi_text(30.0)
'0.03'
>>> y_label([50.0, 70.0, 90.0], "GeV"), y_label([0, 1, 3], None)
('Events / 20 GeV', 'Events / bin')
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

#: matplotlib's "petroff10" colour sequence (M. A. Petroff, arXiv:2107.02270): ten colours
#: that stay distinguishable with colour-vision deficiencies, in this fixed order
PALETTE = ("#3f90da", "#ffa90e", "#bd1f01", "#94a4a2", "#832db6",
           "#a96b59", "#e76300", "#b9ac70", "#717581", "#92dadd")
DEFAULT_ENERGY = 13                 # TeV
DEFAULT_RATIO_RANGE = (0.5, 1.5)
DPI = 120
#: experiments whose own mplhep style (fonts, sizes) the distributions use; others: mplhep's "plothist"
EXPERIMENTS = {"cms": "CMS", "atlas": "ATLAS", "lhcb": "LHCb2", "alice": "ALICE"}
_UNIT = re.compile(r"\[([^\[\]]+)\]\s*$")


def process_colors(names: Iterable[str], given: Mapping[str, str] | None = None) -> dict[str, str]:
    """One colour per process name: its own (``given``: ``color:`` in the config) or the
    :data:`PALETTE` entry that a stable hash (sha256) of its name picks, the next free one
    when two names pick the same. Names are taken in sorted order, so the order of the
    datasets in a config, or in a fork, changes no colour.

    >>> process_colors(["wjets", "ttbar", "single_top"]) == process_colors(["single_top", "ttbar", "wjets"])
    True
    >>> process_colors(["ttbar"], {"ttbar": "red"})
    {'ttbar': 'red'}
    """
    given = dict(given or {})
    taken = {str(color).lower() for color in given.values()}
    out = {}
    for name in sorted(set(names)):
        if name in given:
            out[name] = given[name]
            continue
        start = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % len(PALETTE)
        free = [PALETTE[(start + i) % len(PALETTE)] for i in range(len(PALETTE))
                if PALETTE[(start + i) % len(PALETTE)] not in taken]
        out[name] = free[0] if free else PALETTE[start]       # more processes than colours: repeat
        taken.add(out[name])
    return out


def file_stem(name: str) -> str:
    """``name`` with characters other than letters, digits and ``_+-`` replaced by ``-``.

    >>> file_stem("4j1b CR")
    '4j1b-CR'
    """
    return re.sub(r"[^A-Za-z0-9_+-]", "-", name)


def unit_of(label: str | None) -> str | None:
    """The unit at the end of an axis label in brackets.

    >>> unit_of("$H_T$ [GeV]"), unit_of("number of jets")
    ('GeV', None)
    """
    match = _UNIT.search(label or "")
    return match.group(1).strip() if match else None


def y_label(edges: Any, unit: str | None, what: str = "Events") -> str:
    """``Events / <bin width> <unit>`` for equal bins, else ``Events / bin``.

    >>> y_label([0.0, 0.5, 1.0], None), y_label([110, 150, 190], "GeV")
    ('Events / 0.5', 'Events / 40 GeV')
    """
    import numpy as np

    widths = np.diff(np.asarray(edges, dtype=float))
    if len(widths) == 0 or not np.allclose(widths, widths[0], rtol=1e-6, atol=0):
        return f"{what} / bin"
    return f"{what} / {float(widths[0]):.4g}" + (f" {unit}" if unit else "")


def lumi_text(lumi_pb: float) -> str:
    """The luminosity in fb^-1 (three significant digits) of one in pb^-1.

    >>> lumi_text(3378.0), lumi_text(138000.0)
    ('3.38', '138')
    """
    return f"{lumi_pb / 1000.0:.3g}"


def plot_style(cfg: Any) -> dict:
    """The resolved ``plots:`` section: the keys above with their defaults, and ``lumi``
    (fb^-1 as text) when the config sets ``lumi``.

    >>> style = plot_style(load_config("configs/demo.yaml"))
    >>> style["energy"], style["lumi"], style["ratio_range"], style["experiment"]
    (13, '0.03', [0.5, 1.5], '')
    """
    style = cfg.section("plots", default={})
    if "cms_label" in style:
        style.setdefault("experiment", "CMS")
        style.setdefault("label", style.pop("cms_label"))
    style.setdefault("experiment", "")
    style.setdefault("label", "")
    style.setdefault("energy", DEFAULT_ENERGY)
    style["ratio_range"] = [float(x) for x in style.get("ratio_range", DEFAULT_RATIO_RANGE)]
    if "lumi" in cfg.data:
        style["lumi"] = lumi_text(cfg.lumi)
    return style


def experiment_label(ax: Any, style: Mapping | None) -> None:
    """Above ``ax``: on the left the experiment in bold and the label in italics after it
    (the layout of mplhep's ``exp_label(loc=0)``), on the right the luminosity and the
    energy. Nothing when the style names neither. Drawn with plain matplotlib text, the
    label placed against the experiment's text when the figure is drawn: mplhep's
    labels draw the whole figure once more to measure it (0.7 s for a fit plot).

    >>> import matplotlib.pyplot as plt
    >>> figure, ax = plt.subplots()
    >>> experiment_label(ax, {"experiment": "CMS", "label": "Open Data", "lumi": "3.38", "energy": 13})
    >>> print(" | ".join(t.get_text() for t in ax.texts))
    CMS | Open Data | 3.38 fb$^{-1}$ (13 TeV)
    >>> plt.close(figure)
    """
    import matplotlib

    style = dict(style or {})
    if "cms_label" in style:                      # a style that did not go through plot_style()
        style.setdefault("experiment", "CMS")
        style.setdefault("label", style["cms_label"])
    experiment, text = str(style.get("experiment") or ""), str(style.get("label") or "")
    size = matplotlib.rcParams["font.size"]
    above = {"va": "bottom", "transform": ax.transAxes, "clip_on": False}
    anchor = ax.text(0, 1.012, experiment, ha="left", fontweight="bold", fontsize=1.3 * size, **above) \
        if experiment else None
    if text:
        if anchor is not None:
            ax.annotate(text, xy=(1, 0), xycoords=anchor, xytext=(0.3 * size, 0), textcoords="offset points",
                        va="bottom", ha="left", fontstyle="italic", fontsize=size, annotation_clip=False)
        else:
            ax.text(0, 1.012, text, ha="left", fontstyle="italic", fontsize=size, **above)
    right = energy_lumi_text(style.get("lumi"), style.get("energy", DEFAULT_ENERGY))
    if right:
        ax.text(1, 1.012, right, ha="right", fontsize=size / 1.1, **above)


def energy_lumi_text(lumi: str | None, energy: Any) -> str:
    """``<lumi> fb^-1 (<energy>)``, the parts that are given.

    >>> energy_lumi_text("0.03", 13), energy_lumi_text(None, "900 GeV"), energy_lumi_text(None, "")
    ('0.03 fb$^{-1}$ (13 TeV)', '(900 GeV)', '')
    """
    parts = [f"{lumi} fb$^{{-1}}$"] if lumi else []
    if energy not in ("", None):
        parts.append(f"({energy:g} TeV)" if isinstance(energy, (int, float)) else f"({energy})")
    return " ".join(parts)


def mplhep_style(style: Mapping | None) -> Any:
    """The mplhep style sheet of the style's experiment (``plothist`` for others or none),
    saved with tight bounding boxes.

    >>> mplhep_style({"experiment": "CMS"})["font.size"]
    26
    """
    import mplhep

    name = EXPERIMENTS.get(str((style or {}).get("experiment") or "").lower(), "plothist")
    sheet = {**getattr(mplhep.style, name), "savefig.bbox": "tight", "savefig.pad_inches": 0.15}
    if name == "plothist":                    # room for the ratio panel; a serif font with a bold face
        # one font file per face: "Latin Modern Roman" names several sizes (lmroman5 ... 17) and
        # which of them matplotlib picks depends on the hash seed, so the bytes would differ by run
        sheet.update({"figure.figsize": (6.4, 5.6), "font.serif": ["LM Roman 10"]})
    return sheet


@contextlib.contextmanager
def agg() -> Iterator[None]:
    """Matplotlib's Agg backend, and its global settings restored afterwards."""
    import matplotlib

    matplotlib.use("Agg")
    with matplotlib.rc_context():
        yield


def output_folder(outdir: str | Path) -> Path:
    """``outdir``, made if missing."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    return outdir


def save(figure: Any, stem: Path, style: Mapping | None, *, title: bool = True) -> list[Path]:
    """Write ``figure`` as ``stem.<format>`` for each of the style's ``formats`` (default
    png), with the style's ``title`` above it (unless ``title=False``), then close it.

    >>> import matplotlib.pyplot as plt
    >>> [p.name for p in save(plt.figure(), outdir / "empty", {"formats": ["png", "svg"]})]
    ['empty.png', 'empty.svg']
    """
    import matplotlib.pyplot as plt

    style = style or {}
    written = []
    try:
        if title and style.get("title"):
            figure.suptitle(style["title"])
        for fmt in style.get("formats") or ["png"]:
            path = stem.with_name(f"{stem.name}.{fmt}")
            figure.savefig(path, dpi=DPI)
            written.append(path)
    finally:
        plt.close(figure)
    return written

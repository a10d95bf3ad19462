"""HTML building blocks that escape by default.

Text from a config or a provenance record is a stranger's: it must never become markup.
So every helper here escapes what it is given, unless it is :class:`Html` (markup that a
helper made, or text that :func:`esc` escaped). Element names and attribute names come
from this package's code only; attribute values are escaped and quoted.

>>> str(tag("td", '<img src=x onerror="alert(1)">'))
'<td>&lt;img src=x onerror=&quot;alert(1)&quot;&gt;</td>'
>>> str(tag("a", tag("b", "1 < 2"), href=link("assets/a b.png")))
'<a href="assets/a%20b.png"><b>1 &lt; 2</b></a>'
"""

from __future__ import annotations

import html
import re
from typing import Iterable, Sequence
from urllib.parse import quote


class Html(str):
    """Markup that is safe to write as it is (made by the helpers of this module)."""


def esc(value: object) -> Html:
    """``value`` as HTML text: ``& < > " '`` escaped (markup already made is kept).

    >>> str(esc('<script>alert("x")</script>'))
    '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'
    >>> str(esc(Html("<b>kept</b>")))
    '<b>kept</b>'
    """
    if isinstance(value, Html):
        return value
    return Html(html.escape(str(value), quote=True))


def join(parts: Iterable[object], sep: str = "") -> Html:
    """Parts (text escaped, markup kept) joined into one piece of markup.

    >>> str(join(["a<b", tag("i", "c")], ", "))
    'a&lt;b, <i>c</i>'
    """
    return Html(esc(sep).join(esc(part) for part in parts))


def tag(name: str, body: object = "", /, **attrs: object) -> Html:
    """``<name attrs>body</name>``; ``class_`` gives ``class``, ``data_x`` gives ``data-x``;
    attributes that are None are left out.

    >>> str(tag("p", "x", class_="note", title=None))
    '<p class="note">x</p>'
    """
    return Html(f"<{name}{attributes(attrs)}>{esc(body)}</{name}>")


def void(name: str, /, **attrs: object) -> Html:
    """An element without content (``img``, ``meta``; in SVG ``rect``, ``line``), closed
    with ``/>``, which HTML ignores and SVG needs.

    >>> str(void("img", src="assets/p.png", alt='a "plot"'))
    '<img src="assets/p.png" alt="a &quot;plot&quot;"/>'
    """
    return Html(f"<{name}{attributes(attrs)}/>")


def attributes(attrs: dict) -> str:
    """`` name="value"`` for each attribute, values escaped.

    >>> attributes({"class_": "a", "data_key": "<k>"})
    ' class="a" data-key="&lt;k&gt;"'
    """
    return "".join(f' {name.rstrip("_").replace("_", "-")}="{esc(value)}"'
                   for name, value in attrs.items() if value is not None)


def link(relative: str) -> str:
    """A relative file link (``/``-separated), percent-encoded so that ``#``, ``?``, ``%``
    and spaces in a file name stay part of the path.

    >>> link("assets/Plot-a#1/cut flow?.md")
    'assets/Plot-a%231/cut%20flow%3F.md'
    """
    return quote(relative, safe="/")


def slug(text: object) -> str:
    """``text`` reduced to letters, digits, ``_``, ``-`` and ``.`` (for ids and file names).

    >>> slug("Select[ttbar__pt_scale_up]"), slug("<script>"), slug("..")
    ('Select_ttbar__pt_scale_up', 'script', 'x')
    """
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_.")
    return cleaned or "x"


class Names:
    """Unique names (element ids, asset file names) from readable parts.

    >>> names = Names()
    >>> names.new("task", "Skim", "a b"), names.new("task", "Skim", "a_b")
    ('task-Skim-a_b', 'task-Skim-a_b-2')
    >>> names.new("Plot", "all", "cutflow", suffix=".md"), names.new("Plot", "all", "cutflow", suffix=".md")
    ('Plot-all-cutflow.md', 'Plot-all-cutflow-2.md')
    """

    def __init__(self) -> None:
        self.used: set[str] = set()

    def new(self, *parts: object, suffix: str = "") -> str:
        base = "-".join(slug(part) for part in parts)
        name, number = base + suffix, 2
        while name.lower() in self.used:
            name, number = f"{base}-{number}{suffix}", number + 1
        self.used.add(name.lower())
        return name


def table(header: Sequence[object], rows: Iterable[Sequence[object]], **attrs: object) -> Html:
    """A table: a header row, then one row per sequence (cells escaped unless markup).

    >>> str(table(["step", "n"], [["<all>", 3]]))
    '<table><thead><tr><th>step</th><th>n</th></tr></thead><tbody><tr><td>&lt;all&gt;</td><td>3</td></tr></tbody></table>'
    """
    head = tag("thead", tag("tr", join(tag("th", cell) for cell in header))) if header else Html("")
    body = tag("tbody", join(tag("tr", join(tag("td", cell) for cell in row)) for row in rows))
    return tag("table", join([head, body]), **attrs)


def fields(pairs: Iterable[tuple[object, object]]) -> Html:
    """A two-column table of names and values (a definition list that tables nicely).

    >>> str(fields([("key", "ab12")]))
    '<table class="fields"><tbody><tr><th>key</th><td>ab12</td></tr></tbody></table>'
    """
    rows = join(tag("tr", join([tag("th", name), tag("td", value)])) for name, value in pairs)
    return tag("table", tag("tbody", rows), class_="fields")


def number(value: object, digits: int = 4) -> str:
    """A value as a table shows it: floats to ``digits`` significant digits, None as ``none``.

    >>> number(1.083456), number(None), number(3), number(float("nan")), number(True)
    ('1.083', 'none', '3', 'nan', 'True')
    """
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)

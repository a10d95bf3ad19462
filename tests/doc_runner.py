"""Run what a Markdown document tells its reader to run, and check what it says they see.

A document is read as a reader follows it, top to bottom, in one shell:

- a fenced ``sh`` block is a list of commands. A line that starts with ``# `` right under
  a command (at column 0) is output that the document quotes for that command; an
  indented ``#`` line or a comment after a command is only a comment. A backslash at the
  end of a line continues the command.
- an untagged fenced block directly after an ``sh`` block (nothing but blank lines
  between them), or after ``<!-- doc-test: output -->``, quotes the output of that
  block's last command; after ``output in any order`` the quoted lines must all be
  printed, and nothing else, in any order.
- ``<!-- doc-test: write PATH -->`` (or ``append PATH``) before a block makes that block
  the content the reader writes to PATH (relative to the checkout); ``same PATH`` says
  the block shows the file PATH as it is.
- ``<!-- doc-test: not run: REASON -->`` before an ``sh`` block keeps it from running
  (``git clone <url>``); ``skip PREFIX -- REASON`` keeps only the commands that start
  with PREFIX from running (``./setup.sh test``, the suite itself); ``needs shared data``
  runs the block only when ``../shared/data`` is there. A file shown as ``same`` is
  compared without its comment lines.

Every command must exit with 0. Quoted output is compared line by line after
:func:`normalise` (times, rates, dates and content keys vary from run to run; every
other number must be exactly what the run printed); ``…`` inside a line matches
anything, a line ``...`` skips any number of lines, and the quoted lines between two
``...`` must appear together, in order. The quoted output of ``ls`` is a file list and
must name exactly the files that ``ls`` printed.

>>> [s.kind for s in parse("```sh\\nls configs\\n# demo.yaml\\n```\\n")]
['run']
>>> parse("```sh\\nls configs\\n# demo.yaml\\n```\\n")[0].expected
('demo.yaml',)
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

MARKER = re.compile(r"<!--\s*doc-test:\s*(.*?)\s*-->")
SHELL = {"sh", "bash", "shell", "console"}
ELLIPSIS = "..."


@dataclass(frozen=True)
class Step:
    """One thing the reader does: ``run`` a command, ``write``/``append`` a file, or see
    that a file is the ``same`` as the block; ``line`` is where the document says so."""

    kind: str
    line: int
    text: str
    path: str | None = None
    expected: tuple[str, ...] = ()
    condition: str | None = None        # "needs shared data"
    any_order: bool = False             # the quoted lines may be printed in any order


@dataclass
class _Block:
    info: str
    line: int
    body: list[str]
    marker: str | None
    follows_shell: bool = False


def _blocks(text: str) -> list[_Block]:
    lines, blocks, i, prose = text.splitlines(), [], 0, []
    while i < len(lines):
        if not lines[i].startswith("```"):
            prose.append(lines[i])
            i += 1
            continue
        start, info = i, lines[i][3:].strip()
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        markers = MARKER.findall("\n".join(prose))
        follows = bool(blocks) and blocks[-1].info in SHELL and not "".join(prose).strip()
        blocks.append(_Block(info, start + 1, body, markers[-1] if markers else None, follows))
        prose, i = [], i + 1
    return blocks


def _commands(block: _Block) -> list[Step]:
    marker = block.marker or ""
    skip = marker[len("skip "):].split(" -- ")[0].strip() if marker.startswith("skip ") else None
    steps: list[Step] = []
    pending, pending_line, expected = "", 0, []

    def close():
        nonlocal pending, expected
        if pending.strip() and not (skip and pending.strip().startswith(skip)):
            condition = "needs shared data" if block.marker == "needs shared data" else None
            steps.append(Step("run", pending_line, pending.strip(), expected=tuple(expected), condition=condition))
        pending, expected = "", []

    for offset, raw in enumerate(block.body, start=1):
        if pending.endswith("\\") or not _complete(pending):
            pending = (pending[:-1] if pending.endswith("\\") else pending) + "\n" + raw
            continue
        if raw.startswith("#") and (raw == "#" or raw.startswith("# ")):
            if pending:
                expected.append(raw[2:])
            continue
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        close()
        pending, pending_line = raw, block.line + offset
    close()
    return steps


def _complete(command: str) -> bool:
    """Whether a shell command is whole (a quoted string may span lines)."""
    try:
        shlex.split(command, comments=True)
    except ValueError:
        return False
    return True


def parse(text: str) -> list[Step]:
    """The steps of a Markdown document, in order (see the module's docstring)."""
    steps: list[Step] = []
    for block in _blocks(text):
        marker = block.marker or ""
        if block.info in SHELL:
            if not marker.startswith("not run"):
                steps.extend(_commands(block))
        elif marker.split(" ", 1)[0] in ("write", "append", "same"):
            kind, path = marker.split(" ", 1)
            steps.append(Step(kind, block.line, "\n".join(block.body) + "\n", path=path.strip()))
        elif (not block.info and (block.follows_shell or marker.startswith("output"))
              and steps and steps[-1].kind == "run"):
            last = steps[-1]
            steps[-1] = Step("run", last.line, last.text, expected=last.expected + tuple(block.body),
                             condition=last.condition, any_order=marker == "output in any order")
    return steps


# ---- comparing output ----------------------------------------------------------------------

_NORMALISE = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?"), "<TIME>"),
    (re.compile(r"\b\d{8}-\d{6}-\d+\b"), "<TIME>"),
    (re.compile(r"\b[0-9a-f]{12,64}\b"), "<KEY>"),
    (re.compile(r"(objects/\w+/)[0-9a-f]{2}/"), r"\1<KK>/"),
    (re.compile(r"\b\d+m\d+(\.\d+)?s\b"), "<T>"),
    (re.compile(r"\b\d+(\.\d+)? ?(s|ms|min)\b"), "<T>"),
    (re.compile(r"\b\d+(\.\d+)? ?[kMG]?Hz\b"), "<RATE>"),
    (re.compile(r"\[\d+/\d+ <T>\]"), "[<k>/<N> <T>]"),
    (re.compile(r"\s+"), " "),
]


def normalise(line: str) -> str:
    """A line with what varies between runs replaced: times, dates, rates, content keys
    and the two-character shard folder of an object (every other number is kept).

    >>> normalise("[3/40 17.7 s] Fit[all] done in 3.0 s -> store/objects/Fit/81/81bb0472db8f66bac4")
    '[<k>/<N> <T>] Fit[all] done in <T> -> store/objects/Fit/<KK>/<KEY>'
    >>> normalise("Fit: ttbar_norm = 1.0311 +- 0.0986 (4 s here)")
    'Fit: ttbar_norm = 1.0311 +- 0.0986 (<T> here)'
    """
    for pattern, replacement in _NORMALISE:
        line = pattern.sub(replacement, line)
    return line.strip()


def _line_matches(expected: str, actual: str) -> bool:
    parts = [re.escape(part) for part in normalise(expected).split("…")]
    return re.fullmatch(".*?".join(parts), normalise(actual)) is not None


def _segments(expected: tuple[str, ...]) -> list[list[str]]:
    segments: list[list[str]] = [[]]
    for line in expected:
        if line.strip() == ELLIPSIS:
            segments.append([])
        elif line.strip():
            segments[-1].append(line)
    return [s for s in segments if s]


def _unordered_mismatch(expected: tuple[str, ...], actual: list[str]) -> str | None:
    left = list(actual)
    for line in (e for e in expected if e.strip()):
        found = next((i for i, a in enumerate(left) if _line_matches(line, a)), None)
        if found is None:
            return f"quoted line not printed: {line!r}"
        del left[found]
    return f"printed but not quoted: {left[0]!r}" if left else None


def mismatch(expected: tuple[str, ...], output: str, command: str, any_order: bool = False) -> str | None:
    """Why ``output`` is not what the document quotes (None when it is).

    >>> mismatch(("a 1", "...", "c 3"), "x\\na 1\\nb 2\\nc 3\\n", "cmd")
    >>> mismatch(("a 2",), "a 1\\n", "cmd")
    "quoted line not printed: 'a 2'"
    """
    if command.split()[:1] == ["ls"]:
        quoted = sorted(" ".join(expected).split())
        listed = sorted(output.split())
        return None if quoted == listed else f"ls lists {listed}, the document {quoted}"
    actual = [line for line in output.splitlines() if line.strip()]
    if any_order:
        return _unordered_mismatch(expected, actual)
    position = 0
    for segment in _segments(expected):
        found = next((i for i in range(position, len(actual) - len(segment) + 1)
                      if all(_line_matches(e, a) for e, a in zip(segment, actual[i:]))), None)
        if found is None:
            missing = next((e for e in segment if not any(_line_matches(e, a) for a in actual[position:])),
                           segment[0])
            return f"quoted line not printed: {missing!r}" if missing else "quoted lines not printed together"
        position = found + len(segment)
    return None


# ---- running -------------------------------------------------------------------------------

def run(steps: list[Step], checkout: Path, env: dict, *, doc: str, shared_data: bool,
        substitute: dict[str, str] | None = None, timeout: int = 900) -> tuple[list[str], list[str]]:
    """Follow ``steps`` in ``checkout`` as a reader would, in one shell's state (``source``
    lines carry over). Returns (failures, skipped commands), each naming ``doc:line``.
    ``substitute`` rewrites text in commands and in the output they quote (e.g. ``/tmp/``
    to a private folder)."""
    failures, skipped, prelude = [], [], []
    for step in steps:
        where = f"{doc}:{step.line}"
        if step.kind in ("write", "append"):
            target = checkout / step.path
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "a" if step.kind == "append" else "w") as out:
                out.write(step.text)
            continue
        if step.kind == "same":
            if _without_comments((checkout / step.path).read_text()) != _without_comments(step.text):
                failures.append(f"{where}: the block is not the content of {step.path}")
            continue
        if step.condition == "needs shared data" and not shared_data:
            skipped.append(f"{where}: {step.text} (needs ../shared/data)")
            continue
        started = time.time()
        failure = _run_command(step, checkout, env, prelude, substitute or {}, timeout)
        print(f"{where}: {time.time() - started:6.1f} s  {step.text.splitlines()[0][:90]}")     # shown with -s
        if failure:
            failures.append(f"{where}: `{step.text}`: {failure}")
    return failures, skipped


def _without_comments(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _substituted(text: str, substitute: dict[str, str]) -> str:
    for old, new in substitute.items():
        text = text.replace(old, new)
    return text


def _run_command(step: Step, checkout: Path, env: dict, prelude: list[str],
                 substitute: dict[str, str], timeout: int) -> str | None:
    command = _substituted(step.text, substitute)
    script = "\n".join([*prelude, command])
    try:
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", script], cwd=checkout, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"still running after {timeout} s"
    if proc.returncode != 0:
        return f"exit status {proc.returncode}:\n{proc.stdout[-3000:]}"
    if command.startswith(("source ", ". ")):
        prelude.append(command)
    expected = tuple(_substituted(line, substitute) for line in step.expected)
    why = mismatch(expected, proc.stdout, command, step.any_order) if expected else None
    return f"{why}\n--- it printed:\n{proc.stdout[-4000:]}" if why else None


def reader_env(home: Path) -> dict:
    """The environment of a reader who has just cloned: no Heirloom variables, no
    activated environment, their own home."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HEIRLOOM_", "LAW_", "PYTEST_")) and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if "/.venv" not in p)
    env["HOME"] = str(home)
    return env


def copy_checkout(root: Path, dest: Path) -> Path:
    """A copy of the working tree at ``dest`` as a fresh clone has it (tracked and
    untracked files that git does not ignore, committed in a repository of its own), sharing the environments that ``setup.sh``
    made in ``root`` (linked, not rebuilt)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source, target = root / name, dest / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            target.chmod(source.stat().st_mode)
    git = ["git", "-c", "user.name=Reader", "-c", "user.email=reader@example.org", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(git + ["add", "-A"], cwd=dest, check=True)
    subprocess.run(git + ["commit", "-qm", "the checkout"], cwd=dest, check=True)
    _check_environment_is_current(root)
    for venv in (".venv", ".venv-preserve"):
        if (root / venv).exists():
            (dest / venv).symlink_to(root / venv)
    return dest


def _check_environment_is_current(root: Path) -> None:
    """The copy shares ``root``'s .venv: one older than setup.sh and the lock would be
    rebuilt by the copy's ``./setup.sh``, its editable install then pointing at the copy
    (gone after the test). Stop first, with what to do."""
    import hashlib

    wanted = hashlib.sha256(b"".join((root / name).read_bytes()
                                     for name in ("requirements.lock", "pyproject.toml", "setup.sh"))).hexdigest()
    stamp = root / ".venv" / ".heirloom-stamp"
    if stamp.exists() and stamp.read_text().strip() != wanted:
        raise RuntimeError(f"{root / '.venv'} is older than setup.sh, pyproject.toml or requirements.lock: "
                           "run ./setup.sh first (a copy of the checkout shares it)")

"""HTCondor submit descriptions (JDL) for one task family, and their check with HTCondor's
own parser (the ``htcondor`` package, module ``htcondor2``, with ``classad2``).

No HTCondor pool is needed: :func:`check_submit` parses a description exactly as
``condor_submit`` would read its commands, and checks that every ClassAd value parses. What a
pool then does with the job (matching, running) is outside what can be checked here.

Values are quoted with HTCondor's "new" syntax (the whole value in double quotes, an
argument or environment value with spaces in single quotes, a quote doubled to escape it). A
line break in any value is refused: it would start a submit command of its own.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from analysis.batch.resources import Resources, jdl_resources

if TYPE_CHECKING:
    import htcondor2

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
#: submit commands whose value is a ClassAd expression (checked with classad2)
_EXPRESSION_COMMANDS = ("request_cpus", "request_memory", "request_gpus", "request_disk")


def _one_line(value: str, what: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f"{what} {value!r} holds a line break (it would start a submit command of its own)")
    return value


def _quote_word(word: str) -> str:
    """One argument or environment value in the new syntax (without the enclosing double quotes)."""
    word = _one_line(str(word), "value").replace('"', '""')
    if not word or re.search(r"[\s']", word):
        word = "'" + word.replace("'", "''") + "'"
    return word


def quote_arguments(arguments: Sequence[str]) -> str:
    """The value of ``arguments =``: each argument kept whole, whatever its spaces and quotes.

    >>> print(quote_arguments(["run", "--config", "my config.yaml", "it's"]))
    "run --config 'my config.yaml' 'it''s'"
    """
    return '"' + " ".join(_quote_word(a) for a in arguments) + '"'


def quote_environment(environment: Mapping[str, str]) -> str:
    """The value of ``environment =`` for ``{NAME: value}``.

    >>> print(quote_environment({"HEIRLOOM_STORE": "/data/store", "GREETING": "hello world"}))
    "HEIRLOOM_STORE=/data/store GREETING='hello world'"
    """
    items = []
    for name, value in environment.items():
        if not _ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not an environment variable name")
        items.append(f"{name}={_quote_word(str(value))}")
    return '"' + " ".join(items) + '"'


def render_submit(res: Resources, executable: str, arguments: Sequence[str] = (), *,
                  log: str = "job.log", output: str = "job.out", error: str = "job.err",
                  environment: Mapping[str, str] | None = None, getenv: bool | Sequence[str] = True,
                  universe: str = "vanilla", batch_name: str | None = None,
                  extra: Mapping[str, str] | None = None, queue: int = 1) -> str:
    """The submit description of ``queue`` jobs running ``executable arguments`` with ``res``.

    ``getenv`` passes the submitter's environment: ``True``, or the names of the variables to
    pass (HTCondor >= 10 accepts a list); ``extra`` adds submit commands after the resources.

    >>> text = render_submit(Resources(cpus=2, memory_mb=4096, gpus=1), "/usr/bin/env",
    ...                      ["law", "run", "Fit", "--config", "configs/demo.yaml"], batch_name="Fit")
    >>> print(text)
    universe = vanilla
    executable = /usr/bin/env
    arguments = "law run Fit --config configs/demo.yaml"
    getenv = True
    log = job.log
    output = job.out
    error = job.err
    batch_name = Fit
    request_cpus = 2
    request_memory = 4096
    request_gpus = 1
    queue 1
    <BLANKLINE>
    """
    lines = [("universe", universe), ("executable", executable)]
    if arguments:
        lines.append(("arguments", quote_arguments(arguments)))
    if environment:
        lines.append(("environment", quote_environment(environment)))
    if getenv is True or getenv is False:
        lines.append(("getenv", str(getenv)))
    elif getenv:
        names = [n for n in getenv if _ENV_NAME.match(n)]
        if len(names) != len(getenv):
            raise ValueError(f"getenv {list(getenv)!r}: not all of them are environment variable names")
        lines.append(("getenv", ", ".join(names)))
    lines += [("log", log), ("output", output), ("error", error)]
    if batch_name:
        lines.append(("batch_name", batch_name))
    lines += list(jdl_resources(res).items()) + list((extra or {}).items())
    if not isinstance(queue, int) or queue < 1:
        raise ValueError(f"queue {queue!r}: a number of jobs >= 1")
    text = "".join(f"{key} = {_one_line(str(value), key)}\n" for key, value in lines)
    return text + f"queue {queue}\n"


def check_submit(text: str) -> htcondor2.Submit:
    """Parse ``text`` with HTCondor's submit parser; a ValueError says what is wrong.

    Checks beyond the parse: a ``queue`` statement, an ``executable``, and every resource
    request and custom attribute (``+Name`` / ``MY.Name``) a valid ClassAd expression.

    >>> sub = check_submit(render_submit(Resources(gpus=1, memory_mb=4096), "/bin/true"))
    >>> sub["request_gpus"], sub["request_memory"]
    ('1', '4096')
    >>> check_submit("executable = /bin/true\\nrequest_memory = 4 gigs\\nqueue\\n")
    Traceback (most recent call last):
    ValueError: request_memory = 4 gigs: not a ClassAd expression (Unable to parse string into a ClassAd.)
    """
    import classad2
    import htcondor2

    if not re.search(r"(?im)^\s*queue\b", text):
        raise ValueError("the submit description has no 'queue' statement")
    try:
        sub = htcondor2.Submit(text)
    except (ValueError, RuntimeError, htcondor2.HTCondorException) as err:
        raise ValueError(f"HTCondor cannot parse the submit description: {err}") from None
    if not sub.get("executable"):
        raise ValueError("the submit description has no 'executable'")
    for key in sub.keys():
        if key.lower() in _EXPRESSION_COMMANDS or key.upper().startswith("MY."):
            try:
                classad2.ExprTree(sub[key])
            except (ValueError, classad2.ClassAdException) as err:
                raise ValueError(f"{key} = {sub[key]}: not a ClassAd expression ({err})") from None
    return sub


def submit_commands(sub: Any) -> dict[str, str]:
    """``{command: value}`` of a parsed description, custom attributes as ``+Name``.

    >>> submit_commands(check_submit(render_submit(Resources(walltime_s=600), "/bin/true")))["+MaxRuntime"]
    '600'
    """
    return {("+" + key[3:] if key.upper().startswith("MY.") else key): sub[key] for key in sub.keys()}

"""Heirloom's name contracts: the one module that says how names are built and taken apart.

Every other module builds and splits names through these functions, so a rule changes in
one place. The rules (``docs/config-reference.md``, "Names"):

- A *name* (analysis, dataset, region, observable, systematic, selection step, sample) is
  letters, digits, ``_`` and ``-``, starting with a letter or digit: no ``/``, ``|``,
  ``.`` or spaces, so it is safe in file names, store labels and composite names.
- ``nominal`` is the variation without a change; a systematic's variations are
  ``<systematic>_up`` and ``<systematic>_down``.
- A dataset ``<process>__<variation>`` is a sample variation of ``<process>``.
- A histogram of the merged file is ``<dataset>/<region>/<observable>``.
- A group of Select's output is ``<variation>|<region>``.
- Cutflow steps are ``all``, ``preselected``, then the selection steps and the regions:
  those two names are reserved, and steps and regions share one namespace.
- The fit's templates are ``<region>__<sample>__<template>``: region, sample and
  systematic names may not contain ``__``, and no sample may be called ``data``.

>>> histogram_key("ttbar", "4j1b", "ht")
'ttbar/4j1b/ht'
>>> split_histogram_key("ttbar/4j1b/ht")
('ttbar', '4j1b', 'ht')
>>> sample_variation("ttbar__ME_var"), sample_variation("wjets")
(('ttbar', 'ME_var'), ('wjets', 'nominal'))
>>> bad_name("tt/bar")
"'tt/bar' is not a valid name: use letters, digits, '_' and '-', starting with a letter or digit"
"""

from __future__ import annotations

import re
from typing import Collection

NOMINAL = "nominal"
SIDES = ("up", "down")
SAMPLE_VARIATION_SEPARATOR = "__"
HISTOGRAM_SEPARATOR = "/"
GROUP_SEPARATOR = "|"
CUTFLOW_RESERVED = ("all", "preselected")
DATA_SAMPLE = "data"            # the observed data in the fit model: no sample may take it
#: sections whose names become parts of the fit's template names ``<region>__<sample>__<template>``
TEMPLATE_PARTS = ("regions", "samples", "systematics")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
_NAME = re.compile(NAME_PATTERN)


def bad_name(name: object) -> str | None:
    """Why ``name`` is not a valid Heirloom name, or None if it is.

    >>> bad_name("4j1b") is None, bad_name("..") is not None
    (True, True)
    """
    if isinstance(name, str) and _NAME.fullmatch(name):
        return None
    return (f"{name!r} is not a valid name: use letters, digits, '_' and '-', "
            "starting with a letter or digit")


def variation_name(systematic: str, side: str) -> str:
    """``jes``, ``up`` -> ``jes_up``.

    >>> variation_name("btag_var_0", "down")
    'btag_var_0_down'
    """
    return f"{systematic}_{side}"


def sample_variation(dataset: str) -> tuple[str, str]:
    """(process, variation) of a dataset name; ``nominal`` when it is no sample variation."""
    process, _, variation = dataset.partition(SAMPLE_VARIATION_SEPARATOR)
    return process, variation or NOMINAL


def histogram_key(dataset: str, region: str, observable: str) -> str:
    """The name of one histogram in the merged histograms file."""
    return HISTOGRAM_SEPARATOR.join((dataset, region, observable))


def region_histogram_key(region: str, observable: str) -> str:
    """The name of one histogram in a dataset's own file: ``<region>/<observable>``.

    >>> region_histogram_key("4j1b", "ht")
    '4j1b/ht'
    """
    return HISTOGRAM_SEPARATOR.join((region, observable))


def dataset_histogram_key(dataset: str, region_key: str) -> str:
    """The merged name of a dataset's ``<region>/<observable>`` histogram.

    >>> dataset_histogram_key("ttbar", "4j1b/ht")
    'ttbar/4j1b/ht'
    """
    region, observable = region_key.split(HISTOGRAM_SEPARATOR)
    return histogram_key(dataset, region, observable)


def split_histogram_key(key: str) -> tuple[str, str, str]:
    """(dataset, region, observable) of :func:`histogram_key`."""
    dataset, region, observable = key.split(HISTOGRAM_SEPARATOR)
    return dataset, region, observable


def group_key(variation: str, region: str) -> str:
    """The name of one (variation, region) group of Select's output.

    >>> split_group_key(group_key("jes_up", "4j2b"))
    ('jes_up', '4j2b')
    """
    return f"{variation}{GROUP_SEPARATOR}{region}"


def split_group_key(key: str) -> tuple[str, str]:
    """(variation, region) of :func:`group_key`."""
    variation, region = key.split(GROUP_SEPARATOR, 1)
    return variation, region


def raw_roots(branches: Collection[str]) -> set:
    """Top-level names an expression may use for NanoAOD-style flat branch names.

    ``Jet_pt`` gives ``Jet`` (and itself); ``nJet``, ``genWeight`` and ``MET_pt`` give
    themselves and ``MET``.

    >>> sorted(raw_roots(["nJet", "Jet_pt", "MET_pt", "event"]))
    ['Jet', 'Jet_pt', 'MET', 'MET_pt', 'event', 'nJet']
    """
    roots = set(branches)
    roots.update(name.split("_", 1)[0] for name in branches if "_" in name)
    return roots

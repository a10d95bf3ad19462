"""Objects, event selection, regions, observables and every variation, for one chunk.

A chunk is read once; every shape variation (e.g. jet energy scale) rebuilds objects
and selection from the varied inputs, and every weight variation (e.g. b-tag) is a
factor on the selected events of the nominal pass. The result is a small table of
selected events per (variation, region) plus a cutflow.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Callable

from analysis.config.model import AnalysisConfig

from analysis.lang.jagged import keep
from analysis.lang.plugins import trusted_plugin
from analysis.ml.models import CompiledModel, model_specs
from analysis.names import NOMINAL



@dataclass(frozen=True)
class SelectionPlan:
    """Everything ``select_events`` needs, as plain picklable data (ships to workers)."""
    objects: tuple          # ((name, source, where_text | None), ...)
    steps: tuple            # ((name, cut_text), ...)
    regions: tuple          # ((name, cut_text, (observable, ...)), ...)
    observables: tuple      # ((name, expr_text), ...)
    event_weight: str | None
    shape_variations: tuple  # ((name, ((target, expr_text), ...)), ...)
    weight_variations: tuple  # ((name, expr_text), ...)
    plugins: tuple = ()     # ((alias, source_path, sha256), ...): checked by the config loader
    is_mc: bool = True
    corrections: tuple = ()  # ((alias, correctionlib file), ...)
    models: tuple = ()      # (analysis.ml.models.ModelSpec, ...): ONNX models whose outputs are columns

    def excerpt(self) -> dict[str, Any]:
        """What the selection's result depends on, for its content address, keyed by the
        config's names (so ``heirloom why`` says ``config.objects.jets.where``): every field
        but the plugin and correction file paths (their contents enter the key as
        fingerprints); ``order`` keeps what the sequence of objects and steps decides.
        ``models`` (each model's content hash, inputs, outputs, device and the ONNX Runtime
        version) is there only when the config has models: other configs' excerpts are unchanged.

        >>> plan = SelectionPlan((("jets", "Jet", "Jet.pt > 30"),), (("one", "ak.num(jets) >= 1"),), (), (), None,
        ...                      (), (), plugins=(("p", "/a/p.py", "0" * 64),))
        >>> plan.excerpt()["objects"], plan.excerpt()["steps"], plan.excerpt()["order"]["steps"]
        ({'jets': {'from': 'Jet', 'where': 'Jet.pt > 30'}}, {'one': 'ak.num(jets) >= 1'}, ['one'])
        """
        excerpt = {
            "objects": {name: {"from": source, "where": where} for name, source, where in self.objects},
            "steps": dict(self.steps),
            "order": {"objects": [name for name, _, _ in self.objects], "steps": [name for name, _ in self.steps],
                      "regions": [name for name, _, _ in self.regions],
                      "observables": [name for name, _ in self.observables],
                      "variations": [name for name, _ in self.shape_variations + self.weight_variations]},
            "regions": {name: {"cut": cut, "observables": list(observables)} for name, cut, observables in self.regions},
            "observables": dict(self.observables),
            "event_weight": self.event_weight,
            "shape_variations": {name: dict(overrides) for name, overrides in self.shape_variations},
            "weight_variations": dict(self.weight_variations),
            "is_mc": self.is_mc,
            "plugins": [alias for alias, *_ in self.plugins],
            "corrections": [alias for alias, _ in self.corrections],
        }
        if self.models:
            excerpt["models"] = {spec.name: spec.excerpt() for spec in self.models}
        return excerpt

    @property
    def observable_names(self) -> tuple:
        return tuple(name for name, _ in self.observables)

    @property
    def weight_names(self) -> tuple:
        return (NOMINAL,) + tuple(name for name, _ in self.weight_variations)


def plan_from_config(cfg: AnalysisConfig, dataset: str) -> SelectionPlan:
    """The SelectionPlan of ``dataset`` in an AnalysisConfig."""
    from analysis.config.model import region_observables

    is_mc = cfg.datasets[dataset]["kind"] == "mc"
    return SelectionPlan(
        objects=tuple((name, obj["from"], obj.get("where")) for name, obj in cfg.data.get("objects", {}).items()),
        steps=tuple((step["name"], step["cut"]) for step in cfg.data.get("selection", [])),
        regions=tuple((name, region["cut"], tuple(region_observables(region)))
                      for name, region in cfg.regions.items()),
        observables=tuple((name, obs["expr"]) for name, obs in cfg.observables.items()),
        event_weight=cfg.data.get("event_weight") if is_mc else None,
        shape_variations=tuple((v.name, tuple((t, e.text) for t, e in v.overrides.items()))
                               for v in cfg.shape_variations(dataset)),
        weight_variations=tuple((v.name, v.factor.text) for v in cfg.weight_variations(dataset)),
        plugins=tuple((alias, plugin.source_path, plugin.sha256) for alias, plugin in cfg.plugins.items()),
        is_mc=is_mc,
        corrections=tuple(sorted(cfg.correction_files().items())),
        models=model_specs(cfg),
    )


class Namespace(Mapping):
    """Names visible to expressions: raw collections from ``events``, then defined objects.

    Values are computed on first use and cached, and an optional event mask is applied
    lazily, so unused collections are never read.
    """

    def __init__(self, events, values: dict | None = None, mask=None, parent: "Namespace | None" = None):
        self._events = events
        self._values = dict(values or {})
        self._lazy: dict[str, Callable[[], Any]] = {}
        self._mask = mask
        self._parent = parent

    def __getitem__(self, name):
        if name in self._values:
            return self._values[name]
        if name in self._lazy:
            value = self._lazy[name]()
        elif self._parent is not None:
            value = self._parent[name][self._mask]
        else:
            try:
                value = self._events[name]
            except (KeyError, AttributeError, ValueError) as err:
                raise KeyError(name) from err
        self._values[name] = value
        return value

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def define(self, name: str, value: Any) -> None:
        self._values[name] = value

    def define_lazy(self, name: str, compute: Callable[[], Any]) -> None:
        """Define ``name`` as ``compute()``, called when an expression first reads it."""
        self._lazy[name] = compute

    def masked(self, mask: Any) -> "Namespace":
        return Namespace(None, mask=mask, parent=self)


@dataclass
class ChunkResult:
    """Selected events of one chunk: columns per (variation, region), and a cutflow."""
    groups: dict = field(default_factory=dict)        # (variation, region) -> {column: ndarray}
    cutflow_events: dict = field(default_factory=dict)
    cutflow_weights: dict = field(default_factory=dict)


def _compile(plan: SelectionPlan):
    """Compile a plan's expressions once per process (workers included)."""
    from analysis.lang import corrections
    from analysis.lang import expr

    key = hash(plan)
    cached = _COMPILED.get(key)
    if cached is not None and cached[0] == plan:
        return cached[1]
    functions = {}
    for alias, source, sha256 in plan.plugins:
        functions.update(trusted_plugin(alias, source, sha256).functions())
    for alias, path in plan.corrections:
        functions.update(corrections.functions(alias, path))

    def c(text):
        return expr.compile_expression(text, plugins=functions) if text else None

    compiled = {
        "objects": [(name, source, c(where)) for name, source, where in plan.objects],
        "steps": [(name, c(cut)) for name, cut in plan.steps],
        "regions": [(name, c(cut), observables) for name, cut, observables in plan.regions],
        "observables": {name: c(text) for name, text in plan.observables},
        "event_weight": c(plan.event_weight),
        "shape": [(name, [(t, c(e)) for t, e in overrides]) for name, overrides in plan.shape_variations],
        "weights": [(name, c(text)) for name, text in plan.weight_variations],
        "models": [CompiledModel(spec, functions) for spec in plan.models],
    }
    _COMPILED[key] = (plan, compiled)
    return compiled


_COMPILED: dict = {}


def _as_numpy(values, dtype="float64"):
    import awkward as ak
    import numpy as np

    if not isinstance(values, ak.Array):
        array = np.asarray(values)
    elif values.layout.is_numpy:                  # nothing missing: fill_none would only cost time
        array = ak.to_numpy(values)
    else:
        array = ak.to_numpy(ak.fill_none(values, np.nan))
    return np.asarray(array, dtype=dtype)


def _mask(values, n: int):
    """A boolean per event (a constant cut such as ``True`` applies to every event)."""
    import numpy as np

    return np.broadcast_to(_as_numpy(values, dtype=bool), (n,)).copy()


def _apply_overrides(events, overrides) -> Namespace:
    """A namespace where ``Collection.field`` inputs are replaced by varied values."""
    import awkward as ak

    namespace = Namespace(events)
    for target, expression in overrides:
        collection, attr = target.split(".")
        varied = expression.evaluate(namespace)
        namespace.define(collection, ak.with_field(namespace[collection], varied, attr))
    return namespace


_WEIGHT = "\0event_weight"     # keys of nominal-pass values that no object name can clash with


def _affected(compiled, overrides) -> set:
    """Names whose values a shape variation changes: the overridden collections, the
    objects built from them, and (transitively) objects whose cuts read those."""
    affected = {target.split(".")[0] for target, _ in overrides}
    for name, source, where in compiled["objects"]:
        if source in affected or (where is not None and where.names & affected):
            affected.add(name)
    for model in compiled["models"]:
        if model.names & affected:
            affected.update(model.columns)
    return affected


def select_events(events: Any, plan: SelectionPlan) -> ChunkResult:
    """Run objects, selection, regions, observables and variations over one chunk.

    ``events``: a coffea NanoEvents array (or any mapping-like record of collections).
    A shape variation recomputes only what depends on the inputs it changes: objects and
    cuts that do not read them are taken from the nominal pass.

    >>> plan = plan_from_config(cfg, "ttbar")
    >>> result = select_events(events, plan)                   # 2000 generated ttbar events
    >>> sorted(result.groups)[:2], result.cutflow_events["four_jets"]
    ([('jes_up', '4j1b'), ('jes_up', '4j2b')], 429)
    """
    compiled = _compile(plan)
    result = ChunkResult()
    nominal: dict = {}
    for variation, overrides in compiled["shape"]:
        affected = None if variation == NOMINAL else _affected(compiled, overrides)
        one = _Pass(variation, nominal, affected, len(events))
        namespace = _apply_overrides(events, overrides)
        _define_objects(namespace, compiled["objects"], one)
        _define_models(namespace, compiled["models"], one)
        weight = _event_weight(namespace, compiled["event_weight"], one)
        mask = _apply_steps(namespace, compiled["steps"], weight, one, result)
        _fill_regions(namespace.masked(mask), mask, weight, compiled, one, result)
    return result


@dataclass(frozen=True)
class _Pass:
    """One shape variation's pass over a chunk (the nominal pass first)."""
    variation: str
    nominal: dict               # values of the nominal pass, by name (filled by the nominal pass)
    affected: set | None        # names the variation changes (None: this is the nominal pass)
    n_events: int

    @property
    def is_nominal(self) -> bool:
        return self.affected is None

    def reuse(self, name: str, names: AbstractSet[str]) -> bool:
        """Whether the value ``name``, which reads ``names``, is the nominal pass's."""
        return self.affected is not None and name in self.nominal and not (names & self.affected)


def _define_objects(namespace: Namespace, objects: list, one: _Pass) -> None:
    """Define each object in ``namespace``, reusing the nominal value when the variation leaves it alone."""
    for name, source, where in objects:
        names = {source} | (where.names if where is not None else set())
        if one.reuse(name, names):
            namespace.define(name, one.nominal[name])
            continue
        collection = namespace[source]
        value = keep(collection, where.evaluate(namespace)) if where is not None else collection
        namespace.define(name, value)
        if one.is_nominal:
            one.nominal[name] = value


def _define_models(namespace: Namespace, models: list, one: _Pass) -> None:
    """Define each model's output columns, computed when first read (inference runs at most
    once per pass, on every event of the chunk); a variation that leaves a model's inputs
    alone shares the nominal pass's outputs. The sessions load first, so that a model that
    cannot run (no CUDA for ``device: cuda``) fails the chunk with its own error."""
    for model in models:
        if one.is_nominal:
            model.session()
        key = f"\0model:{model.spec.name}"
        outputs = one.nominal[key] if one.reuse(key, model.names) else functools.cache(
            functools.partial(model.run, namespace))
        if one.is_nominal:
            one.nominal[key] = outputs
        for column in model.columns:
            namespace.define_lazy(column, functools.partial(_model_output, outputs, column))


def _model_output(outputs: Callable[[], dict], column: str) -> Any:
    return outputs()[column]


def _event_weight(namespace: Namespace, event_weight: Any, one: _Pass) -> Any:
    """The weight of every event (ones without ``event_weight``)."""
    import numpy as np

    if event_weight is None:
        weight = np.ones(one.n_events)
    elif one.reuse(_WEIGHT, event_weight.names):
        weight = one.nominal[_WEIGHT]
    else:
        weight = _as_numpy(event_weight.evaluate(namespace)) * np.ones(one.n_events)
    one.nominal.setdefault(_WEIGHT, weight)
    return weight


def _apply_steps(namespace: Namespace, steps: list, weight: Any, one: _Pass, result: ChunkResult) -> Any:
    """The mask of events passing every selection step; the nominal pass counts the cutflow."""
    import numpy as np

    mask = np.ones(one.n_events, dtype=bool)
    if one.is_nominal:
        _count(result, "preselected", mask, weight)
    for step, cut in steps:
        key = f"\0step:{step}"
        passed = one.nominal[key] if one.reuse(key, cut.names) else _mask(cut.evaluate(namespace), one.n_events)
        if one.is_nominal:
            one.nominal[key] = passed
        mask &= passed
        if one.is_nominal:
            _count(result, step, mask, weight)
    return mask


def _fill_regions(selected: Namespace, mask: Any, weight: Any, compiled: dict, one: _Pass,
                  result: ChunkResult) -> None:
    """The observable and weight columns of each region of the selected events, into ``result.groups``;
    weight variations apply to the nominal pass only."""
    import numpy as np

    selected_weight = weight[mask]
    factors = {}
    if one.is_nominal:
        for name, factor in compiled["weights"]:
            factors[name] = _as_numpy(factor.evaluate(selected)) * np.ones(len(selected_weight))
    for region, cut, observables in compiled["regions"]:
        in_region = _mask(cut.evaluate(selected), int(mask.sum()))
        if one.is_nominal:
            _count(result, region, _scatter(mask, in_region), weight)
        region_ns = selected.masked(in_region)
        columns, rows = _observable_columns(compiled["observables"], observables, region_ns, in_region)
        w = selected_weight[rows]
        columns[f"w_{NOMINAL}"] = w
        for name, factor in factors.items():
            columns[f"w_{name}"] = w * factor[rows]
        result.groups[(one.variation, region)] = columns


def _observable_columns(observables: dict, names, namespace, in_region):
    """``{obs_<name>: values}`` of a region and the selected-event index of each row.

    One row per event, unless an observable is jagged (one value per object, e.g.
    ``Jet.pt``): then the region has one row per object, per-event observables and the
    weights are repeated, and every jagged observable must have the same counts.
    """
    import awkward as ak
    import numpy as np

    values = {name: observables[name].evaluate(namespace) for name in names}
    jagged = {name: v for name, v in values.items() if isinstance(v, ak.Array) and v.ndim > 1}
    if not jagged:
        return {f"obs_{name}": _as_numpy(v) for name, v in values.items()}, in_region
    counts = {name: ak.to_numpy(ak.fill_none(ak.num(v, axis=1), 0)) for name, v in jagged.items()}
    first = next(iter(counts.values()))
    if any(not np.array_equal(c, first) for c in counts.values()):
        raise ValueError(f"jagged observables {sorted(jagged)} of one region differ in length per event")
    columns = {f"obs_{name}": _as_numpy(ak.flatten(v, axis=1)) if name in jagged else np.repeat(_as_numpy(v), first)
               for name, v in values.items()}
    return columns, np.repeat(np.flatnonzero(in_region), first)


def _scatter(outer_mask, inner_mask):
    import numpy as np

    full = np.zeros(len(outer_mask), dtype=bool)
    full[np.flatnonzero(outer_mask)[inner_mask]] = True
    return full


def _count(result: ChunkResult, step: str, mask, weight) -> None:
    result.cutflow_events[step] = result.cutflow_events.get(step, 0) + int(mask.sum())
    result.cutflow_weights[step] = result.cutflow_weights.get(step, 0.0) + float(weight[mask].sum())

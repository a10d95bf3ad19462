"""The ``models:`` section: what a model reads and writes, its checks, and its run on a chunk.

::

    models:
      assignment:
        file: models/agc_assignment.onnx        # relative to the config; inside its folder
        inputs:                                 # ONNX input name -> its features
          features: "agc_ml.assignment_features(jets, electrons, muons)"
        outputs:                                # ONNX output name -> column for expressions
          score: assignment_score
        device: cpu                             # or cuda (fails when CUDA is not there)

An input is one expression whose values hold the features on their last axis
(``[event][feature]`` or ``[event][candidate][feature]``), or a list of expressions, one
feature each (``[event]`` or ``[event][candidate]``). Each output becomes a column with
the rows' structure (``assignment_score[event][candidate]``) that the selection,
regions, observables and weights may read, like an object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analysis.config.model import AnalysisConfig
from analysis.errors import ExpressionError, InputError
from analysis.lang import expr
from analysis.ml import onnx_model
from analysis.names import bad_name


@dataclass(frozen=True)
class ModelSpec:
    """One model of a config, as plain picklable data (it ships to the executor's workers)."""
    name: str
    path: str                   # the resolved file
    sha256: str                 # of its content: what enters the key
    device: str = "cpu"
    inputs: tuple = ()          # ((ONNX input, expression text | (text, ...)), ...)
    outputs: tuple = ()         # ((ONNX output, column), ...)

    @property
    def columns(self) -> tuple:
        return tuple(column for _, column in self.outputs)

    def excerpt(self) -> dict:
        """What the model's columns depend on (for Select's key): its content, not its path.

        >>> spec = ModelSpec("m", "/x/m.onnx", "ab" * 32, inputs=(("x", ("ht", "met")),), outputs=(("y", "y"),))
        >>> spec.excerpt()["inputs"], spec.excerpt()["sha256"][:4], spec.excerpt()["onnxruntime"][:11]
        ({'x': ['ht', 'met']}, 'abab', 'onnxruntime')
        """
        return {"sha256": self.sha256, "device": self.device,
                "inputs": {name: list(text) if isinstance(text, tuple) else text for name, text in self.inputs},
                "outputs": dict(self.outputs), "onnxruntime": onnx_model.onnxruntime_version()}


def model_specs(cfg: AnalysisConfig) -> tuple:
    """The config's models as :class:`ModelSpec`, in config order (their files read and hashed).

    >>> [(spec.name, spec.columns) for spec in model_specs(load_config("configs/agc_ttbar_ml.yaml"))]
    [('assignment', ('assignment_score',))]
    """
    specs = []
    for name, spec in cfg.data.get("models", {}).items():
        path, data = _file(cfg, name)
        inputs = tuple((key, tuple(text) if isinstance(text, list) else text) for key, text in spec["inputs"].items())
        specs.append(ModelSpec(name, str(path), onnx_model.sha256(data), spec.get("device", "cpu"),
                               inputs, tuple(spec["outputs"].items())))
    return tuple(specs)


def _file(cfg: AnalysisConfig, name: str) -> tuple:
    """The model's resolved file and its bytes, checked (inside the config's folder, regular, bounded)."""
    text = cfg.data["models"][name]["file"]
    try:
        path = onnx_model.model_path(cfg.file_of("models", name, "file").parent, text)
        return path, onnx_model.read_model(path)
    except ValueError as err:
        raise cfg.error(str(err), "models", name, "file") from None


class CompiledModel:
    """A model ready to run on chunks: its input expressions compiled once per process.

    >>> import awkward as ak
    >>> ml = load_config("configs/agc_ttbar_ml.yaml")
    >>> model = CompiledModel(model_specs(ml)[0], ml.plugin_functions())
    >>> model.session().get_providers(), sorted(model.names)
    (['CPUExecutionProvider'], ['electrons', 'jets', 'muons'])
    >>> score = model.run({"jets": events.Jet, "electrons": events.Electron, "muons": events.Muon})["assignment_score"]
    >>> str(score.type), sorted(set(ak.num(score).tolist()))          # 12 assignments, or none
    ('2000 * var * float32', [0, 12])
    """

    def __init__(self, spec: ModelSpec, functions: dict):
        def compile_one(text: str) -> expr.Expression:
            return expr.compile_expression(text, plugins=functions)

        self.spec = spec
        self.inputs = [(name, [compile_one(t) for t in text] if isinstance(text, tuple) else compile_one(text))
                       for name, text in spec.inputs]
        self.names = frozenset().union(*(e.names for _, one in self.inputs
                                         for e in (one if isinstance(one, list) else [one])))
        self.columns = spec.columns

    def session(self) -> Any:
        """The model's ONNX Runtime session in this process, made (and its device checked) on first use."""
        return onnx_model.session(self.spec.path, self.spec.sha256, self.spec.device, what=f"model '{self.spec.name}'")

    def run(self, namespace: Any) -> dict:
        """``{column: values}`` of the model's outputs on the events of ``namespace``."""
        feeds, counts = {}, None
        for index, (name, expressions) in enumerate(self.inputs):
            matrix, these = self._features(name, expressions, namespace)
            if index and not onnx_model.same_rows(these, counts):
                raise InputError(f"model '{self.spec.name}': input '{name}' has other rows than "
                                 f"'{self.inputs[0][0]}' (every input needs the same candidates)")
            feeds[name], counts = matrix, these
        rows = len(next(iter(feeds.values())))
        values = onnx_model.infer(self.session(), feeds, [output for output, _ in self.spec.outputs], rows,
                                  what=f"model '{self.spec.name}'")
        return {column: onnx_model.as_column(value, counts) for column, value in zip(self.columns, values)}

    def _features(self, name: str, expressions: Any, namespace: Any):
        text = expressions.text if isinstance(expressions, expr.Expression) else " | ".join(e.text for e in expressions)
        try:
            if isinstance(expressions, list):
                return onnx_model.stack_features([e.evaluate(namespace) for e in expressions])
            return onnx_model.feature_matrix(expressions.evaluate(namespace))
        except ValueError as err:
            if isinstance(err, ExpressionError):
                raise
            raise ExpressionError(f"model '{self.spec.name}', input '{name}': {err}", expression=text,
                                  reason="bad model input") from None


def check_config(cfg: AnalysisConfig) -> None:
    """Each model's file is an ONNX model whose inputs and outputs are the ones the config
    names, each output one value per row, each column a new name; raises a located ConfigError.

    >>> check_config(load_config("configs/agc_ttbar_ml.yaml"))
    """
    columns: dict = {}
    objects = set(cfg.data.get("objects", {}))
    for name, spec in cfg.data.get("models", {}).items():
        problem = bad_name(name)
        if problem:
            raise cfg.error(problem, "models", name)
        path, data = _file(cfg, name)
        try:
            session = onnx_model.session(str(path), onnx_model.sha256(data), what="model file")
        except InputError as err:
            raise cfg.error(str(err).removeprefix("model file: "), "models", name, "file") from None
        _check_inputs(cfg, name, spec, session)
        _check_outputs(cfg, name, spec, session)
        for output, column in spec["outputs"].items():
            problem = _column_problem(column, objects, columns)
            if problem:
                raise cfg.error(problem, "models", name, "outputs", output)
            columns[column] = name


def _check_inputs(cfg: AnalysisConfig, name: str, spec: dict, session: Any) -> None:
    graph = {i.name: i for i in session.get_inputs()}
    for key, text in spec["inputs"].items():
        if key not in graph:
            raise cfg.error(f"the model has no input '{key}' (its inputs: {', '.join(graph)})", "models", name,
                            "inputs", key)
        node = graph[key]
        if node.type != "tensor(float)" or len(node.shape) != 2:
            raise cfg.error(f"the model's input '{key}' is {node.type} of shape {node.shape}; Heirloom feeds a float "
                            "matrix (rows x features)", "models", name, "inputs", key)
        if isinstance(text, list) and isinstance(node.shape[1], int) and node.shape[1] != len(text):
            raise cfg.error(f"the model's input '{key}' takes {node.shape[1]} features; {len(text)} expressions "
                            "are given", "models", name, "inputs", key)
    for key in graph:
        if key not in spec["inputs"]:
            raise cfg.error(f"the model's input '{key}' is not given (its inputs: {', '.join(graph)})",
                            "models", name, "inputs")


def _check_outputs(cfg: AnalysisConfig, name: str, spec: dict, session: Any) -> None:
    graph = {o.name: o for o in session.get_outputs()}
    for key in spec["outputs"]:
        if key not in graph:
            raise cfg.error(f"the model has no output '{key}' (its outputs: {', '.join(graph)})", "models", name,
                            "outputs", key)
        node = graph[key]
        shape = list(node.shape)
        per_row = len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)
        if not node.type.startswith("tensor(") or not per_row:
            raise cfg.error(f"the model's output '{key}' is {node.type} of shape {shape}; a column takes one value "
                            "per row (shape [N] or [N, 1])", "models", name, "outputs", key)


def _column_problem(column: str, objects: set, columns: dict) -> str | None:
    """Why ``column`` cannot name a model output in expressions, or None.

    >>> _column_problem("Jet", set(), {}), _column_problem("jets", {"jets"}, {})
    ("column 'Jet' must start with a lower-case letter (capitalised names are the input files' collections)", "column 'jets' is already an object")
    """
    if not column[:1].islower():
        return f"column '{column}' must start with a lower-case letter (capitalised names are the input files' collections)"
    if column in expr.RESERVED_NAMES:
        return f"column '{column}' is a reserved name (Python builtins, ak, np)"
    if column in objects:
        return f"column '{column}' is already an object"
    if column in columns:
        return f"column '{column}' is already an output of model '{columns[column]}'"
    return None


"""Train agc_assignment.onnx: a BDT that scores the jet-parton assignments of ttbar events.

The AGC's ML variant: in a selected event (one lepton, >= 4 jets) each of the 12
assignments of the four leading jets to (b of the hadronic top, b of the leptonic top,
W jet, W jet) gets the features of ``configs/plugins/agc_ml.py`` (the plugin the config
calls, so training and inference compute them with one code), and a classifier learns
which one is right. The events are the demo generator's ttbar (``analysis/io/generate.py``,
its own kinematics code) from a training seed of their own, with each jet's parton
remembered; the analysis's object selection and event selection are applied.

    python configs/models/make_agc_assignment.py    # rewrites configs/models/agc_assignment.onnx

It prints the validation accuracy of picking the right assignment with the highest score,
against 1/12 for a random pick. Seeds are fixed, so the file is the same on every run
(about a minute on one core).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import awkward as ak
import numpy as np

from analysis.io import generate

HERE = Path(__file__).resolve().parent
OUT = HERE / "agc_assignment.onnx"
SEED = 20240612                  # the training events' seed (the analysis uses others)
TRAIN_EVENTS, VALID_EVENTS = 60_000, 30_000
BLOCK = 10_000


def _plugin():
    """configs/plugins/agc_ml.py, the features' one definition."""
    spec = importlib.util.spec_from_file_location("agc_ml", HERE.parent / "plugins" / "agc_ml.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _block(seed: int, index: int) -> dict:
    """BLOCK ttbar events as generate._simulate_block makes them, plus each jet's parton:
    0 the hadronic top's b, 1 and 2 the W's quarks, 3 the leptonic top's b, -1 other jets."""
    spec = generate.process_spec("ttbar")
    rng = generate.rng(seed, generate.name_key("ttbar"), index)
    partons, is_b, jvalid, prompt, lvalid, _ = generate._HARD[spec.kind](spec, rng, BLOCK)
    jets, jvalid = generate._jets(spec, rng, partons, is_b, jvalid)
    leps, lvalid, is_mu = generate._leptons(spec, rng, prompt, lvalid)
    origin = np.full(jvalid.shape, -1)
    origin[:, :4] = [0, 1, 2, 3]                   # _ttbar_like's partons: b1 (hadronic top), q1, q2, b2
    order = np.argsort(-np.where(jvalid, jets["pt"], -np.inf), axis=1, kind="stable")    # as generate._jagged
    keep = np.take_along_axis(jvalid, order, 1)
    ele = {k: v for k, v in leps.items() if k not in ("tightId", "pfRelIso04_all")}
    ele["mass"] = np.full(lvalid.shape, 0.000511)
    mu = {k: v for k, v in leps.items() if k != "cutBased"}
    mu["mass"] = np.full(lvalid.shape, 0.10566)
    return {"Jet": generate._jagged("Jet", jets, jvalid),
            "origin": ak.unflatten(np.take_along_axis(origin, order, 1)[keep], jvalid.sum(1)),
            "Electron": generate._jagged("Electron", ele, lvalid & ~is_mu & (leps["pt"] > 7) & (np.abs(leps["eta"]) < 2.5)),
            "Muon": generate._jagged("Muon", mu, lvalid & is_mu & (leps["pt"] > 5) & (np.abs(leps["eta"]) < 2.4))}


def selected_candidates(plugin, first_block: int, n_events: int) -> tuple[np.ndarray, np.ndarray]:
    """Features (events, 12, n_features) and labels (events, 12) of the selected events
    (configs/agc_ttbar.yaml's objects; one lepton, >= 4 jets)."""
    features, labels = [], []
    for index in range(first_block, first_block + n_events // BLOCK):
        ev = _block(SEED, index)
        jet = ev["Jet"]
        good_jet = (jet.pt > 30) & (abs(jet.eta) < 2.4) & ((jet.jetId & 4) > 0)
        jets, origin = jet[good_jet], ev["origin"][good_jet]
        e, m = ev["Electron"], ev["Muon"]
        electrons = e[(e.pt > 30) & (abs(e.eta) < 2.1) & (e.cutBased == 4) & (e.sip3d < 4)]
        muons = m[(m.pt > 30) & (abs(m.eta) < 2.1) & m.tightId & (m.sip3d < 4) & (m.pfRelIso04_all < 0.15)]
        selected = ((ak.num(electrons) + ak.num(muons)) == 1) & (ak.num(jets) >= 4)
        x = plugin.assignment_features(jets[selected], electrons[selected], muons[selected])
        features.append(ak.to_numpy(x))
        parton = ak.to_numpy(origin[selected][:, :4])[:, plugin.PERMUTATIONS]        # (events, 12, 4)
        labels.append((parton[..., 0] == 0) & (parton[..., 1] == 3)
                      & (np.sort(parton[..., 2:], axis=-1) == [1, 2]).all(-1))
    return np.concatenate(features), np.concatenate(labels)


def train(features: np.ndarray, labels: np.ndarray):
    """A gradient-boosted tree classifier of right (1) and wrong (0) assignments, trained on
    the events that have a right one (seeded; scikit-learn's exact, single-threaded trees)."""
    from sklearn.ensemble import GradientBoostingClassifier

    has = labels.any(axis=1)
    x, y = features[has].reshape(-1, features.shape[-1]), labels[has].reshape(-1)
    return GradientBoostingClassifier(n_estimators=100, max_depth=3, learning_rate=0.1, random_state=SEED).fit(x, y)


def to_onnx(model, n_features: int, names: tuple) -> bytes:
    """The classifier as ONNX: input ``features`` (rows x n_features, float32), output
    ``score`` (one per row): the probability that the assignment is right."""
    import onnx
    from onnx import TensorProto, helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    proto = convert_sklearn(model, initial_types=[("features", FloatTensorType([None, n_features]))],
                            options={id(model): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    graph = proto.graph
    graph.name = "agc_assignment"                  # skl2onnx names it with a random UUID
    graph.initializer.append(helper.make_tensor("right_class", TensorProto.INT64, [], [1]))
    graph.node.append(helper.make_node("Gather", ["probabilities", "right_class"], ["score"], axis=1))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("score", TensorProto.FLOAT, [None]))
    proto.doc_string = "AGC ttbar jet-parton assignment score (configs/models/make_agc_assignment.py)"
    helper.set_model_props(proto, {"features": ",".join(names), "seed": str(SEED)})
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def accuracy(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(fraction of events with a right assignment where the best score picks it, the
    same over all selected events)."""
    has = labels.any(axis=1)
    right = labels[np.arange(len(labels)), scores.argmax(axis=1)]
    return float(right[has].mean()), float(right.mean())


def main() -> None:
    import onnxruntime

    plugin = _plugin()
    x_train, y_train = selected_candidates(plugin, 0, TRAIN_EVENTS)
    x_valid, y_valid = selected_candidates(plugin, TRAIN_EVENTS // BLOCK, VALID_EVENTS)
    model = train(x_train, y_train)
    OUT.write_bytes(to_onnx(model, x_train.shape[-1], plugin.FEATURES))
    session = onnxruntime.InferenceSession(str(OUT), providers=["CPUExecutionProvider"])
    scores = session.run(["score"], {"features": x_valid.reshape(-1, x_valid.shape[-1])})[0]
    scores = scores.reshape(y_valid.shape)
    sklearn_scores = model.predict_proba(x_valid.reshape(-1, x_valid.shape[-1]))[:, 1].reshape(y_valid.shape)
    matched, overall = accuracy(scores, y_valid)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB)")
    print(f"training: {len(y_train)} selected events, {y_train.any(axis=1).mean():.1%} with the right "
          "assignment among the 12 candidates")
    print(f"validation: {len(y_valid)} selected events; the best score picks the right assignment in "
          f"{matched:.1%} of the events that have one ({overall:.1%} of all); a random pick: {1 / 12:.1%}")
    print(f"ONNX vs scikit-learn scores: largest difference {np.abs(scores - sklearn_scores).max():.2g}, "
          f"highest score {scores.max():.6f}")


if __name__ == "__main__":
    main()

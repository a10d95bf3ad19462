"""Per-object masks (analysis/lang/jagged.py, ``keep``): the same array as awkward's
``collection[mask]`` (layout, values, class, behaviour) for every layout a selection meets,
on NanoEvents read lazily from a generated file, and through the expression language's
subscripts; masks it does not handle go to awkward unchanged."""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np
import pytest

from analysis.lang.expr import evaluate
from analysis.lang.jagged import keep


def assert_same(mine, theirs):
    assert type(mine) is type(theirs)
    assert mine.layout.form == theirs.layout.form
    assert mine.behavior is theirs.behavior
    assert ak.array_equal(mine, theirs)


def random_jets(seed: int, events: int = 2_000):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 7, events)                 # empty events too
    n = int(counts.sum())
    return ak.unflatten(ak.zip({"pt": rng.exponential(40.0, n).astype(np.float32), "eta": rng.normal(0, 2, n),
                                "jetId": rng.integers(0, 8, n).astype(np.int32)}), counts)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_collections_and_masks_give_awkwards_array(seed):
    jets = random_jets(seed)
    for mask in (jets.pt > 30, (jets.pt > 30) & (abs(jets.eta) < 2.4) & ((jets.jetId & 4) > 0),
                 jets.pt > 1e9, jets.pt >= 0):
        assert_same(keep(jets, mask), jets[mask])
        assert_same(keep(jets.pt, mask), jets.pt[mask])


def test_other_layouts_give_awkwards_array():
    jets = random_jets(4)
    kept = jets[jets.pt > 10]                           # a list of an indexed view (an object selection)
    assert type(kept.layout.content).__name__ == "IndexedArray"
    assert_same(keep(kept, kept.eta > 0), kept[kept.eta > 0])
    events = jets[ak.num(jets) >= 2]                    # an event selection: not a plain list, awkward's path
    assert_same(keep(events, events.pt > 30), events[events.pt > 30])
    tail = jets[500:]                                   # offsets that do not start at 0
    assert_same(keep(tail, tail.pt > 30), tail[tail.pt > 30])
    narrow = ak.Array(ak.contents.ListOffsetArray(ak.index.Index32(np.asarray(jets.layout.offsets, np.int32)),
                                                  jets.layout.content))
    assert_same(keep(narrow, narrow.pt > 30), narrow[narrow.pt > 30])
    optional = ak.Array([[1, None, 3], [None], []])
    assert_same(keep(optional, ak.Array([[True, False, True], [True], []])),
                optional[ak.Array([[True, False, True], [True], []])])
    nested = ak.Array([[[1, 2], [3]], [], [[4]]])
    assert_same(keep(nested, ak.Array([[True, False], [], [True]])), nested[ak.Array([[True, False], [], [True]])])


def test_masks_it_does_not_handle_go_to_awkward():
    jets = ak.Array([[{"pt": 40.0}, {"pt": 20.0}], [], [{"pt": 35.0}]])
    with_none = ak.Array([[True, None], [], [False]])                        # a mask with missing values
    assert keep(jets, with_none).tolist() == jets[with_none].tolist()
    shorter = ak.Array([[True], [], [True]])                                 # other counts: awkward decides
    assert keep(jets, shorter).tolist() == jets[shorter].tolist()
    assert keep(jets, "pt").tolist() == jets["pt"].tolist()                  # fields, integers, slices
    assert keep(jets, 0).tolist() == jets[0].tolist()
    flat = np.arange(5.0)
    assert np.array_equal(keep(flat, flat > 2), flat[flat > 2])             # numpy arrays


@pytest.fixture(scope="module")
def nanoevents(tmp_path_factory):
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    from analysis.io.generate import generate_file

    path = tmp_path_factory.mktemp("jagged") / "ttbar.root"
    generate_file(path, "ttbar", 5_000, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                # cross-references the generator does not write
        return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema,
                                           mode="virtual").events()


def test_lazy_nanoevents_keep_their_class_and_vector_behaviour(nanoevents, monkeypatch):
    import awkward._slicing

    jets = nanoevents.Jet
    mask = (jets.pt > 30) & (abs(jets.eta) < 2.4)
    theirs = jets[mask]
    with monkeypatch.context() as patch:            # the mask is never turned into indices by awkward
        patch.setattr(awkward._slicing, "_normalise_item_bool_to_int", lambda *a: pytest.fail("awkward's path"))
        mine = keep(jets, mask)
    assert_same(mine, theirs)
    assert type(mine).__name__ == "JetArray"
    assert ak.array_equal(mine.energy, theirs.energy)                          # vector's properties
    assert ak.array_equal(ak.firsts(mine).delta_r(ak.firsts(theirs)), ak.firsts(theirs).delta_r(ak.firsts(theirs)),
                          equal_nan=True)


def test_the_expression_languages_subscripts_use_it(nanoevents, monkeypatch):
    import analysis.lang.jagged as jagged

    ns = {"Jet": nanoevents.Jet}
    text = "Jet[(Jet.pt > 30) & (abs(Jet.eta) < 2.4)].pt"
    calls = []
    original = jagged.keep
    monkeypatch.setattr(jagged, "keep", lambda owner, key: calls.append(key) or original(owner, key))
    result = evaluate(text, ns)
    jets = nanoevents.Jet
    assert_same(result, jets[(jets.pt > 30) & (abs(jets.eta) < 2.4)].pt)
    assert any(isinstance(key, ak.Array) for key in calls)


def test_arithmetic_and_comparisons_give_awkwards_arrays():
    import operator

    from analysis.lang.jagged import elementwise

    jets = random_jets(5)
    pt, eta, ids = jets.pt, jets.eta, jets.jetId
    cases = [(operator.gt, pt, 30), (operator.mul, pt, 1.03), (operator.truediv, ids, 2), (operator.and_, ids, 4),
             (operator.sub, pt, eta), (operator.lt, np.abs(eta), 2.4), (abs, eta), (operator.neg, pt),
             (operator.and_, pt > 30, eta > 0), (np.maximum, pt, np.float32(50)), (operator.add, ids, True)]
    for op, *operands in cases:
        assert_same(elementwise(op)(*operands), op(*operands))
    head = jets[:1000]                                  # lists whose content runs past their end
    assert len(head.layout.content) > head.layout.offsets[-1]
    assert_same(elementwise(operator.gt)(head.pt, 30), head.pt > 30)
    kept = keep(jets, pt > 20)                          # the numbers of a selection (an indexed view)
    assert_same(elementwise(operator.add)(kept.pt, kept.eta), kept.pt + kept.eta)


def test_operands_it_does_not_handle_go_to_awkward():
    import operator

    from analysis.lang.jagged import elementwise

    jets = random_jets(6)
    per_event = np.arange(len(jets), dtype=np.float32)          # broadcast to every object of an event
    assert_same(elementwise(operator.gt)(jets.pt, per_event), jets.pt > per_event)
    other = random_jets(7)                                        # lists of other lengths: awkward's error
    with pytest.raises(ValueError):
        elementwise(operator.add)(jets.pt, other.pt)
    words = ak.Array([["a", "b"], [], ["c"]])
    assert elementwise(operator.eq)(words, "a").tolist() == (words == "a").tolist()
    assert elementwise(operator.add)(2, 3) == 5

import pytest

from common.utterance import Slot
from common.metrics import bootstrap_ci, dc_metrics, icner_metrics, semantic_errors

UTT = "wake me up at five am this week"
TIME, DATE = Slot("time", 14, 21), Slot("date", 22, 31)


def test_semer_counts_substitution_deletion_insertion_and_intent():
    # wrong intent (S), time with the wrong words (S), date missing (D), a person slot invented (I)
    errors, reference = semantic_errors("alarm_set", [TIME, DATE], "alarm_query",
                                        [Slot("time", 14, 18), Slot("person", 0, 4)])
    assert (errors, reference) == (4, 3)
    assert semantic_errors("alarm_set", [TIME, DATE], "alarm_set", [DATE, TIME]) == (0, 3)
    # the right span with the wrong type is one substitution, not a deletion plus an insertion
    assert semantic_errors("alarm_set", [TIME], "alarm_set", [Slot("date", 14, 21)]) == (1, 2)


def test_icner_metrics_against_hand_computed_numbers():
    examples = [(UTT, "alarm_set", [TIME, DATE], "alarm_query", [Slot("time", 14, 18), Slot("person", 0, 4)]),
                (UTT, "alarm_set", [TIME, DATE], "alarm_set", [TIME, DATE])]
    m = icner_metrics(examples, domains=["alarm", "alarm"], locales=["en-US", "en-US"], bootstrap=200)
    assert m["intent_accuracy"] == 0.5 and m["exact_match"] == 0.5
    assert m["slot_precision"] == 0.5 and m["slot_recall"] == 0.5 and m["slot_f1"] == 0.5
    assert m["slot_f1_spans"] == pytest.approx(m["slot_f1"])  # our span counts agree with seqeval
    assert m["semer"] == pytest.approx(4 / 6)
    assert m["per_slot_type"]["date"]["recall"] == 0.5 and m["per_slot_type"]["person"]["precision"] == 0.0
    assert m["per_domain"]["alarm"]["semer"] == pytest.approx(4 / 6)
    lo, hi = m["semer_ci95"]
    assert 0 <= lo <= 4 / 6 <= hi <= 4 / 3


def test_icner_metrics_without_any_slot_warn_nothing():
    """A domain whose dev utterances have no slots (MASSIVE has some): scores, and no NaN warning."""
    import warnings
    examples = [(UTT, "alarm_query", [], "alarm_query", []), (UTT, "alarm_query", [], "alarm_set", [])]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = icner_metrics(examples, bootstrap=0)
    assert m["exact_match"] == 0.5 and m["slot_f1"] == 0.0 and m["per_slot_type"] == {}


def test_dc_metrics_macro_f1_by_hand():
    gold = ["a", "a", "b", "c"]
    pred = ["a", "b", "b", "x"]  # "x" is a label never seen in training: just an error
    m = dc_metrics(gold, pred, bootstrap=0)
    assert m["accuracy"] == 0.5
    # F1: a = 2/3, b = 2/3, c = 0
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert m["per_domain_accuracy"] == {"a": 0.5, "b": 1.0, "c": 0.0}


def test_bootstrap_ci_contains_the_mean_and_narrows_with_more_data():
    import numpy as np
    rng = np.random.default_rng(0)
    small = rng.random(100) < 0.8
    large = rng.random(10000) < 0.8
    ci_small = bootstrap_ci({"c": small}, lambda s: s["c"] / 100)
    ci_large = bootstrap_ci({"c": large}, lambda s: s["c"] / 10000)
    assert ci_small[0] <= small.mean() <= ci_small[1]
    assert ci_large[1] - ci_large[0] < (ci_small[1] - ci_small[0]) / 5

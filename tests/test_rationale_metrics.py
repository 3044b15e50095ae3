"""ERASER-style rationale agreement: trapezoidal AUPRC, average precision, ROC-AUC, per document."""
import numpy as np
import pytest

from xaicore.faithfulness.rationale_metrics import average_precision, eraser_soft_token_scores, trapezoidal_auprc


def _docs(seed=0, n=25):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        T = int(rng.integers(2, 30))
        truth = rng.random(T) < 0.3
        scores = np.round(rng.random(T), 1)  # ties on purpose
        yield truth, scores


def test_matches_sklearn_eraser_convention():
    sk = pytest.importorskip("sklearn.metrics")
    docs = [d for d in _docs() if d[0].any()]
    for truth, scores in docs:
        p, r, _ = sk.precision_recall_curve(truth, scores)
        assert trapezoidal_auprc(truth, scores) == pytest.approx(sk.auc(r, p), abs=1e-12)
        assert average_precision(truth, scores) == pytest.approx(sk.average_precision_score(truth, scores), abs=1e-12)
    got = eraser_soft_token_scores(_docs())
    assert got["n_documents"] == len(docs)
    assert got["auprc"] == pytest.approx(np.mean([sk.auc(*sk.precision_recall_curve(t, s)[1::-1]) for t, s in docs]))
    both = [(t, s) for t, s in docs if not t.all()]
    assert got["roc_auc"] == pytest.approx(np.mean([sk.roc_auc_score(t, s) for t, s in both]))


def test_known_answers():
    truth = np.array([1, 0, 1, 0], dtype=bool)
    perfect = np.array([0.9, 0.1, 0.8, 0.2])
    assert trapezoidal_auprc(truth, perfect) == pytest.approx(1.0)
    assert average_precision(truth, perfect) == pytest.approx(1.0)
    # ranks 1 and 3 relevant: AP = (1 + 2/3) / 2; trapezoid differs from AP (not the same metric)
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    assert average_precision(truth, scores) == pytest.approx((1 + 2 / 3) / 2)
    # PR points (recall, precision): (0, 1) (.5, 1) (.5, .5) (1, 2/3) (1, .5): trapezoids .5 + .5 * (.5 + 2/3) / 2
    assert trapezoidal_auprc(truth, scores) == pytest.approx(0.5 + 0.5 * (0.5 + 2 / 3) / 2)
    assert trapezoidal_auprc(truth, scores) != pytest.approx(average_precision(truth, scores))
    assert np.isnan(eraser_soft_token_scores([(np.zeros(3, bool), np.ones(3))])["auprc"])


def test_chance_levels_uniform_and_random_scores():
    """What a score map that knows nothing gets (the chance levels quoted beside Table 2): all tokens tied
    leave one PR point (recall 1, precision p = |R|/T), so the trapezoid to (0, 1) is (1 + p) / 2, far above
    AP = p; i.i.d. random scores give AUPRC ~ AP ~ p and ROC-AUC ~ 0.5."""
    truth = np.zeros(1000, dtype=bool)
    truth[::4] = True  # p = 0.25
    tied = np.ones(1000)
    assert trapezoidal_auprc(truth, tied) == pytest.approx((1 + 0.25) / 2)
    assert average_precision(truth, tied) == pytest.approx(0.25)
    assert eraser_soft_token_scores([(truth, tied)])["roc_auc"] == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    rand = eraser_soft_token_scores([(truth, rng.random(1000)) for _ in range(20)])
    assert rand["auprc"] == pytest.approx(0.25, abs=0.02)
    assert rand["avg_precision"] == pytest.approx(0.25, abs=0.02)
    assert rand["roc_auc"] == pytest.approx(0.5, abs=0.02)

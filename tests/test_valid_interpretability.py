"""Validation-side interpretability metrics of the classifier trainable (issue 19, item 4): ``valid/corr``,
``valid/corr_pooled`` and ``valid/rationale_*`` every epoch, ``best/valid_*`` at the selected epoch, so that
model selection never reads test data.

Known answers: with the validation and the test split the same file, ``best/valid_*`` equals ``test/*`` (the
test metrics are those of the selected epoch's weights); ``valid/corr`` equals a brute-force per-sentence
Pearson (one sentence at a time, no padding, plain autograd) and ``valid/rationale_auprc`` sklearn's trapezoidal
PR area per document (ERASER's convention), both on the selected weights; ``best/valid_corr`` is the
``valid/corr`` of the epoch the selection metric picked, also after a resume and in what MLflow is sent.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from sweeps.launch.preflight import check_trial_configs
from sweeps.spec.parse import load_spec
from trainables import TRAINABLES
from trainables.classifier.metrics import METRICS, VALID_INTERPRETABILITY
from trainables.classifier.trial import run_trial, train_classifier
from trainables.loop_metrics import best_metric, split_metric
from xaicore.data.batching import eval_batches
from xaicore.data.synthetic import synthetic_splits
from xaicore.metrics import attention_and_gradient_importance, gradient_importance
from xaicore.models.lstm_attention import AttentionLSTMClassifier, AttentionLSTMConfig
from xaicore.models.protocol import forward_batch
from xaicore.types import Batch

TINY = dict(dataset="synthetic", synthetic_size=160, epochs=3, batch_size=32, embedding_dim=16, hidden_dim=16,
            attention_dim=16, heatmaps=0)
VALID_KEYS = ("corr", "corr_pooled", "rationale_auprc", "rationale_avg_precision", "rationale_roc_auc")
REPO = Path(__file__).resolve().parents[1]


def collect():
    reports = []
    return reports, lambda metrics, checkpoint: reports.append((dict(metrics), checkpoint))


def selected_epochs(history, selection="valid/f1"):
    """The epoch the running selection picks after each epoch (brute force: the last strict improvement,
    the first epoch always counting, as :class:`xaicore.training.Trainer` selects)."""
    out, best, chosen = [], None, None
    for h in history:
        value = h[selection]
        if best is None or (value == value and (best != best or value > best)):
            best, chosen = value, h["epoch"]
        out.append(chosen)
    return out


def _write_tsv(path: Path, data) -> None:
    rows = ["text\tlabel\trationale"]
    rows += [f"{t}\t{y}\t{' '.join(str(i) for i in r)}" for t, y, r in zip(data.texts, data.labels, data.rationales)]
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def same_split_files(tmp_path_factory):
    """``train.tsv`` and ``dev.tsv`` (with word-index rationales) of the synthetic task: a config with
    ``valid_split: dev`` and ``test_split: dev`` validates and tests on the same data."""
    root = tmp_path_factory.mktemp("same-split")
    parts = synthetic_splits(3, n_train=160, n_dev=48, n_test=8)
    _write_tsv(root / "train.tsv", parts["train"])
    _write_tsv(root / "dev.tsv", parts["dev"])
    return root


def same_split_config(root: Path, **changes):
    return {**TINY, "dataset": str(root / "{split}.tsv"), "columns": {"rationale": "rationale"},
            "valid_split": "dev", "test_split": "dev", **changes}


# ----------------------------------------------------------------------------- xaicore: one pass per batch
def test_one_pass_attention_and_importance_equal_the_reference_passes():
    """The fused forward + backward gives the attention of a plain forward and :func:`gradient_importance`
    (three forwards: prediction, attention, gradient) exactly, padding and one-token rows included."""
    torch.manual_seed(0)
    model = AttentionLSTMClassifier(AttentionLSTMConfig(vocab_size=40, embedding_dim=8, hidden_dim=6, attention_dim=5,
                                                        dropout=0.3))
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([7, 5, 1, 3])
    mask = torch.arange(7)[None, :] < lengths[:, None]
    batch = Batch(input_ids=torch.randint(2, 40, (4, 7), generator=g).masked_fill(~mask, 0), attention_mask=mask)
    model.eval()
    attn, tau = attention_and_gradient_importance(model, batch)
    with torch.no_grad():
        torch.testing.assert_close(attn, forward_batch(model, batch).attention, rtol=0, atol=0)
    torch.testing.assert_close(tau, gradient_importance(model, batch), rtol=1e-6, atol=1e-7)
    assert (tau[~mask] == 0).all() and torch.allclose(tau.sum(1), torch.ones(4))
    assert all(p.grad is None for p in model.parameters())


# ----------------------------------------------------------------------------- known answers
def test_best_valid_metrics_equal_test_metrics_when_valid_and_test_are_the_same_data(same_split_files):
    """``test/*`` is measured on the selected epoch's weights, ``best/valid_*`` is ``valid/*`` of that epoch: on
    the same data, computed the same way, they are the same numbers (Corr., rationale scores, F1)."""
    reports, report = collect()
    final = run_trial(same_split_config(same_split_files, epochs=4, lr=3e-3), report).metrics
    assert final["best_epoch"] < 4, "the test needs a selected epoch before the last (its weights give test/*)"
    for key in VALID_KEYS:
        assert final[best_metric("valid", key)] == pytest.approx(final[split_metric("test", key)], abs=1e-12), key
    assert final["valid/rationale_documents"] == final["test/rationale_documents"] > 0
    picked = reports[final["best_epoch"] - 1][0]
    assert picked["valid/f1"] == pytest.approx(final["test/f1"], abs=1e-12)
    assert picked["valid/corr"] == final["best/valid_corr"]


def _one_sentence_batches(setup, split):
    """Every example of ``split`` alone in its batch (no padding), in dataset order."""
    return list(eval_batches(setup.encoded[split], setup.encoder, batch_size=1, sort=False))


def _brute_force_corr(model, batches):
    """Per sentence: attention of a plain forward; tau = |sum_e e * d p_yhat / d e| with the attention detached,
    normalised; np.corrcoef over the sentence's tokens; the mean over sentences with >= 2 tokens and a
    defined Pearson, and one Pearson over all their tokens."""
    model.eval()
    per, all_a, all_t = [], [], []
    for b in batches:
        m = b.content_mask[0]
        if int(m.sum()) < 2:
            continue
        with torch.no_grad():
            out = forward_batch(model, b)
        a = out.attention[0][m].double().numpy()
        yhat = int(out.logits[0].argmax())
        emb = model.embed(b.input_ids).detach().requires_grad_(True)
        p = torch.softmax(model(b.input_ids, b.attention_mask, inputs_embeds=emb, detach_attention=True).logits, -1)
        (grad,) = torch.autograd.grad(p[0, yhat], emb)
        t = (emb * grad).sum(-1)[0][m].abs().double().detach().numpy()
        t = t / t.sum()
        all_a.append(a)
        all_t.append(t)
        if a.std() > 0 and t.std() > 0:
            per.append(np.corrcoef(a, t)[0, 1])
    return float(np.mean(per)), float(np.corrcoef(np.concatenate(all_a), np.concatenate(all_t))[0, 1])


def test_valid_corr_equals_a_brute_force_per_sentence_pearson_of_the_selected_weights():
    trained = train_classifier({**TINY, "epochs": 2}, lambda *_: None)
    mean, pooled = _brute_force_corr(trained.setup.model, _one_sentence_batches(trained.setup, "valid"))
    assert trained.final["best/valid_corr"] == pytest.approx(mean, abs=1e-6)
    assert trained.final["best/valid_corr_pooled"] == pytest.approx(pooled, abs=1e-6)
    assert trained.final["best/valid_corr"] != pytest.approx(trained.final["test/corr"], abs=1e-4)  # other data


def test_valid_rationale_scores_equal_sklearn_per_document_on_the_selected_weights():
    """ERASER soft-token convention: per document over its real tokens, trapezoidal PR area (sklearn
    ``auc(recall, precision)`` over ``precision_recall_curve``, not average precision), averaged."""
    sk = pytest.importorskip("sklearn.metrics")
    trained = train_classifier({**TINY, "epochs": 2}, lambda *_: None)
    model = trained.setup.model.eval()
    auprc, ap, auc = [], [], []
    for b in _one_sentence_batches(trained.setup, "valid"):
        m = b.content_mask[0]
        truth = b.rationale_mask[0][m].numpy()
        with torch.no_grad():
            scores = forward_batch(model, b).attention[0][m].double().numpy()
        if not truth.any():
            continue
        precision, recall, _ = sk.precision_recall_curve(truth, scores)
        auprc.append(sk.auc(recall, precision))
        ap.append(sk.average_precision_score(truth, scores))
        if not truth.all():
            auc.append(sk.roc_auc_score(truth, scores))
    final = trained.final
    assert final["valid/rationale_documents"] == len(auprc) > 10
    assert final["best/valid_rationale_auprc"] == pytest.approx(np.mean(auprc), abs=1e-9)
    assert final["best/valid_rationale_avg_precision"] == pytest.approx(np.mean(ap), abs=1e-9)
    assert final["best/valid_rationale_roc_auc"] == pytest.approx(np.mean(auc), abs=1e-9)
    assert final["best/valid_rationale_auprc"] != pytest.approx(final["best/valid_rationale_avg_precision"], abs=1e-4)


# ----------------------------------------------------------------------------- every epoch, selection, resume
#: a run whose selection lags: valid F1 drops after epoch 1 and passes it again at epoch 5 only (selected epochs
#: 1, 1, 1, 1, 5; the tests check that they lag rather than trust these numbers)
LAGGING = {**TINY, "epochs": 5, "lr": 0.01}


def _check_best_follows_the_selection(history, selection="valid/f1", keys=VALID_KEYS):
    chosen = selected_epochs(history, selection)
    by_epoch = {h["epoch"]: h for h in history}
    for h, sel in zip(history, chosen):
        for key in keys:
            assert not math.isnan(h[split_metric("valid", key)]), (h["epoch"], key)
            assert h[best_metric("valid", key)] == by_epoch[sel][split_metric("valid", key)], (h["epoch"], key)
    return chosen


def test_valid_metrics_every_epoch_and_best_at_the_selected_epoch():
    reports, report = collect()
    result = run_trial(LAGGING, report)
    history = [m for m, _ in reports]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    chosen = _check_best_follows_the_selection(history)
    assert any(sel != h["epoch"] for h, sel in zip(history, chosen)), "the test needs a lagging selection"
    assert chosen[-1] == result.metrics["best_epoch"]
    # the history (curves) holds the same values; the final report adds the test metrics to the last epoch
    assert [{k: r[k] for k in h} for h, r in zip(result.history, history)] == result.history


def test_every_classification_metric_is_reported_at_the_epoch_another_selection_metric_picks():
    """``best/valid_f1`` under ``selection_metric: roc_auc`` (the SST specs' reference setup with an F1 objective,
    e.g. sweeps/attention_vat_pareto_sst.yaml) is ``valid/f1`` of the epoch dev ROC-AUC selects, every epoch:
    Tune's strict metric check stopped the whole sweep when it was missing. The selection metric's own
    ``best/*`` stays the running best."""
    reports, report = collect()
    result = run_trial({**LAGGING, "selection_metric": "roc_auc"}, report)
    history = [m for m, _ in reports]
    keys = ("accuracy", "f1", "f1_pos", "roc_auc") + VALID_KEYS
    chosen = _check_best_follows_the_selection(history, "valid/roc_auc", keys)
    assert any(sel != h["epoch"] for h, sel in zip(history, chosen)), "the test needs a lagging selection"
    assert chosen[-1] == result.metrics["best_epoch"]
    running = [max(h["valid/roc_auc"] for h in history[:i + 1]) for i in range(len(history))]
    assert [h["best/valid_roc_auc"] for h in history] == running
    declared_best = {m for m in METRICS if m.startswith("best/")}
    assert declared_best <= set(history[-1]), sorted(declared_best - set(history[-1]))


def test_corr_off_reports_no_valid_corr_but_still_rationale_scores():
    reports, report = collect()
    run_trial({**TINY, "epochs": 1, "correlation": False}, report)
    final = reports[-1][0]
    assert not {"valid/corr", "best/valid_corr", "test/corr"} & set(final)
    assert 0 <= final["best/valid_rationale_auprc"] <= 1


def test_data_without_rationales_reports_no_rationale_scores(tmp_path):
    parts = synthetic_splits(0, n_train=96, n_dev=32, n_test=32)
    for split in ("train", "dev", "test"):
        d = parts[split]
        (tmp_path / f"{split}.tsv").write_text(
            "text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in zip(d.texts, d.labels)))
    reports, report = collect()
    run_trial({**TINY, "epochs": 1, "dataset": str(tmp_path / "{split}.tsv"), "valid_split": "dev"}, report)
    final = reports[-1][0]
    assert not [k for k in final if "rationale" in k]
    assert -1 <= final["best/valid_corr"] <= 1


class _FakeRun:
    """What :class:`trainables.ray_trainable.RayTrial` sends to MLflow: metrics per step."""

    run_id = "run0"

    def __init__(self):
        self.logged = {}

    def log_metrics(self, metrics, step):
        assert step not in self.logged, f"step {step} logged twice"
        self.logged[step] = dict(metrics)

    def log_artifacts(self, files, root, timeout=None):
        pass

    def flush(self, timeout=None):
        pass


def _ray_run(config, tmp_path, monkeypatch, resume=None, stop_after=None):
    import trainables.ray_trainable as rt
    from trainables.protocol import run_body

    checkpoints = {}

    def tune_report(result, checkpoint, step):
        checkpoints[step] = checkpoint
        if stop_after is not None and step == stop_after:
            raise SystemExit  # Tune stops the trial (as on an interruption)

    monkeypatch.setattr(rt, "_tune_report", tune_report)
    run = _FakeRun()
    trainable = TRAINABLES["classifier"].trainable
    try:
        run_body(trainable, trainable.parse_config(config), rt.RayTrial(run, resume=resume, out_dir=tmp_path))
    except SystemExit:
        pass
    return run.logged, checkpoints


def test_resumed_ray_trial_logs_best_valid_metrics_once_per_epoch_to_mlflow(tmp_path, monkeypatch):
    """Interrupted after epoch 2 and resumed from that checkpoint: MLflow gets epochs 1-2 from the first
    attempt and 3-5 from the second, each with valid/* and best/valid_* equal to an uninterrupted run's,
    also where the resumed attempt's selected epoch is one the first attempt trained."""
    from xaicore.state_io import load_state_file

    full, _ = _ray_run(LAGGING, tmp_path / "full", monkeypatch)
    first, checkpoints = _ray_run(LAGGING, tmp_path / "first", monkeypatch, stop_after=2)
    assert sorted(first) == [1, 2]
    torch.save(checkpoints[2], tmp_path / "state.pt")
    second, _ = _ray_run(LAGGING, tmp_path / "second", monkeypatch,
                         resume=load_state_file(tmp_path / "state.pt", what="trial checkpoint"))
    assert sorted(second) == [3, 4, 5]
    logged = {**first, **second}
    keys = [split_metric("valid", k) for k in VALID_KEYS] + [best_metric("valid", k) for k in VALID_KEYS]
    for step in range(1, 6):
        assert {k: logged[step][k] for k in keys} == {k: full[step][k] for k in keys}, step
    chosen = _check_best_follows_the_selection([logged[s] for s in range(1, 6)])
    assert chosen[2] <= 2, "the test needs a resumed epoch whose selected epoch is from the first attempt"


def test_resumed_history_rebuilds_best_valid_metrics():
    reports, report = collect()
    full = run_trial(LAGGING, report)
    resumed = run_trial(LAGGING, lambda *_: None, resume=reports[1][1])
    keys = [best_metric("valid", k) for k in VALID_KEYS] + ["valid/corr"]
    assert [{k: h[k] for k in keys} for h in resumed.history] == [{k: h[k] for k in keys} for h in full.history]


# ----------------------------------------------------------------------------- declarations and specs
def test_every_valid_interpretability_name_is_declared():
    for key in VALID_INTERPRETABILITY:
        assert split_metric("valid", key) in METRICS and best_metric("valid", key) in METRICS
    assert "valid/rationale_documents" in METRICS
    assert set(VALID_KEYS) == set(VALID_INTERPRETABILITY)


@pytest.mark.parametrize("name, metric", [("attention_vat_sst.yaml", "best/valid_corr"),
                                          ("attention_vat_sst_table1.yaml", "best/valid_corr"),
                                          ("attention_vat_sst_table1.yaml", "best/valid_corr_pooled"),
                                          ("rationale_eraser.yaml", "best/valid_rationale_auprc")])
def test_attention_vat_specs_can_select_on_validation_interpretability(name, metric, monkeypatch):
    spec = load_spec(REPO / "sweeps" / name, known_trainables=list(TRAINABLES))
    assert spec.config.get("correlation", True)  # the specs measure Corr.: best/valid_corr is reported
    monkeypatch.chdir(REPO)
    problems = check_trial_configs(dataclasses.replace(spec, metric=metric))
    if problems and all("../shared/data/" in p for p in problems):
        pytest.skip("local data ../shared/data is not next to this checkout")
    assert problems == []


def test_no_shipped_spec_selects_on_test_data():
    """The top-level metric of every shipped spec (what the searcher, ASHA, ``best`` and warm starts rank on)
    is never a ``test/*`` metric (nor a ``fixed/test_*`` one)."""
    # evaluate_*.yaml are the evaluation specs of ``xaisweep evaluate`` (no objective: tests/test_evaluate.py)
    paths = [p for p in sorted((REPO / "sweeps").glob("*.yaml")) if not p.name.startswith("evaluate_")]
    assert len(paths) > 20
    for path in paths:
        spec = load_spec(path, known_trainables=list(TRAINABLES))
        metrics = [m for m, _ in spec.objectives]
        assert not [m for m in metrics if m.startswith(("test/", "fixed/test_"))], path.name


def _spec(tmp_path, text):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return load_spec(path, known_trainables=list(TRAINABLES))


@pytest.mark.parametrize("trainable", ["classifier", "faithfulness"])
def test_selecting_on_corr_with_correlation_off_is_refused_before_ray(tmp_path, trainable):
    base = f"name: x\ntrainable: {trainable}\nmetric: best/valid_corr\nmode: max\n"
    off = check_trial_configs(_spec(tmp_path, base + "config: {dataset: synthetic, correlation: false}\n"))
    assert off == ["metric: 'best/valid_corr' is measured only with correlation: true "
                   "(the config sets correlation: false)"]
    some = check_trial_configs(_spec(tmp_path, base + "config: {dataset: synthetic}\nsearch_space:\n"
                                     "  correlation: {type: choice, values: [true, false]}\n"))
    assert len(some) == 1 and some[0].endswith("(with correlation=False)")
    assert check_trial_configs(_spec(tmp_path, base + "config: {dataset: synthetic}\n")) == []
    # what correlation: false does not touch stays selectable
    rationale = base.replace("best/valid_corr", "best/valid_rationale_auprc")
    assert check_trial_configs(_spec(tmp_path, rationale + "config: {dataset: synthetic, correlation: false}\n")) == []

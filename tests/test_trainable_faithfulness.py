"""The faithfulness trial: every method x metric reaches the report, on the synthetic task."""
import pytest

from trainables import TRAINABLES
from trainables.faithfulness.config import parse_config
from trainables.faithfulness.trial import run_trial
from trainables.protocol import BOOKKEEPING_KEYS

TINY = dict(synthetic_size=240, epochs=2, embedding_dim=16, hidden_dim=16, attention_dim=16, eval_examples=48,
            ig_steps=8, tvd_permutations=10, weak_epochs=2, weak_train_examples=240, heatmaps=2)


def test_metric_names_carry_a_non_default_cancel_out():
    from trainables.faithfulness.metrics import faith_metric_name

    assert faith_metric_name("deletion", "saliency") == "faith/deletion/saliency"
    assert faith_metric_name("deletion", "saliency", "zero_vector") == "faith/deletion.zero_vector/saliency"
    assert faith_metric_name("weak_f1", "saliency", "zero_vector") == "faith/weak_f1/saliency"
    assert faith_metric_name("weak_f1", "leave_one_out", "delete") == "faith/weak_f1/leave_one_out.delete"
    assert faith_metric_name("weak_f1_abs", "input_x_gradient", "delete") == "faith/weak_f1_abs/input_x_gradient"
    metrics = set(TRAINABLES["faithfulness"].metrics)
    assert "faith/sufficiency.attention_mask/attention" in metrics
    assert "faith/kendall_tau/saliency__leave_one_out.zero_vector" in metrics
    # the weak learner's two rows (signed / absolute maps) are declared for every method
    for method in ("saliency", "saliency_signed", "input_x_gradient", "integrated_gradients", "attention"):
        assert {f"faith/weak_f1/{method}", f"faith/weak_f1_abs/{method}"} <= metrics


def test_non_default_cancel_out_reaches_the_metric_names():
    reports = []
    run_trial({**TINY, "epochs": 1, "methods": ["attention", "leave_one_out"], "faith_metrics": ["deletion", "eraser"],
               "cancel_out": "attention_mask", "eval_examples": 16}, lambda m, c: reports.append(m))
    final = reports[-1]
    for name in ("faith/deletion.attention_mask/attention", "faith/comprehensiveness.attention_mask/attention",
                 "faith/deletion.attention_mask/leave_one_out.attention_mask"):
        assert name in final and final[name] == final[name]
    assert "faith/deletion/attention" not in final
    # the names of a non-default cancel-out are declared too (the default's: tests/test_trainable_contract.py)
    assert set(final) <= set(TRAINABLES["faithfulness"].metrics) | set(BOOKKEEPING_KEYS)


def test_every_metric_of_every_method_is_reported(tmp_path):
    reports = []
    result = run_trial(TINY, lambda m, c: reports.append(m), out_dir=tmp_path)
    final = reports[-1]
    methods = ("saliency", "integrated_gradients", "input_x_gradient", "attention")
    for method in methods:
        for metric in ("deletion", "weak_f1", "weak_f1_abs", "shuffle_tvd", "comprehensiveness", "sufficiency",
                       "rationale_auprc", "rationale_roc_auc"):
            assert f"faith/{metric}/{method}" in final, (metric, method)
        assert 0 < final[f"faith/deletion/{method}"] <= 1
    assert "faith/weak_f1/uniform" in final and "faith/weak_f1/random" in final
    # attention and saliency maps are non-negative: |map| is the same map, so the same learner and F1
    for method in ("attention", "saliency"):
        assert final[f"faith/weak_f1_abs/{method}"] == final[f"faith/weak_f1/{method}"]
    assert "faith/kendall_tau/input_x_gradient__integrated_gradients" in final
    assert final["faith/ig_passes_per_batch"] == 1  # the default budget holds all 8 steps of a 48-example batch
    names = {p.name for p in result.artifacts}
    assert {"faithfulness_table.md", "faithfulness_table.csv", "attribution_heatmaps.html",
            "weak_learner_valid_loss.png"} <= names
    table = (tmp_path / "faithfulness_table.md").read_text()
    assert table.splitlines()[0].startswith("| method | deletion | weak_f1 | weak_f1_abs | shuffle_tvd")


def test_saved_model_is_evaluated_without_training(tmp_path):
    from trainables.classifier.trial import run_trial as train

    train({k: v for k, v in TINY.items() if k in ("synthetic_size", "epochs", "embedding_dim", "hidden_dim",
                                                   "attention_dim")} | {"save_model": True, "heatmaps": 0},
          lambda m, c: None, out_dir=tmp_path)
    reports = []
    run_trial({**TINY, "model_checkpoint": str(tmp_path / "model" / "best_model.pt"),
               "methods": ["attention"], "faith_metrics": ["deletion"]}, lambda m, c: reports.append(m))
    assert len(reports) == 1 and "faith/deletion/attention" in reports[0]


@pytest.mark.parametrize("changes, message", [
    (dict(methods=["lime"]), "methods: unknown ['lime']"),
    (dict(faith_metrics=["vibes"]), "faith_metrics: unknown ['vibes']"),
    (dict(ig_method="simpson"), "ig_method"),
    (dict(cancel_out="mask_token"), "cancel_out: 'mask_token' needs a model with a mask token"),
    (dict(cancel_out="uniform_marginalize"), "cancel_out: 'uniform_marginalize' needs a model with a mask token"),
    (dict(cancel_out="blank"), "cancel_out: must be one of"),
    (dict(tvd_permutations=0), "tvd_permutations: must be >= 1"),
    (dict(ig_internal_batch_size="big"), "ig_internal_batch_size: must be auto, an integer >= 1 or null"),
    (dict(ig_internal_batch_size=0), "ig_internal_batch_size: must be auto, an integer >= 1 or null"),
    (dict(ig_memory_budget_mb=0), "ig_memory_budget_mb: must be > 0"),
])
def test_bad_config(changes, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config({**TINY, **changes})


def test_evaluated_test_examples_are_a_seeded_subset_not_the_first_n():
    """A test file sorted by label (local IMDB and 20News, hub IMDB): the first eval_examples would all be one
    class; the evaluated subset has both, is the same for every seed (data_seed draws it) and in file order."""
    from types import SimpleNamespace

    from trainables.faithfulness.evaluate import eval_test_batches
    from xaicore.data.batching import batches
    from xaicore.data.loading import TextDataset
    from xaicore.data.vocab import WordEncoder, WordVocab

    texts = tuple(f"bad film {i}" for i in range(300)) + tuple(f"good film {i}" for i in range(300))
    test = TextDataset(texts=texts, labels=(0,) * 300 + (1,) * 300)
    encoder = WordEncoder(WordVocab.build(texts), max_length=8)
    setup = SimpleNamespace(splits=SimpleNamespace(test=test), encoder=encoder,
                            test_batches=list(batches(test, encoder, batch_size=256, shuffle=False, seed=0)))

    def labels(cfg):
        return [int(y) for b in eval_test_batches(setup, cfg) for y in b.labels]

    cfg = parse_config({"eval_examples": 100, "seed": 0, "data_seed": 0})
    got = labels(cfg)
    assert len(got) == 100 and 20 < sum(got) < 80  # both classes (the first 100 are all label 0)
    assert labels(parse_config({"eval_examples": 100, "seed": 5, "data_seed": 0})) == got
    assert got == sorted(got)  # file order: the label-0 examples first
    whole = parse_config({"eval_examples": 600})
    assert labels(whole) == list(test.labels)  # not larger than eval_examples: the whole split, in order


def test_ig_auto_batching_is_the_default_and_reports_its_passes():
    """ig_internal_batch_size: auto (the default) fits the steps of a pass into ig_memory_budget_mb; the mean
    passes per evaluated batch is reported: 1 under the default budget (test_every_metric_of_every_method_is_reported),
    one step per pass (ig_steps passes) under a budget smaller than one step."""
    cfg = parse_config({})
    assert cfg.ig_internal_batch_size == "auto" and cfg.ig_memory_budget_mb == 1024
    assert parse_config({"ig_internal_batch_size": "64"}).ig_internal_batch_size == 64
    assert parse_config({"ig_internal_batch_size": None}).ig_internal_batch_size is None
    reports = []
    run_trial({**TINY, "epochs": 1, "methods": ["integrated_gradients"], "faith_metrics": ["deletion"],
               "eval_examples": 16, "ig_memory_budget_mb": 0.001}, lambda m, c: reports.append(m))
    final = reports[-1]
    assert final["faith/ig_passes_per_batch"] == TINY["ig_steps"]
    assert "faith/ig_passes_per_batch" in TRAINABLES["faithfulness"].metrics

"""The faithfulness trial: every method x metric reaches the report, on the synthetic task."""
import pytest

from trainables import ATTRIBUTION_METHOD_NAMES, TRAINABLES
from trainables.faithfulness import parse_config, run_trial
from xaicore.attribution import ATTRIBUTION_METHODS

TINY = dict(synthetic_size=240, epochs=2, embedding_dim=16, hidden_dim=16, attention_dim=16, eval_examples=48,
            ig_steps=8, tvd_permutations=10, weak_epochs=2, weak_train_examples=240, heatmaps=2)


def test_method_names_in_sync_with_xaicore():
    assert set(ATTRIBUTION_METHOD_NAMES) == set(ATTRIBUTION_METHODS)


def test_every_metric_of_every_method_is_reported(tmp_path):
    reports = []
    result = run_trial(TINY, lambda m, c: reports.append(m), out_dir=tmp_path)
    final = reports[-1]
    methods = ("saliency", "integrated_gradients", "input_x_gradient", "attention")
    for method in methods:
        for metric in ("deletion", "weak_f1", "shuffle_tvd", "comprehensiveness", "sufficiency", "rationale_auprc",
                       "rationale_roc_auc"):
            assert f"faith/{metric}/{method}" in final, (metric, method)
        assert 0 < final[f"faith/deletion/{method}"] <= 1
    assert "faith/weak_f1/uniform" in final and "faith/weak_f1/random" in final
    assert "faith/kendall_tau/input_x_gradient__integrated_gradients" in final
    assert set(final) <= set(TRAINABLES["faithfulness"].metrics) | {"epoch", "best_epoch", "train/lr"}
    names = {p.name for p in result.artifacts}
    assert {"faithfulness_table.md", "faithfulness_table.csv", "attribution_heatmaps.html",
            "weak_learner_valid_loss.png"} <= names
    table = (tmp_path / "faithfulness_table.md").read_text()
    assert table.splitlines()[0].startswith("| method | deletion | weak_f1 | shuffle_tvd")


def test_saved_model_is_evaluated_without_training(tmp_path):
    from trainables.classifier import run_trial as train

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
    (dict(deletion_intervention="mask"), "deletion_intervention"),
    (dict(tvd_permutations=0), "tvd_permutations: must be >= 1"),
])
def test_bad_config(changes, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config({**TINY, **changes})

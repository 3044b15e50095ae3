"""The finetune trainable on tiny BERT models built from a config (no network, no shared data)."""
import json

import numpy as np
import pytest
import torch

from tests.tiny_transformer import make_model_dir, make_nli_files
from trainables import TRAINABLES
from trainables.config import ConfigError
from trainables.finetune.config import parse_config, preflight, round_of
from trainables.finetune.trial import run_trial


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("tinybert"))


@pytest.fixture(scope="module")
def nli_dir(tmp_path_factory):
    return make_nli_files(tmp_path_factory.mktemp("nli"))


def config(model_dir, nli_dir, tmp_path, **kw):
    base = {"dataset": str(nli_dir / "{split}.jsonl"), "columns": {"text": "premise", "text_pair": "hypothesis"},
            "model": str(model_dir), "epochs": 2, "batch_size": 8, "lr": 1e-3, "max_length": 32,
            "cache_dir": str(tmp_path / "cache"), "num_threads": 1}
    return {**base, **kw}


def test_registered():
    assert "finetune" in TRAINABLES
    entry = TRAINABLES["finetune"]
    assert "test/accuracy_A3" in entry.metrics and "train/noise_ratio" in entry.metrics
    assert entry.parse_config({}).regularizer == "none"


@pytest.mark.parametrize("regularizer", ["none", "similar_1_1", "smart"])
def test_trial_reports_every_epoch_and_writes_artifacts(model_dir, nli_dir, tmp_path, regularizer):
    reports = []
    res = run_trial(config(model_dir, nli_dir, tmp_path, regularizer=regularizer),
                    lambda m, c: reports.append((m, c)), out_dir=tmp_path / "out")
    assert [m["epoch"] for m, _ in reports] == [1, 2]
    final = reports[-1][0]
    assert 0 <= final["test/accuracy"] <= 1 and final["best_epoch"] in (1, 2)
    names = {p.name for p in res.artifacts}
    assert {"config.yaml", "training_curves.png", "step_stats.csv"} <= names
    if regularizer == "none":
        assert "train/noise_ratio" not in final
    else:
        assert final["train/noise_ratio"] > 0 and 0 < final["train/frac_changed"] <= 1
    if regularizer == "similar_1_1":
        assert {"neighbours_sample.txt", "neighbours_table.pt"} <= names
        sample = (tmp_path / "out" / "neighbours_sample.txt").read_text()
        assert sample.startswith("good -> ") and "[unused0]" not in sample and "[CLS]" not in sample
        # 1-1 at noise_size 0.5 changes every content token (noise ratio ~ 0.5 * ||E_n - E|| / ||E||)
        assert final["train/frac_changed"] == pytest.approx(1.0)


def test_every_declared_best_valid_metric_is_reported_at_the_selected_epoch(model_dir, nli_dir, tmp_path):
    """``best/valid_<key>`` of every declared key, each epoch: the running best for the selection metric,
    the selected epoch's value for the others (a ``best/valid_f1`` objective under accuracy selection)."""
    from trainables.finetune.metrics import METRICS

    reports = []
    run_trial(config(model_dir, nli_dir, tmp_path, epochs=3, lr=3e-3), lambda m, c: reports.append(m))
    declared = [m for m in METRICS if m.startswith("best/valid_")]
    best_acc, chosen = None, None
    for m in reports:
        if best_acc is None or m["valid/accuracy"] > best_acc:
            best_acc, chosen = m["valid/accuracy"], m
        assert m["best/valid_accuracy"] == best_acc
        for name in declared:
            assert m[name] == chosen["valid/" + name[len("best/valid_"):]], (m["epoch"], name)


def test_interim_report_finds_the_curves_already_written(model_dir, nli_dir, tmp_path):
    """A trial that ASHA stops after an interim report that keeps the artifacts (``trial.artifacts_due()``) has its
    curves and step statistics; a report that keeps nothing (the plain-Python trial's) costs no drawing."""
    from trainables.finetune.trial import TRAINABLE
    from trainables.protocol import Trial, run_body

    class Keeping(Trial):
        def artifacts_due(self):
            return True

    for trial_cls, expected in ((Keeping, {"config.yaml", "training_curves.png", "step_stats.csv"}), (Trial, set())):
        out = tmp_path / trial_cls.__name__
        seen = []

        def report(metrics, checkpoint):
            seen.append((metrics["epoch"], {p.name for p in out.glob("*")} if out.is_dir() else set()))

        cfg = TRAINABLE.parse_config(config(model_dir, nli_dir, tmp_path, regularizer="similar_1_1"))
        run_body(TRAINABLE, cfg, trial_cls(report, out_dir=out))
        epoch, files = seen[0]
        assert epoch == 1 and (expected <= files if expected else files == set()), (trial_cls, files)


def test_resume_equals_uninterrupted(model_dir, nli_dir, tmp_path):
    cfg = config(model_dir, nli_dir, tmp_path, regularizer="similar_1_2", epochs=2)
    full = []
    run_trial(cfg, lambda m, c: full.append((m, c)))
    # through a file as Ray stores it, read back as the Ray wrapper reads it (tensors and plain types only)
    import torch

    from xaicore.state_io import load_state_file

    torch.save(full[0][1], tmp_path / "trial_state.pt")
    first = load_state_file(tmp_path / "trial_state.pt", what="trial checkpoint")
    resumed = []
    run_trial(cfg, lambda m, c: resumed.append((m, c)), resume=first)
    assert resumed[-1][0]["test/accuracy"] == full[-1][0]["test/accuracy"]
    assert resumed[-1][0]["train/loss"] == pytest.approx(full[-1][0]["train/loss"], rel=1e-6)
    assert len(resumed[-1][1]["steps"]) == len(full[-1][1]["steps"])


def test_anli_rounds_and_label_map(model_dir, tmp_path):
    d = make_nli_files(tmp_path / "anli", rounds=True)
    # a split holding only the second class must still map it to id 1 (the training split's label set)
    rows = [json.loads(x) for x in (d / "R3/test.jsonl").read_text().splitlines()]
    (d / "R3/test.jsonl").write_text("\n".join(json.dumps({**r, "label": "not_entailment"}) for r in rows) + "\n")
    reports = []
    cfg = config(model_dir, d, tmp_path, epochs=1, valid_split="R1/dev,R2/dev,R3/dev",
                 test_split="R1/test,R2/test,R3/test")
    run_trial(cfg, lambda m, c: reports.append(m))
    final = reports[-1]
    for r in ("A1", "A2", "A3"):
        assert 0 <= final[f"test/accuracy_{r}"] <= 1 and f"valid/accuracy_{r}" in final
    all_acc = sum(final[f"test/accuracy_{r}"] * 16 for r in ("A1", "A2", "A3")) / 48
    assert final["test/accuracy"] == pytest.approx(all_acc)  # All = pooled accuracy
    assert round_of("test_r2") == "A2" and round_of("R3/dev") == "A3" and round_of("test") is None


def test_warmup_is_linear_over_first_ten_percent(model_dir, nli_dir, tmp_path):
    from trainables.finetune.setup import FinetuneSetup

    setup = FinetuneSetup(parse_config(config(model_dir, nli_dir, tmp_path, epochs=5, lr=1e-3)))
    total = 5 * setup.steps_per_epoch  # 48 / 8 = 6 steps per epoch -> 30 steps, 3 warm-up steps
    lrs = []
    for _ in range(total):
        lrs.append(setup.trainer.scheduler.get_last_lr()[0])
        setup.trainer.optimizer.step()
        setup.trainer.scheduler.step()
    assert lrs[:4] == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3, 1e-3 * 27 / 27])
    assert lrs[-1] < lrs[4] and isinstance(setup.trainer.optimizer, torch.optim.AdamW)


def test_bad_input_is_one_clear_error(model_dir, nli_dir, tmp_path):
    with pytest.raises(ConfigError) as err:
        parse_config(config(model_dir, nli_dir, tmp_path, noise_size=1.5, regularizer="similar_9_9",
                            model=str(tmp_path / "no-such-model-dir")))
    text = str(err.value)
    assert "noise_size: must be in [0, 1]" in text and "unknown 'similar_9_9'" in text
    assert "does not exist" in text and len(err.value.problems) == 3
    # a text_pair column the files lack: found by the preflight's dry load, before any trial
    bad_column = config(model_dir, nli_dir, tmp_path, columns={"text": "premise", "text_pair": "hypo"})
    problems = preflight(parse_config(bad_column))
    assert problems and "hypo" in problems[0]
    assert preflight(parse_config(config(model_dir, nli_dir, tmp_path))) == []


def test_paper_method_names_set_the_method_keys(model_dir, nli_dir, tmp_path):
    from trainables.finetune.config import PAPER_METHODS

    assert len(PAPER_METHODS) == 10
    cfg = parse_config(config(model_dir, nli_dir, tmp_path, method="WordNet_0.5"))
    assert (cfg.regularizer, cfg.noise_size) == ("wordnet", 0.5)
    assert parse_config(config(model_dir, nli_dir, tmp_path, method="1-1_1.0")).noise_size == 1.0
    assert parse_config({**config(model_dir, nli_dir, tmp_path), "method": "SMART"}).regularizer == "smart"
    with pytest.raises(ConfigError, match="method: unknown"):
        parse_config(config(model_dir, nli_dir, tmp_path, method="3-1"))


def test_preflight_names_a_missing_split_file_once(model_dir, nli_dir, tmp_path):
    problems = preflight(parse_config(config(model_dir, nli_dir, tmp_path, test_split="validation,nosuch")))
    assert len(problems) == 1 and "nosuch" in problems[0]


def test_figure2_pca_artifact(model_dir, nli_dir, tmp_path):
    res = run_trial(config(model_dir, nli_dir, tmp_path, epochs=1, pca_figure=True, pca_words=["good", "the"]),
                    lambda m, c: None, out_dir=tmp_path / "out")
    png = tmp_path / "out" / "embedding_pca.png"
    assert png in res.artifacts and png.read_bytes()[:4] == b"\x89PNG"


def test_embedding_views_known_answers():
    from tests.tiny_transformer import bert_batch, tiny_model
    from xaicore.perturbation.embedding_views import embedding_views, pca_2d
    from xaicore.perturbation.noise import make_noise_regularizer
    from xaicore.perturbation.smart import SmartRegularizer

    model, batch = tiny_model(), bert_batch()
    pos = torch.nonzero(batch.content_mask)
    table = torch.arange(26).roll(1).unsqueeze(1)
    # no noise and a zero SMART step on the word target: every condition is the clean vector
    views = embedding_views(model, batch, pos, smart=SmartRegularizer(target="word", step_size=0.0, noise_var=0.0),
                            noise=make_noise_regularizer("similar_1_1", table, noise_size=0.0))
    assert list(views) == ["embeddings", "layer1"]  # the tiny model has one layer
    for depth in views:
        torch.testing.assert_close(views[depth]["noise"], views[depth]["clean"])
        torch.testing.assert_close(views[depth]["smart"], views[depth]["clean"])
    views = embedding_views(model, batch, pos, noise=make_noise_regularizer("similar_1_1", table, noise_size=1.0))
    assert not torch.allclose(views["embeddings"]["noise"], views["embeddings"]["clean"])
    xy = pca_2d(views["embeddings"])
    assert xy["clean"].shape == (len(pos), 2)
    assert torch.allclose(torch.cat(list(xy.values())).mean(0), torch.zeros(2), atol=1e-4)  # centred


def test_tokenised_once_grouped_batches_and_eval_order(model_dir, tmp_path):
    """Issue 18: the HF path tokenises each split once; ``bucket_pool: null`` = today's random batches;
    the length-sorted evaluation gives every round its own examples (predictions back in file order)."""
    import dataclasses

    from trainables.finetune.setup import FinetuneSetup
    from xaicore.data.batching import batches
    from xaicore.metrics import predict

    d = make_nli_files(tmp_path / "anli", rounds=True)
    for f in d.rglob("*.jsonl"):  # lengths that vary, so that sorting by length reorders
        rows = [json.loads(x) for x in f.read_text().splitlines()]
        f.write_text("\n".join(json.dumps({**r, "premise": r["premise"] + " the" * ((7 * i) % 5)})
                               for i, r in enumerate(rows)) + "\n")
    cfg = config(model_dir, d, tmp_path, epochs=1, valid_split="R1/dev,R2/dev,R3/dev",
                 test_split="R1/test,R2/test,R3/test")
    null = FinetuneSetup(parse_config({**cfg, "bucket_pool": None}))
    old = list(batches(null.train, null.encoder, batch_size=8, shuffle=True, seed=0, epoch=1))  # per-batch tokens
    new = [b for b, _ in null.epoch_batches(1)]
    assert len(old) == len(new)
    for a, b in zip(old, new):
        for f in dataclasses.fields(a):
            x, y = getattr(a, f.name), getattr(b, f.name)
            assert (x is None) == (y is None) and (x is None or torch.equal(x, y)), f.name
    grouped = FinetuneSetup(parse_config(cfg))
    assert grouped.cfg.bucket_pool == 100
    assert [int(i) for b in grouped.test_batches for i in b.index] != list(range(len(grouped.test)))
    for setup in (null, grouped):
        setup.model.load_state_dict(null.model.state_dict())
    la, pa = predict(grouped.model, grouped.test_batches, grouped.device)
    lb, pb = predict(null.model, null.test_batches, null.device)
    assert np.array_equal(la, lb) and np.allclose(pa, pb, atol=1e-5)  # attention-masked encoder: padding-free
    assert grouped.evaluate(grouped.model, "test") == pytest.approx(null.evaluate(null.model, "test"), abs=1e-6)

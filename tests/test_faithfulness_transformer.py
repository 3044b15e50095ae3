"""The ``faithfulness_transformer`` trainable on a tiny saved ``finetune`` model (BERT built from a config, a
WordPiece tokenizer the tests write; no network): its metrics equal the xaicore functions called directly on
the same model, ``mask_token`` writes the tokenizer's [MASK] id on content tokens only, the marginalize
methods take a tiny masked LM sharing the tokenizer and are refused before Ray without one; ``xaisweep
evaluate`` of a tiny finetune sweep logs ``eval/`` metrics into the original runs (slow)."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch

from tests.tiny_transformer import SPECIAL, VOCAB, bert_config, make_model_dir, make_nli_files
from trainables.config import ConfigError
from trainables.faithfulness_transformer.config import parse_config, preflight
from trainables.faithfulness_transformer.trial import run_trial

MASK_ID = VOCAB.index("[MASK]")
COLUMNS = {"text": "premise", "text_pair": "hypothesis"}
FAITH = {"methods": ["saliency", "input_x_gradient", "leave_one_out"], "faith_metrics": ["deletion", "eraser"],
         "eval_examples": 64, "num_threads": 1}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_nli_files(tmp_path_factory.mktemp("nli"), n_train=96, n_eval=12)


def finetune_config(base_model: Path, data: Path, **kw) -> dict:
    return {"dataset": str(data / "{split}.jsonl"), "columns": dict(COLUMNS), "model": str(base_model),
            "epochs": 1, "batch_size": 8, "lr": 1e-3, "max_length": 32, "num_threads": 1, **kw}


@pytest.fixture(scope="module")
def saved(tmp_path_factory, data):
    """A finetune trial's ``model/`` directory (``save_model: true``) and the trial config it was trained with."""
    from trainables.finetune.trial import run_trial as finetune

    root = tmp_path_factory.mktemp("saved")
    cfg = finetune_config(make_model_dir(root / "base"), data, save_model=True, cache_dir=str(root / "cache"),
                          epochs=3, lr=3e-3)  # learns the task: deletions flip predictions
    finetune(cfg, out_dir=root / "out")
    model_dir = root / "out" / "model"
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "tokenizer.json").is_file()
    return model_dir, cfg


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory, saved):
    """A tiny BERT masked LM sharing the classifier's tokenizer (random weights, a saved directory)."""
    from transformers import AutoTokenizer, BertForMaskedLM

    path = tmp_path_factory.mktemp("mlm")
    torch.manual_seed(1)
    BertForMaskedLM(bert_config()).save_pretrained(path)
    AutoTokenizer.from_pretrained(saved[0]).save_pretrained(path)
    return path


def direct_batches(model_dir: Path, data: Path):
    """The test split in file order, tokenised by the saved tokenizer (one batch: 12 < 64 examples)."""
    from transformers import AutoTokenizer

    from xaicore.data.batching import batches, encode_dataset
    from xaicore.data.loading import load_dataset
    from xaicore.data.vocab import HFEncoder

    train = load_dataset(str(data / "{split}.jsonl"), split="train", columns=COLUMNS)
    test = load_dataset(str(data / "{split}.jsonl"), split="test", columns=COLUMNS, label_names=train.label_names)
    encoder = HFEncoder(AutoTokenizer.from_pretrained(model_dir, local_files_only=True), max_length=32)
    return list(batches(encode_dataset(test, encoder), encoder, batch_size=64, shuffle=False, seed=0))


def load_classifier(model_dir: Path):
    from xaicore.models.transformer import TransformerClassifier, TransformerClassifierConfig

    return TransformerClassifier.from_pretrained(TransformerClassifierConfig(
        str(model_dir), num_classes=2, local_files_only=True, use_safetensors=True)).eval()


@pytest.mark.parametrize("cancel", ["zero_vector", "mask_token", "uniform_marginalize"])
def test_metrics_equal_xaicore_on_the_same_model(saved, data, mlm_dir, cancel, tmp_path):
    from xaicore.cancel_out.methods import CancelOut
    from xaicore.faithfulness.attribution import input_x_gradient, leave_one_out, saliency
    from xaicore.faithfulness.deletion import deletion_until_flip
    from xaicore.faithfulness.eraser import erasure_curves
    from xaicore.faithfulness.removal import nanmean
    from xaicore.models.masked_lm import load_masked_lm

    model_dir, trained = saved
    extra = {"mlm": str(mlm_dir), "k": 2} if cancel == "uniform_marginalize" else {}
    res = run_trial({**trained, **FAITH, "save_model": False, "cancel_out": cancel, "model_dir": str(model_dir),
                     **extra}, out_dir=tmp_path / "out")
    m = res.metrics
    assert {"faithfulness_table.md", "attribution_heatmaps.html"} <= {p.name for p in res.artifacts}
    assert "[CLS]" in (tmp_path / "out" / "attribution_heatmaps.html").read_text()

    model = load_classifier(model_dir)
    mlm = load_masked_lm(str(mlm_dir), local_files_only=True)[0] if extra else None
    method = CancelOut(cancel, k=2, mlm=mlm, mask_token_id=MASK_ID, exclude_ids=SPECIAL)
    (batch,) = direct_batches(model_dir, data)
    assert bool(batch.special_tokens_mask.any())  # [CLS] and both [SEP] of the pairs are special
    for name, fn in (("saliency", saliency), ("input_x_gradient", input_x_gradient),
                     ("leave_one_out", lambda mdl, b: leave_one_out(mdl, b, cancel_out=method))):
        scores = fn(model, batch)
        assert bool((scores[~batch.content_mask] == 0).all())  # never attribute special tokens or padding
        label = f"{name}.{cancel}" if name == "leave_one_out" else name
        want = nanmean(deletion_until_flip(model, batch, scores, cancel_out=method))
        assert 0 < want < 1  # some predictions flip before every content token is gone
        assert m[f"faith/deletion.{cancel}/{label}"] == pytest.approx(want, abs=1e-6)
        curves = erasure_curves(model, batch, scores, cancel_out=method)
        assert m[f"faith/comprehensiveness.{cancel}/{label}"] == pytest.approx(
            float(curves["aopc_comprehensiveness"].mean()), abs=1e-5)
        assert m[f"faith/sufficiency.{cancel}/{label}"] == pytest.approx(
            float(curves["aopc_sufficiency"].mean()), abs=1e-5)
    # the evaluated model is the saved one: its test accuracy
    with torch.no_grad():
        pred = model(batch.input_ids, batch.attention_mask, token_type_ids=batch.token_type_ids).logits.argmax(1)
    assert m["test/accuracy"] == pytest.approx(float((pred == batch.labels).float().mean()))


def test_mask_token_writes_the_tokenizers_mask_id_on_content_tokens_only(saved):
    from trainables.faithfulness_transformer.setup import FaithfulnessTransformerSetup

    model_dir, trained = saved
    setup = FaithfulnessTransformerSetup(parse_config({**trained, **FAITH, "save_model": False,
                                                       "cancel_out": "mask_token", "model_dir": str(model_dir)}))
    assert setup.tokenizer.mask_token_id == MASK_ID and setup.model.mask_token_id == MASK_ID
    batch = setup.test_batches[0]
    everything = torch.ones_like(batch.input_ids, dtype=torch.bool)
    out = setup.cancel_out().apply(setup.model, batch, everything).batch.input_ids
    content = batch.content_mask
    assert bool((out[content] == MASK_ID).all()) and bool(content.any())
    assert torch.equal(out[~content], batch.input_ids[~content])  # [CLS], [SEP], padding untouched
    assert not bool((batch.input_ids == MASK_ID).any())


def test_refused_before_ray(saved, tmp_path):
    model_dir, trained = saved
    base = {**trained, "save_model": False, "model_dir": str(model_dir)}
    with pytest.raises(ConfigError, match="mlm:"):
        parse_config({**base, "cancel_out": "uniform_marginalize"})
    with pytest.raises(ConfigError, match="additive attention"):
        parse_config({**base, "methods": ["saliency", "attention"]})
    with pytest.raises(ConfigError, match="model_dir: no such directory"):
        parse_config({**base, "model_dir": str(tmp_path / "nope")})
    # the BiLSTM trainable still refuses the mask-based methods, and says where they are
    from trainables.faithfulness.config import parse_config as parse_bilstm

    with pytest.raises(ConfigError, match="faithfulness_transformer"):
        parse_bilstm({"cancel_out": "mask_token"})
    # a directory with pickled weights only is refused, never unpickled
    import shutil

    pickled = tmp_path / "pickled"
    shutil.copytree(model_dir, pickled)
    (pickled / "model.safetensors").unlink()
    (pickled / "pytorch_model.bin").write_bytes(b"not read")
    assert any("safetensors" in p for p in preflight(parse_config({**base, "model_dir": str(pickled)})))
    assert preflight(parse_config(base)) == []


def test_a_masked_lm_with_another_vocabulary_is_refused(saved, mlm_dir, tmp_path):
    from transformers import BertForMaskedLM, BertTokenizerFast

    model_dir, trained = saved
    other = tmp_path / "other"
    other.mkdir()
    BertForMaskedLM(bert_config()).save_pretrained(other)
    (other / "vocab.txt").write_text("\n".join(VOCAB[:6] + list(reversed(VOCAB[6:]))) + "\n")
    BertTokenizerFast(vocab=str(other / "vocab.txt")).save_pretrained(other)
    cfg = parse_config({**trained, "save_model": False, "model_dir": str(model_dir), "cancel_out": "uniform_marginalize",
                        "mlm": str(other)})
    assert any("differs from the classifier" in p for p in preflight(cfg))
    # xaisweep evaluate's check, before the model is downloaded: against the model the trial started from
    from trainables.faithfulness_transformer.config import evaluation_problems

    plan_time = parse_config({**trained, "save_model": False, "cancel_out": "uniform_marginalize", "mlm": str(other)})
    assert any("differs from the classifier" in p for p in evaluation_problems(plan_time))
    same = parse_config({**trained, "save_model": False, "cancel_out": "uniform_marginalize", "mlm": str(mlm_dir),
                         "faith_metrics": ["deletion"]})
    assert evaluation_problems(same) == []


# ----------------------------------------------------------------------------- xaisweep evaluate
def fake_finetune_sweep(uri: str, name: str, config: dict) -> str:
    """An experiment with one finished finetune trial run as ``xaisweep run`` leaves it (tags, config.yaml, model/)."""
    import yaml
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment(name), tags={"ray_trial_id": "t0", "trainable": "finetune"})
    client.log_text(run.info.run_id, yaml.safe_dump({"trainable": "finetune", "config": config}), "config.yaml")
    client.log_text(run.info.run_id, "not read before Ray", "model/config.json")
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def test_evaluate_refuses_marginalize_without_a_masked_lm_before_ray(saved, tmp_path, monkeypatch, capsys):
    import yaml

    ray = pytest.importorskip("ray")
    from sweeps import cli

    def boom(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(ray, "init", boom)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    fake_finetune_sweep(uri, "ft", saved[1])
    spec = tmp_path / "e.yaml"
    spec.write_text(yaml.safe_dump({"name": "tf", "trainable": "faithfulness_transformer",
                                    "config": {"methods": ["saliency"], "faith_metrics": ["deletion"]},
                                    "search_space": {"cancel_out": {"type": "grid",
                                                                    "values": ["mask_token", "uniform_marginalize"]}}}))
    rc = cli.main(["evaluate", "ft", "--with", str(spec), "--tracking-uri", uri])
    err = capsys.readouterr().err
    assert rc == 2 and "tf_uniform_marginalize: cancel_out: 'uniform_marginalize' fills the removed tokens" in err
    assert "set mlm:" in err and "tf_mask_token" not in err


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_evaluate_a_finetune_sweep_logs_into_the_original_runs(data, tmp_path, mlm_dir, monkeypatch):
    """2 tiny finetune trials (save_model: true) through ``xaisweep run`` on a local Ray, then ``xaisweep
    evaluate`` with zero_vector / mask_token / uniform_marginalize: every eval/ metric in both original runs."""
    import yaml
    from mlflow.tracking import MlflowClient

    ray = pytest.importorskip("ray")
    from sweeps import cli

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    base = finetune_config(make_model_dir(tmp_path / "base"), data, save_model=True, epochs=1,
                           cache_dir=str(tmp_path / "cache"))
    spec = tmp_path / "sweep.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "ftsweep", "trainable": "finetune", "config": base, "metric": "best/valid_accuracy", "mode": "max",
        "search_space": {"seed": {"type": "grid", "values": [0, 1]}}, "sampler": {"type": "grid", "seed": 0},
        "num_samples": 2, "max_concurrent": 2, "resources": {"cpu": 1}}))
    evaluation = tmp_path / "eval.yaml"
    evaluation.write_text(yaml.safe_dump({
        "name": "tf", "trainable": "faithfulness_transformer",
        "config": {"methods": ["saliency", "input_x_gradient"], "faith_metrics": ["deletion"], "mlm": str(mlm_dir),
                   "k": 2, "num_threads": 1},
        "search_space": {"cancel_out": {"type": "grid", "values": ["zero_vector", "mask_token",
                                                                   "uniform_marginalize"]}},
        "resources": {"cpu": 1}, "max_concurrent": 2}))
    monkeypatch.setenv("XAISWEEP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            assert cli.main(["run", str(spec), "--num-cpus", "2", "--quiet", "--tracking-uri", uri,
                             "--storage", str(tmp_path / "ray")]) == 0, out.getvalue()
            assert cli.main(["evaluate", "ftsweep", "--with", str(evaluation), "--num-cpus", "2", "--quiet",
                             "--tracking-uri", uri]) == 0, out.getvalue()
    finally:
        if ray.is_initialized():
            ray.shutdown()
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("ftsweep")
    runs = client.search_runs([exp.experiment_id], "tags.ray_trial_id != ''")
    assert len(runs) == 2
    for run in runs:
        metrics = client.get_run(run.info.run_id).data.metrics
        for cancel in ("zero_vector", "mask_token", "uniform_marginalize"):
            name = f"tf_{cancel}"
            assert client.get_run(run.info.run_id).data.tags[f"eval/{name}/done"]
            for method in ("saliency", "input_x_gradient"):
                value = metrics[f"eval/{name}/faith/deletion.{cancel}/{method}"]
                assert 0 <= value <= 1
            # the evaluated model is the trial's own: the same test accuracy
            assert metrics[f"eval/{name}/test/accuracy"] == pytest.approx(metrics["test/accuracy"])

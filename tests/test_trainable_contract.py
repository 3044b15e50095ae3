"""One contract for every registered trainable (the trial protocol, trainables/protocol.py).

For each entry of ``trainables.TRAINABLES`` on tiny offline data and models: its module declares a
``TRAINABLE`` of that name; the smoke config runs; every metric it reports is declared; ``finish`` is
called exactly once, last; a trial resumed from a mid-run checkpoint ends with the final metrics of an
uninterrupted one; ``preflight`` returns ``[]`` for the good config and problems for a bad one.
"""
import math

import pytest
import torch

from tests.tiny_transformer import WORDS, make_nli_files
from trainables import TRAINABLES
from trainables.protocol import Trainable, Trial, TrialProtocolError, is_bookkeeping, run_body
from xaicore.state_io import load_state_file

#: wall-clock measurements: not reproducible across runs
TIMING = ("train/step_time", "restore/seconds/")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """One tiny BERT with an MLM head (classifier, masked LM, MLM and BIOS words), its texts and data files."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    from xaicore.bias.bios import synthetic_vocabulary

    root = tmp_path_factory.mktemp("contract")
    model = root / "bert"
    model.mkdir()
    words = list(dict.fromkeys(WORDS + ["premise", "hypothesis"] + synthetic_vocabulary()))
    (model / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")
    BertTokenizerFast(vocab=str(model / "vocab.txt"), do_lower_case=True).save_pretrained(model)
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=5 + len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32, max_position_embeddings=64)).save_pretrained(model)
    texts = root / "texts.txt"
    texts.write_text("\n".join(" ".join([WORDS[i % len(WORDS)]] * (4 + i % 5)) for i in range(120)) + "\n")
    tsv = root / "data.tsv"
    tsv.write_text("text\tlabel\n" + "".join(f"the {w} is good\t1\na {w} was bad\t0\n" for w in WORDS))
    bad_columns = root / "sentences.tsv"
    bad_columns.write_text("sentence\tlabel\nthe film is good\t1\na bad movie\t0\n")
    return {"model": model, "texts": texts, "tsv": tsv, "bad_columns": bad_columns,
            "nli": make_nli_files(root / "nli", n_train=24, n_eval=8), "cache": root / "cache"}


LSTM = dict(dataset="synthetic", synthetic_size=120, embedding_dim=8, hidden_dim=8, attention_dim=8, heatmaps=0)


def base_config(name, a):
    """A tiny config of trainable ``name`` (the smoke overrides are applied on top)."""
    transformer = dict(model=str(a["model"]), local_files_only=True, max_length=24, batch_size=8, lr=1e-3,
                       cache_dir=str(a["cache"]))
    return {
        "classifier": LSTM,
        "faithfulness": {**LSTM, "methods": ["attention", "saliency", "leave_one_out"], "ig_steps": 2,
                         "eval_examples": 16, "tvd_permutations": 2, "weak_train_examples": 48},
        "mlm": dict(base_model=str(a["model"]), texts=str(a["texts"]), batch_size=16, lr=3e-3, max_length=16),
        "restorability": dict(mlm=str(a["model"]), local_files_only=True, dataset=str(a["tsv"]), n_tokens=12),
        "finetune": {**transformer, "dataset": str(a["nli"] / "{split}.jsonl"),
                     "columns": {"text": "premise", "text_pair": "hypothesis"}},
        "bios_debias": {**transformer, "cancel_out": "mask_token", "max_eval_examples": 16},
        "faithfulness_transformer": {**transformer, "dataset": str(a["nli"] / "{split}.jsonl"),
                                     "columns": {"text": "premise", "text_pair": "hypothesis"},
                                     "methods": ["saliency", "leave_one_out"], "faith_metrics": ["deletion", "eraser"],
                                     "cancel_out": "uniform_marginalize", "mlm": str(a["model"])},
    }[name]


def bad_io(name, a):
    """Overrides that parse but fail a preflight (I/O) check."""
    return {
        "classifier": {"dataset": str(a["bad_columns"])},
        "faithfulness": {"dataset": str(a["bad_columns"])},
        "mlm": {"texts": str(a["cache"] / "missing.txt")},
        "restorability": {"dataset": str(a["cache"] / "missing_{split}.tsv")},
        "finetune": {"columns": {"text": "premise", "text_pair": "no_such_column"}},
        "bios_debias": {"model": str(a["cache"] / "no_model_dir")},
        "faithfulness_transformer": {"columns": {"text": "premise", "text_pair": "no_such_column"}},
    }[name]


class Recorder(Trial):
    """A trial that records every interim result and the final one (and fails on a protocol breach), and what
    ``out_dir`` held at each interim report; ``keep``: its answer to ``artifacts_due()``."""

    def __init__(self, keep=False, **kw):
        super().__init__(**kw)
        self.keep = keep
        self.interim, self.finals, self.written = [], [], []

    def artifacts_due(self):
        return self.keep

    def _interim(self, metrics, checkpoint):
        assert not self.finals, "interim report after finish"
        self.interim.append((dict(metrics), checkpoint))
        out = self.out_dir
        self.written.append(sorted(p.name for p in out.rglob("*") if p.is_file()) if out and out.is_dir() else [])

    def _final(self, metrics, checkpoint, result):
        self.finals.append((dict(metrics), checkpoint))


def run(entry, config, **kw):
    trainable = entry.trainable
    trial = Recorder(**kw)
    result = run_body(trainable, trainable.parse_config(config), trial)
    assert len(trial.finals) == 1 and result is trial.result and result.metrics == trial.finals[0][0]
    return trial


def reproducible(metrics):
    """The metrics but the timings, NaN as a string (NaN != NaN)."""
    return {k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in metrics.items()
            if not k.startswith(TIMING)}


@pytest.fixture(params=sorted(TRAINABLES))
def entry(request):
    return TRAINABLES[request.param]


def test_module_declares_the_registered_trainable(entry):
    trainable = entry.trainable
    assert isinstance(trainable, Trainable) and trainable.name == entry.name
    assert isinstance(trainable.parse_config({}), trainable.config)
    assert entry.parse_config == trainable.parse_config and entry.preflight == trainable.preflight


def test_registry_maps_the_name_to_its_package(entry):
    """``trainables/<name>/``: ``trial.py`` declares the trainable, ``metrics.py`` what it reports (no copies)."""
    import importlib

    assert entry.module == f"trainables.{entry.name}"
    assert entry.trainable is importlib.import_module(f"{entry.module}.trial").TRAINABLE
    declared = importlib.import_module(f"{entry.module}.metrics")
    assert entry.metrics is declared.METRICS and entry.smoke is declared.SMOKE


def test_metric_declarations_do_not_import_torch():
    """Checking a spec reads every trainable's metrics and smoke overrides from its package's ``metrics.py``
    without importing torch (the lazily derived lists only on first use) or the trial code."""
    import subprocess
    import sys

    code = (
        "import sys, trainables\n"
        "for name, e in trainables.TRAINABLES.items():\n"
        "    e.metrics, e.smoke\n"
        "    assert f'trainables.{name}.metrics' in sys.modules, name\n"
        "assert 'train/lr' in trainables.TRAINABLES['classifier'].metrics\n"
        "for name in ('classifier', 'finetune', 'mlm', 'bios_debias'):\n"
        "    assert len(list(trainables.TRAINABLES[name].metrics)) > 5, name\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m.endswith(('.trial', '.config')))\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_smoke_config_runs_emits_declared_metrics_and_finishes_once(entry, assets, tmp_path):
    trial = run(entry, {**base_config(entry.name, assets), **entry.smoke}, out_dir=tmp_path)
    declared = set(entry.metrics)
    for metrics, _ in trial.interim + trial.finals:
        undeclared = {k for k in metrics if k not in declared and not is_bookkeeping(k)}
        assert not undeclared, sorted(undeclared)
    final = trial.finals[0][0]
    assert set(final) & set(entry.metrics)
    assert all(not (isinstance(v, float) and math.isinf(v)) for v in final.values())
    assert trial.result.artifacts and all(p.exists() for p in trial.result.artifacts)


def test_resumed_trial_ends_with_the_uninterrupted_final_metrics(entry, assets, tmp_path):
    config = {**base_config(entry.name, assets), **entry.smoke}
    if "epochs" not in {f for f in entry.trainable.config.__dataclass_fields__}:
        trial = run(entry, config)
        assert trial.interim == []  # one result, nothing to resume from
        return
    config["epochs"] = 2
    full = run(entry, config)
    assert [m["epoch"] for m, _ in full.interim] == [1] and full.finals[0][0]["epoch"] == 2
    # the checkpoint goes through a file as Ray stores it and is read back as the Ray wrapper reads it:
    # tensors and plain types only (weights_only=True), never unpickled classes
    torch.save(full.interim[0][1], tmp_path / "trial_state.pt")
    checkpoint = load_state_file(tmp_path / "trial_state.pt", what="trial checkpoint")
    resumed = run(entry, config, resume=checkpoint)
    assert resumed.interim == []
    assert reproducible(resumed.finals[0][0]) == reproducible(full.finals[0][0])


def test_interim_artifacts_are_written_only_for_a_report_that_keeps_them(entry, assets, tmp_path):
    """Nothing is drawn for an interim report whose trial keeps no artifacts (a direct run; a sweep's report
    between two uploads); a trainable with interim artifacts writes them when the report keeps them."""
    config = {**base_config(entry.name, assets), **entry.smoke}
    if "epochs" not in {f for f in entry.trainable.config.__dataclass_fields__}:
        return  # one result: no interim report
    config["epochs"] = 2
    plain = run(entry, config, out_dir=tmp_path / "plain")
    keeping = run(entry, config, out_dir=tmp_path / "keeping", keep=True)
    assert plain.written == [[]]
    if entry.name in ("classifier", "faithfulness", "finetune", "bios_debias", "faithfulness_transformer"):
        assert "training_curves.png" in keeping.written[0]
    assert reproducible(plain.finals[0][0]) == reproducible(keeping.finals[0][0])  # the drawing changes nothing


def test_preflight_takes_the_parsed_config_and_returns_problems(entry, assets):
    trainable = entry.trainable
    good = trainable.parse_config({**base_config(entry.name, assets), **entry.smoke})
    assert trainable.preflight(good) == []
    bad = trainable.parse_config({**base_config(entry.name, assets), **entry.smoke, **bad_io(entry.name, assets)})
    problems = trainable.preflight(bad)
    assert isinstance(problems, list) and problems and all(isinstance(p, str) and ":" in p for p in problems)


def _body(finishes):
    def body(cfg, trial):
        trial.report({"epoch": 1}, {"state": 1})
        for _ in range(finishes):
            trial.finish({"epoch": 2}, None)
    return body


def test_the_protocol_holds_a_body_to_one_finish():
    from trainables.classifier.config import ClassifierTrialConfig

    calls = []
    ok = Trainable("demo", ClassifierTrialConfig, _body(1))
    result = ok.run_trial({}, lambda m, c: calls.append((m, c)))
    assert calls == [({"epoch": 1}, {"state": 1}), ({"epoch": 2}, None)] and result.metrics == {"epoch": 2}
    with pytest.raises(TrialProtocolError, match="without trial.finish"):
        Trainable("demo", ClassifierTrialConfig, _body(0)).run_trial({})
    with pytest.raises(TrialProtocolError, match="twice"):
        Trainable("demo", ClassifierTrialConfig, _body(2)).run_trial({})
    trial = Trial()
    trial.finish({"epoch": 1})
    with pytest.raises(TrialProtocolError, match="after"):
        trial.report({"epoch": 2})


def test_ray_trial_marks_the_finished_result_complete_whatever_its_epoch(monkeypatch, tmp_path):
    """The final result is the one passed to ``finish`` (not guessed from ``epoch >= epochs``): a
    trial whose final result has no epoch (restorability, a faithfulness ``model_checkpoint``) completes too."""
    import trainables.ray_trainable as rt

    sent = []
    monkeypatch.setattr(rt, "_tune_report", lambda result, checkpoint, step: sent.append((result, checkpoint, step)))
    trial = rt.RayTrial(None, resume=None, out_dir=tmp_path)
    trial.report({"epoch": 1, "valid/f1": 0.5}, {"w": 1})
    trial.finish({"restore/n_tokens": 3}, None, artifacts=[])
    assert sent == [({"epoch": 1, "valid/f1": 0.5}, {"w": 1}, 1),
                    ({"restore/n_tokens": 3, rt.COMPLETE_KEY: True}, None, 0)]

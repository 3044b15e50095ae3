"""Precision policy (bf16 autocast keeps perturbations exact) and the host-sync budget of a training step."""
import contextlib
import math
import inspect

import pytest
import torch
import torch.nn.functional as F

from tests.tiny_transformer import tiny_model
from xaicore.models.protocol import forward_batch
from xaicore.perturbation import norms, regularizers, smart as smart_mod
from xaicore.perturbation.noise import make_noise_regularizer
from xaicore.perturbation.regularizers import make_regularizer
from xaicore.perturbation.smart import SmartRegularizer
from xaicore.precision import FP32, Precision, to_host
from xaicore.training import TrainConfig, Trainer, compute_loss
from xaicore.types import Batch

BF16 = Precision(torch.bfloat16, "cpu")


def bert_batch(B=4, T=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(6, 26, (B, T), generator=g)
    ids[:, 0], ids[:, -1] = 3, 4
    mask = torch.ones(B, T, dtype=torch.long)
    special = torch.zeros(B, T, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    return Batch(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 0, 1][:B]),
                 special_tokens_mask=special)


def cosine(a, b):
    return float(F.cosine_similarity(a.detach().flatten().double(), b.detach().flatten().double(), dim=0))


def naive(monkeypatch, round_bf16):
    """Emulate blind mixed precision: no fp32 regions (the code before the precision policy: autocast
    straight through, KL in bf16, no fp32 VAT reference) and, with ``round_bf16``, the perturbation
    arithmetic done on bf16 values (LayerNorm-scale embeddings rounded through bf16)."""
    cast = (lambda x: x.to(torch.bfloat16) if x.is_floating_point() else x) if round_bf16 else (lambda x: x)
    for mod in (norms, regularizers, smart_mod):
        monkeypatch.setattr(mod, "exact", lambda like: contextlib.nullcontext())
        monkeypatch.setattr(mod, "to_exact", cast)
    monkeypatch.setattr(regularizers, "autocast_active", lambda like: False)  # VAT: no fp32 reference pass


def smart_realised(model, batch, precision):
    reg = SmartRegularizer()
    torch.manual_seed(1)
    with precision.autocast():
        clean = forward_batch(model, batch)
        adv, base, _ = reg.adversarial(model, batch, clean)
    return adv.float() - reg._base(model, batch, clean).float()


def vat_realised(model, batch, precision):
    reg = make_regularizer("word_vat", eps=1.0, xi=0.1)
    torch.manual_seed(1)
    with precision.autocast():
        clean = forward_batch(model, batch)
        r = reg.perturbation(model, batch, clean)
        realised = (clean.embeddings + r).float() - clean.embeddings.float()
    return realised


def test_resolve_auto_is_fp32_on_cpu_and_names_map():
    assert Precision.resolve("auto", "cpu") == FP32 and not FP32.enabled
    assert Precision.resolve("bf16", "cpu").dtype is torch.bfloat16
    assert Precision.resolve("fp16", "cpu").scaler() is not None and BF16.scaler() is None
    with pytest.raises(ValueError, match="precision must be one of"):
        Precision.resolve("fp8", "cpu")


def test_bf16_loss_is_close_to_fp32():
    model, batch = tiny_model(), bert_batch()
    reg = SmartRegularizer()
    torch.manual_seed(0)
    fp32, _ = compute_loss(model, batch, regularizer=reg)
    torch.manual_seed(0)
    with BF16.autocast():
        bf16, _ = compute_loss(model, batch, regularizer=reg)
    assert abs(float(bf16.detach()) - float(fp32.detach())) < 1e-2


def test_smart_perturbation_stays_exact_under_bf16_autocast(monkeypatch):
    model, batch = tiny_model(), bert_batch()
    want = smart_realised(model, batch, FP32)
    assert want.abs().amax() > 0
    assert cosine(smart_realised(model, batch, BF16), want) >= 0.99
    naive(monkeypatch, round_bf16=True)  # the failure mode the fp32 regions prevent
    assert cosine(smart_realised(model, batch, BF16), want) < 0.9


def test_vat_perturbation_stays_exact_under_bf16_autocast(monkeypatch):
    model, batch = tiny_model(), bert_batch()
    want = vat_realised(model, batch, FP32)
    assert want.abs().amax() > 0
    assert cosine(vat_realised(model, batch, BF16), want) >= 0.99
    naive(monkeypatch, round_bf16=False)  # the code before the policy, autocast straight through: ~0.95
    assert cosine(vat_realised(model, batch, BF16), want) < 0.99


def test_trainer_bf16_step_runs_and_fp32_default_is_unchanged():
    batch = bert_batch()
    a = Trainer(tiny_model(), TrainConfig(epochs=1, lr=1e-3), steps_per_epoch=1)
    b = Trainer(tiny_model(), TrainConfig(epochs=1, lr=1e-3), steps_per_epoch=1, precision=BF16)
    torch.manual_seed(0)
    pa = a.train_step(batch)
    torch.manual_seed(0)
    pb = b.train_step(batch)
    assert abs(pa["loss"] - pb["loss"]) < 1e-2


# ------------------------------------------------------------------ host syncs
class SyncCounter:
    NAMES = ("item", "__float__", "__bool__", "__int__", "cpu", "tolist")

    def __init__(self, monkeypatch):
        self.count = 0
        for name in self.NAMES:
            orig = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._wrap(orig))

    def _wrap(self, orig):
        def counted(t, *args, **kwargs):
            caller = inspect.stack(0)[1].filename
            # not counted: torch.optim's reads of its CPU `step` counters (no device sync: they live on the
            # host) and transformers' own mask-skip check (`padding_mask.all()` per forward, library code)
            if "/torch/optim/" not in caller and "/transformers/" not in caller and self.active:
                self.count += 1
            return orig(t, *args, **kwargs)
        return counted

    active = False


def neighbour_ids(model, k=3):
    V = model.model.get_input_embeddings().weight.shape[0]
    return torch.stack([(torch.arange(V) + i + 1) % V for i in range(k)], dim=1)


@pytest.mark.parametrize("method", ["finetune", "similar_1_1", "smart"])
def test_a_training_step_reads_the_host_at_most_once(monkeypatch, method):
    model, batch = tiny_model(dropout=0.1), bert_batch()
    reg = {"finetune": None, "smart": SmartRegularizer(),
           "similar_1_1": make_noise_regularizer("similar_1_1", neighbour_ids(model))}[method]
    trainer = Trainer(model, TrainConfig(epochs=1, lr=1e-3), steps_per_epoch=3, regularizer=reg)
    trainer.train_step(batch)  # warm-up: optimiser state exists
    counter = SyncCounter(monkeypatch)
    counter.active = True
    parts = trainer.train_step(batch)
    counter.active = False
    assert counter.count <= 1, counter.count
    counter.active = True
    on_device = trainer.step_on_device(batch)
    counter.active = False
    assert counter.count <= 1, counter.count  # the step itself reads nothing back
    assert set(parts) == set(to_host(on_device))
    if method != "finetune":
        assert parts["noise_ratio"] > 0


def test_device_statistics_give_the_same_epoch_means_as_per_step_reads():
    batch = bert_batch()
    runs = []
    for per_step in (False, True):
        torch.manual_seed(0)
        model = tiny_model(dropout=0.1)
        reg = make_noise_regularizer("similar_1_1", neighbour_ids(model))
        trainer = Trainer(model, TrainConfig(epochs=1, lr=1e-3), steps_per_epoch=3, regularizer=reg)
        result = trainer.fit(lambda e: [(batch, None)] * 3, lambda m: {"f1": 0.0},
                             on_step=(lambda s, p: None) if per_step else None)
        runs.append({k: v for k, v in result.history[0].train.items() if k != "step_time"})
    assert runs[0] == runs[1]


# ----------------------------------------------------------------------------- the config key
PRECISION_TRAINABLES = ("classifier", "faithfulness", "finetune", "bios_debias", "mlm", "restorability")


@pytest.mark.parametrize("name", PRECISION_TRAINABLES)
def test_every_training_or_evaluating_trainable_takes_precision(name):
    from trainables import TRAINABLES

    parse = TRAINABLES[name].parse_config
    assert parse({}).precision == "auto"
    assert parse({"precision": "bf16"}).precision == "bf16"
    with pytest.raises(ValueError, match=r"precision: must be one of auto, fp32, bf16, fp16, got 'fp8'"):
        parse({"precision": "fp8"})


def test_auto_is_fp32_on_cpu_and_trains_the_same_numbers():
    from trainables.classifier.trial import run_trial
    from trainables.protocol import runtime_precision
    from trainables.classifier.config import parse_config

    assert runtime_precision(parse_config({}), "cpu").name == "fp32"
    tiny = dict(synthetic_size=160, epochs=1, embedding_dim=8, hidden_dim=8, attention_dim=8,
                regularizer="attention_vat")
    auto = run_trial({**tiny, "precision": "auto"}, lambda *_: None).metrics
    fp32 = run_trial({**tiny, "precision": "fp32"}, lambda *_: None).metrics
    assert {k: v for k, v in auto.items() if "time" not in k} == {k: v for k, v in fp32.items() if "time" not in k}


def test_bf16_autocast_trains_a_classifier_on_cpu():
    from trainables.classifier.trial import run_trial

    tiny = dict(synthetic_size=160, epochs=1, embedding_dim=8, hidden_dim=8, attention_dim=8,
                regularizer="attention_vat")
    bf16 = run_trial({**tiny, "precision": "bf16"}, lambda *_: None).metrics
    fp32 = run_trial({**tiny, "precision": "fp32"}, lambda *_: None).metrics
    assert math.isfinite(bf16["train/loss"]) and 0 <= bf16["test/accuracy"] <= 1
    assert abs(bf16["train/loss"] - fp32["train/loss"]) < 5e-2

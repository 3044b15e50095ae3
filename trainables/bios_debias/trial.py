"""Gender-bias mitigation on Bias in Bios by cancelling gender words during fine-tuning (cancel-out.txt section 4).

The ``finetune`` trainable (:mod:`trainables.finetune`: same model loading,
batching, the one training loop, checkpoints) with two hooks:

* data: ``dataset`` is ``bias_in_bios`` (hub ``LabHC/bias_in_bios``), a local file
  with ``text`` / ``profession`` / ``gender`` fields (``{split}`` placeholder
  allowed; one file is split into train/valid/test) or ``synthetic_bios``
  (:func:`xaicore.bios.synthetic_bios`: planted skew carried only by gender
  words; gender-balanced test set). Gender words (pronouns and gendered
  titles always; first names from ``names_file`` or NLTK's ``names`` corpus
  when installed, see ``bias/names_source``) are each bio's rationale, so
  every batch carries them as ``rationale_mask``.
* objective: ``cancel_out`` (:mod:`xaicore.cancel_out`) removes the gender words
  in every training batch (``original`` = plain fine-tuning); the
  marginalize methods use the masked LM ``mlm`` (default: ``model``, which
  must then have an MLM head and the same tokenizer) with ``k`` candidates;
  ``uniform_marginalize`` with ``k = 2`` is section 4.1 (greedy filling of every
  masked gender word from the top-2 candidates of the first, probabilities of
  the two sentences averaged before the loss). Evaluation reads the original,
  uncancelled test bios.

Metrics (final report): the ``finetune`` metrics plus ``bias/gap_r`` (Pearson r
between the per-profession TPR gap ``TPR_f - TPR_m`` on test, eq. 2, and the
*training* female rate), ``bias/gap_p_value``, ``bias/mean_abs_gap``,
``bias/n_professions``. Artifacts: ``fig7_gap_vs_female_rate.png`` (Fig. 7) and
``tpr_gap.csv`` (per profession: female rate, TPR_f, TPR_m, gap, counts).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from trainables.finetune import FinetuneSetup, FinetuneTrialConfig, train_finetune
from trainables.finetune_artifacts import write_artifacts
from trainables.protocol import Trainable, Trial, TrialResult
from xaicore.bios import load_bios, load_names, planted_female_rates, synthetic_bios, with_gender_rationales
from xaicore.cancel_out import CANCEL_OUT_METHODS, CANCEL_OUT_REGISTRY, CancelOut, cancel_out_loss, cancel_out_methods
from xaicore.fairness import female_rate, gap_correlation, tpr_gap
from xaicore.metrics import predict

SYNTHETIC_BIOS = "synthetic_bios"
DEBIAS_METHODS = ("original",) + CANCEL_OUT_METHODS


def _needs(cancel_out: str, what: str) -> bool:
    """Whether the registered cancel-out method ``cancel_out`` declares capability ``what``."""
    return cancel_out in CANCEL_OUT_REGISTRY and getattr(CANCEL_OUT_REGISTRY[cancel_out], what)


BIAS_METRICS = ("bias/gap_r", "bias/gap_p_value", "bias/mean_abs_gap", "bias/n_professions")


@dataclass(frozen=True)
class BiosDebiasConfig(FinetuneTrialConfig):
    """:class:`~trainables.finetune.FinetuneTrialConfig` plus:

    Attributes:
        cancel_out: ``original`` (no cancelling) or a :data:`xaicore.cancel_out.CANCEL_OUT_METHODS` name.
        k: marginalization candidates (section 4.1 uses 2).
        mlm: masked LM for the marginalize methods (default: ``model``).
        names_file: first names to cancel, one per line (default: NLTK ``names`` if installed, else none).
        synthetic_per_profession: bios per profession of ``synthetic_bios`` (train; valid/test use half).
        synthetic_cue_rate: share of synthetic bios with their profession's cue word.
        gender_column / label_column / text_column: fields of a local BIOS file.
    """

    dataset: str = SYNTHETIC_BIOS
    cancel_out: str = "original"
    k: int = 2
    mlm: Optional[str] = None
    names_file: Optional[str] = None
    synthetic_per_profession: int = 200
    synthetic_cue_rate: float = 0.5
    gender_column: str = "gender"
    label_column: str = "profession"
    text_column: str = "text"

    def problems(self) -> list[str]:
        base = dataclasses.replace(self, dataset="synthetic") if self.dataset == SYNTHETIC_BIOS else self
        # a missing local model directory is an I/O problem: preflight() reports it before Ray starts
        p = [x for x in FinetuneTrialConfig.problems(base) if not x.startswith("model: local model directory")]
        if self.cancel_out != "original" and self.cancel_out not in CANCEL_OUT_REGISTRY:
            p.append(f"cancel_out: must be one of {', '.join(('original',) + cancel_out_methods())}, "
                     f"got {self.cancel_out!r}")
        if self.k < 1:
            p.append(f"k: the number of marginalization candidates must be >= 1, got {self.k}")
        if self.synthetic_per_profession < 4:
            p.append(f"synthetic_per_profession: must be >= 4, got {self.synthetic_per_profession}")
        if not 0 <= self.synthetic_cue_rate <= 1:
            p.append(f"synthetic_cue_rate: must be in [0, 1], got {self.synthetic_cue_rate}")
        if self.names_file is not None and not Path(self.names_file).expanduser().is_file():
            p.append(f"names_file: no such file {self.names_file!r}")
        return p


def parse_config(config: Mapping[str, Any] | BiosDebiasConfig) -> BiosDebiasConfig:
    return TRAINABLE.parse_config(config)


def preflight(cfg: BiosDebiasConfig) -> list[str]:
    """Before Ray: the model (and MLM) exist and have a mask token where the method needs one; a local
    BIOS file has a gender column."""
    from trainables.finetune import preflight as finetune_preflight
    from trainables.restorability import mlm_problems

    problems = list(finetune_preflight(dataclasses.replace(cfg, dataset="synthetic"))) \
        if cfg.dataset == SYNTHETIC_BIOS else []
    model = Path(cfg.model).expanduser()
    if cfg.model.startswith((".", "/", "~")) and not model.is_dir():
        problems.append(f"model: local model directory {cfg.model!r} does not exist (sweeps/mlm.yaml builds "
                        "../mlm-minilm)")
    if _needs(cfg.cancel_out, "needs_mask_token"):
        problems += [p.replace("mlm:", "mlm/model:") for p in
                     mlm_problems(cfg.mlm or cfg.model_path, local_files_only=cfg.local_files_only)]
    if cfg.dataset == "bias_in_bios":
        from trainables.data_setup import data_source_problems

        problems += data_source_problems(cfg.dataset)  # a hub key: cached, or the hub answers
    elif cfg.dataset != SYNTHETIC_BIOS:
        path = Path(cfg.dataset.replace("{split}", cfg.train_split))
        if not path.is_file():
            problems.append(f"dataset: no such file {str(path)!r}")
        else:
            from trainables.data_setup import data_source_problems

            columns = cfg.columns or {"text": cfg.text_column, "label": cfg.label_column}
            data = data_source_problems(cfg.dataset, columns=columns, train_split=cfg.train_split,
                                        valid_split=cfg.valid_split, test_split=cfg.test_split,
                                        drop_empty=cfg.drop_empty, batch_size=cfg.batch_size,
                                        valid_fraction=cfg.valid_fraction)
            problems += data
            try:  # the gender column and its values
                load_bios(str(path), gender_column=cfg.gender_column, text_column=cfg.text_column,
                          label_column=cfg.label_column, drop_empty=cfg.drop_empty)
            except ValueError as err:
                if not any(str(err) in line for line in data):  # not a problem of the file check above
                    problems.append(f"dataset: {err}")
    return problems


class BiosSetup(FinetuneSetup):
    """:class:`FinetuneSetup` with BIOS data (gender words as rationales) and the cancel-out objective."""

    def load_data(self) -> None:
        cfg = self.cfg
        self.valid_parts, self.test_parts = [], []
        names, self.names_source = load_names(cfg.names_file)
        self._data_seed = getattr(cfg, "data_seed", cfg.seed)  # the generated data: data_seed where there is one
        if cfg.dataset == SYNTHETIC_BIOS:
            n = cfg.synthetic_per_profession
            self.train = synthetic_bios(n, cue_rate=cfg.synthetic_cue_rate, seed=self._data_seed * 3)
            self.valid = synthetic_bios(max(4, n // 2), cue_rate=cfg.synthetic_cue_rate, seed=self._data_seed * 3 + 1)
            balanced = [0.5] * len(planted_female_rates())
            self.test = synthetic_bios(max(4, n // 2), female_rates=balanced, cue_rate=cfg.synthetic_cue_rate,
                                       seed=self._data_seed * 3 + 2)
            self.names_source = "synthetic generator's names"
            return
        if cfg.dataset not in ("bias_in_bios",) and not cfg.columns:  # a local file: its BIOS field names
            self.cfg = dataclasses.replace(cfg, columns={"text": cfg.text_column, "label": cfg.label_column})
        super().load_data()
        self.cfg = cfg
        for split in ("train", "valid", "test"):
            data = getattr(self, split)
            if cfg.gender_column not in data.extras:
                raise ValueError(f"{cfg.dataset} ({split}): no {cfg.gender_column!r} column; the TPR gap needs it")
            genders = tuple("f" if str(g).lower() in ("f", "female", "1") else "m"
                            for g in data.extras[cfg.gender_column])
            data = dataclasses.replace(data, extras={**data.extras, "gender": genders})
            setattr(self, split, with_gender_rationales(data, names))

    def loss_fn(self):
        cfg = self.cfg
        if cfg.cancel_out == "original":
            return None
        mask_id = self.tokenizer.mask_token_id
        mlm = None
        if _needs(cfg.cancel_out, "needs_mlm"):
            from xaicore.masked_lm import load_masked_lm

            mlm, tok = load_masked_lm(cfg.mlm or cfg.model_path, local_files_only=cfg.local_files_only)
            if tok.get_vocab() != self.tokenizer.get_vocab():
                raise ValueError("mlm: its tokenizer differs from the classifier's; they must share one vocabulary")
            mlm = mlm.to(self.device).eval()
            for p in mlm.parameters():
                p.requires_grad_(False)
        if _needs(cfg.cancel_out, "needs_mask_token") and mask_id is None:
            raise ValueError(f"cancel_out {cfg.cancel_out!r} needs a tokenizer with a mask token")
        self.model.mask_token_id = mask_id
        method = CancelOut(cfg.cancel_out, k=cfg.k, mlm=mlm, mask_token_id=mask_id,
                           exclude_ids=tuple(self.tokenizer.all_special_ids))
        method.check(self.model)
        return cancel_out_loss(method)


def bias_report(setup: BiosSetup) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """TPR gap per profession on the (uncancelled) test split and its correlation with the training female rate."""
    labels, probs = predict(setup.model, setup.test_batches, setup.device)
    preds = probs.argmax(1)
    C = setup.num_classes
    gaps = tpr_gap(labels, preds, setup.test.extras["gender"], C)
    rate = female_rate(setup.train.labels, setup.train.extras["gender"], C)
    corr = gap_correlation(gaps["gap"], rate)
    metrics = {"bias/gap_r": corr["r"], "bias/gap_p_value": corr["p_value"],
               "bias/mean_abs_gap": float(np.nanmean(np.abs(gaps["gap"]))), "bias/n_professions": corr["n_classes"]}
    return metrics, {**gaps, "female_rate": rate}


def plot_gap(table: dict[str, np.ndarray], names, r: float, path: Path, title: str) -> Path:
    """Fig. 7: per profession, training female rate (x) vs TPR gap female - male (y)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    x, y = table["female_rate"], table["gap"]
    ax.scatter(x, y)
    for i, name in enumerate(names):
        if not (np.isnan(x[i]) or np.isnan(y[i])):
            ax.annotate(str(name), (x[i], y[i]), fontsize=7)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("female rate (training)")
    ax.set_ylabel("TPR gap (female - male)")
    ax.set_title(f"{title}  r = {r:.3f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path


def run(cfg: BiosDebiasConfig, trial: Trial) -> TrialResult:
    """Fine-tune with the gender words cancelled; finish with accuracy and the gap correlation."""
    setup, history, final, checkpoint, steps = train_finetune(cfg, trial.report, resume=trial.resume,
                                                              setup_cls=BiosSetup, interim_dir=trial.out_dir)
    bias, table = bias_report(setup)
    final = {**final, **bias}
    state = checkpoint()
    artifacts: list[Path] = []
    if trial.out_dir is not None:
        out = trial.out_dir
        artifacts += write_artifacts(setup, history, steps, out)
        names = setup.train.label_names or [str(i) for i in range(setup.num_classes)]
        artifacts.append(plot_gap(table, names, bias["bias/gap_r"], out / "fig7_gap_vs_female_rate.png",
                                  f"{cfg.dataset}, {cfg.cancel_out}"))
        lines = ["profession,female_rate,tpr_f,tpr_m,gap,n_f,n_m"]
        for i, name in enumerate(names):
            lines.append(f"{name},{table['female_rate'][i]:.4f},{table['tpr_f'][i]:.4f},{table['tpr_m'][i]:.4f},"
                         f"{table['gap'][i]:.4f},{table['n_f'][i]},{table['n_m'][i]}")
        (out / "tpr_gap.csv").write_text("\n".join(lines) + "\n")
        artifacts.append(out / "tpr_gap.csv")
    return trial.finish(final, state, history=history, artifacts=artifacts)


TRAINABLE = Trainable(name="bios_debias", config=BiosDebiasConfig, run=run, preflight=preflight)
#: ``run_trial(config, report, *, resume=None, out_dir=None) -> TrialResult``: one trial in plain Python
run_trial = TRAINABLE.run_trial

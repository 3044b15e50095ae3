"""The ``bios_debias`` trial config: the ``finetune`` keys plus the BIOS data and cancel-out settings, their
pure checks (:func:`parse_config`) and the I/O checks run before Ray starts (:func:`preflight`)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from trainables.finetune.config import FinetuneTrialConfig
from trainables.finetune.config import preflight as finetune_preflight
from trainables.protocol import parse_trial_config
from xaicore.bias.bios import load_bios
from xaicore.cancel_out.methods import CANCEL_OUT_METHODS, CANCEL_OUT_REGISTRY, cancel_out_methods

SYNTHETIC_BIOS = "synthetic_bios"
DEBIAS_METHODS = ("original",) + CANCEL_OUT_METHODS


def cancel_out_needs(cancel_out: str, what: str) -> bool:
    """Whether the registered cancel-out method ``cancel_out`` declares capability ``what``."""
    return cancel_out in CANCEL_OUT_REGISTRY and getattr(CANCEL_OUT_REGISTRY[cancel_out], what)


@dataclass(frozen=True)
class BiosDebiasConfig(FinetuneTrialConfig):
    """:class:`~trainables.finetune.config.FinetuneTrialConfig` plus:

    Attributes:
        cancel_out: ``original`` (no cancelling) or a :data:`xaicore.cancel_out.methods.CANCEL_OUT_METHODS` name.
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
    return parse_trial_config(BiosDebiasConfig, "bios_debias", config)


def preflight(cfg: BiosDebiasConfig) -> list[str]:
    """Before Ray: the model (and MLM) exist and have a mask token where the method needs one; a local
    BIOS file has a gender column."""
    from trainables.restorability.config import mlm_problems

    problems = list(finetune_preflight(dataclasses.replace(cfg, dataset="synthetic"))) \
        if cfg.dataset == SYNTHETIC_BIOS else []
    model = Path(cfg.model).expanduser()
    if cfg.model.startswith((".", "/", "~")) and not model.is_dir():
        problems.append(f"model: local model directory {cfg.model!r} does not exist (sweeps/mlm.yaml builds "
                        "../mlm-minilm)")
    if cancel_out_needs(cfg.cancel_out, "needs_mask_token"):
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

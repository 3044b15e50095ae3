"""The ``finetune`` setup with BIOS data (gender words as rationales) and the cancel-out objective (:class:`BiosSetup`)."""
from __future__ import annotations

import dataclasses

from trainables.bios_debias.config import SYNTHETIC_BIOS, cancel_out_needs
from trainables.finetune.setup import FinetuneSetup
from xaicore.bias.bios import load_names, planted_female_rates, synthetic_bios, with_gender_rationales
from xaicore.cancel_out.methods import CancelOut, cancel_out_loss


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
        if cancel_out_needs(cfg.cancel_out, "needs_mlm"):
            from xaicore.models.masked_lm import load_masked_lm

            mlm, tok = load_masked_lm(cfg.mlm or cfg.model_path, local_files_only=cfg.local_files_only)
            if tok.get_vocab() != self.tokenizer.get_vocab():
                raise ValueError("mlm: its tokenizer differs from the classifier's; they must share one vocabulary")
            mlm = mlm.to(self.device).eval()
            for p in mlm.parameters():
                p.requires_grad_(False)
        if cancel_out_needs(cfg.cancel_out, "needs_mask_token") and mask_id is None:
            raise ValueError(f"cancel_out {cfg.cancel_out!r} needs a tokenizer with a mask token")
        self.model.mask_token_id = mask_id
        method = CancelOut(cfg.cancel_out, k=cfg.k, mlm=mlm, mask_token_id=mask_id,
                           exclude_ids=tuple(self.tokenizer.all_special_ids))
        method.check(self.model)
        return cancel_out_loss(method)

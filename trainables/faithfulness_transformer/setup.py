"""A ``finetune`` setup whose classifier is a saved model directory (``model_dir``: safetensors weights, its
own tokenizer, local files only) or fine-tuned as the ``finetune`` trainable does, and the config's
cancel-out method bound to that model (:class:`FaithfulnessTransformerSetup`)."""
from __future__ import annotations

from typing import Optional

from trainables.faithfulness_transformer.config import FaithfulnessTransformerTrialConfig
from trainables.finetune.setup import FinetuneSetup
from xaicore.cancel_out.methods import CANCEL_OUT_REGISTRY, CancelOut
from xaicore.models.transformer import TransformerClassifierConfig


class FaithfulnessTransformerSetup(FinetuneSetup):
    """:class:`~trainables.finetune.setup.FinetuneSetup` with the classifier read from ``cfg.model_dir`` (when
    set: its tokenizer tokenises the data), the tokenizer's [MASK] id on the model (``model.mask_token_id``,
    read by the mask-based cancel-out methods) and :meth:`cancel_out`."""

    cfg: FaithfulnessTransformerTrialConfig

    def model_config(self, path: str, local: bool) -> TransformerClassifierConfig:
        if self.cfg.model_dir is None:
            return super().model_config(path, local)
        return TransformerClassifierConfig(path, num_classes=self.num_classes, local_files_only=True,
                                           use_safetensors=True)

    def __init__(self, cfg: FaithfulnessTransformerTrialConfig) -> None:
        super().__init__(cfg)
        if self.model.num_classes != self.num_classes:
            raise ValueError(f"model_dir {cfg.model_dir}: a {self.model.num_classes}-class classifier, and this "
                             f"config's data have {self.num_classes} classes: use the data of the trial that saved it")
        if self.tokenizer.mask_token_id is not None:
            self.model.mask_token_id = int(self.tokenizer.mask_token_id)
        self._cancel_out: Optional[CancelOut] = None

    def id_tokens(self, ids) -> list[str]:
        """The tokenizer's token strings of ``ids`` (heatmaps)."""
        return list(self.tokenizer.convert_ids_to_tokens([int(i) for i in ids]))

    def cancel_out(self) -> CancelOut:
        """``cfg.cancel_out`` with this tokenizer's [MASK] / PAD ids, its special ids never proposed as
        candidates, and for the marginalize methods the masked LM of ``cfg.mlm`` (read once; safetensors
        weights only; it must share the classifier's vocabulary) with ``k`` candidates."""
        if self._cancel_out is not None:
            return self._cancel_out
        cfg, tok = self.cfg, self.tokenizer
        mlm = None
        if CANCEL_OUT_REGISTRY[cfg.cancel_out].needs_mlm:
            from xaicore.models.masked_lm import load_masked_lm

            if cfg.mlm is None:
                raise ValueError(f"cancel_out {cfg.cancel_out!r} needs mlm: (a masked LM sharing the tokenizer)")
            mlm, mlm_tok = load_masked_lm(cfg.mlm, local_files_only=True, use_safetensors=True)
            if mlm_tok.get_vocab() != tok.get_vocab():
                raise ValueError(f"mlm {cfg.mlm}: its tokenizer differs from the classifier's: the masked LM must "
                                 "share its vocabulary")
            mlm = mlm.to(self.device).eval()
        self._cancel_out = CancelOut(cfg.cancel_out, k=cfg.k, mlm=mlm, mask_token_id=tok.mask_token_id,
                                     pad_token_id=tok.pad_token_id, exclude_ids=tuple(tok.all_special_ids))
        self._cancel_out.check(self.model)  # a mask-based method without a [MASK]: one clear error
        return self._cancel_out

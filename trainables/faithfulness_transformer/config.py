"""The ``faithfulness_transformer`` trial config: the ``finetune`` keys (the evaluated model's data and
tokenisation) plus the faithfulness evaluation settings, the saved model (``model_dir``) and the masked LM of
the marginalize cancel-out methods (``mlm``, ``k``); its pure checks (:func:`parse_config`) and the I/O
checks before Ray starts (:func:`preflight`, :func:`evaluation_problems`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from trainables.faithfulness.config import FaithfulnessSettings, settings_problems
from trainables.faithfulness.config import evaluation_problems as faith_evaluation_problems
from trainables.faithfulness_transformer.metrics import DEFAULT_CANCEL_OUT, transformer_cancel_outs
from trainables.finetune.config import FinetuneTrialConfig, data_problems
from trainables.finetune.config import preflight as finetune_preflight
from trainables.protocol import parse_trial_config

#: the attribution methods a transformer classifier admits (no single attention distribution)
DEFAULT_METHODS = ("saliency", "integrated_gradients", "input_x_gradient")


@dataclass(frozen=True)
class FaithfulnessTransformerTrialConfig(FaithfulnessSettings, FinetuneTrialConfig):
    """A :class:`~trainables.finetune.config.FinetuneTrialConfig` plus the
    :class:`~trainables.faithfulness.config.FaithfulnessSettings`.

    Attributes:
        methods: as the faithfulness trainable's, without ``attention`` (a transformer has no single attention
            distribution); default saliency, IntegratedGradients, InputXGradient.
        cancel_out: any registered method (default ``zero_vector``): ``mask_token`` writes the tokenizer's
            [MASK] id; ``uniform_marginalize`` / ``weighted_marginalize`` need ``mlm``.
        model_dir: a saved classifier directory (``save_model: true`` of a ``finetune`` trial writes ``model/``:
            config, ``model.safetensors``, tokenizer) evaluated instead of fine-tuning ``model``; read with
            ``from_pretrained``, local files only, weights from safetensors only. Its tokenizer tokenises the data.
        mlm: a masked LM sharing the classifier's tokenizer (a local directory: an ``mlm`` trial's saved
            ``mlm/``; ``minilm``: the packaged MiniLM encoder with an *untrained* MLM head, for smoke runs
            only), read as ``model_dir``; needed by the marginalize methods only.
        k: the masked LM's candidates per removed token (marginalize methods).
    """

    methods: tuple = DEFAULT_METHODS
    cancel_out: str = DEFAULT_CANCEL_OUT
    model_dir: Optional[str] = None
    mlm: Optional[str] = None
    k: int = 10

    @property
    def model_path(self) -> str:
        """The classifier read: ``model_dir`` when set, else the ``finetune`` ``model``."""
        return str(Path(self.model_dir).expanduser()) if self.model_dir is not None else super().model_path

    def problems(self) -> list[str]:
        from xaicore.cancel_out.methods import CANCEL_OUT_REGISTRY
        from xaicore.faithfulness.attribution import ATTRIBUTION_METHODS

        p = super().problems() + settings_problems(self)
        attention = [m for m in self.methods if m in ATTRIBUTION_METHODS and ATTRIBUTION_METHODS[m].needs_attention]
        if attention:
            p.append(f"methods: {attention} read one additive attention distribution, which a transformer "
                     "classifier has not; leave them out")
        if self.cancel_out not in transformer_cancel_outs():
            p.append(f"cancel_out: must be one of {', '.join(transformer_cancel_outs())}, got {self.cancel_out!r}")
        elif CANCEL_OUT_REGISTRY[self.cancel_out].needs_mlm and self.mlm is None:
            p.append(f"cancel_out: {self.cancel_out!r} fills the removed tokens with a masked LM's candidates: set "
                     "mlm: to a masked LM directory sharing the classifier's tokenizer (the mlm/ of an mlm trial: "
                     "sweeps/mlm.yaml), or use zero_vector / mask_token")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            p.append(f"k: must be an integer >= 1, got {self.k!r}")
        if self.model_dir is not None and not Path(self.model_dir).expanduser().is_dir():
            p.append(f"model_dir: no such directory {self.model_dir!r}")
        return p


def parse_config(config: Mapping[str, Any] | FaithfulnessTransformerTrialConfig) -> FaithfulnessTransformerTrialConfig:
    return parse_trial_config(FaithfulnessTransformerTrialConfig, "faithfulness_transformer", config)


def model_dir_problems(path: str) -> list[str]:
    """A saved classifier directory as the trial reads it: ``config.json``, safetensors weights (never a
    pickled ``pytorch_model.bin``) and a tokenizer."""
    d = Path(path).expanduser()
    if not (d / "config.json").is_file():
        return [f"model_dir: {path!r} is not a Hugging Face model directory (no config.json); a finetune trial "
                "with save_model: true writes one (its model/ artifact)"]
    if not any(d.glob("*.safetensors")):
        return [f"model_dir: {path!r} has no *.safetensors weights; only safetensors weights are read "
                "(a pickled pytorch_model.bin is not unpickled): re-save it with save_pretrained"]
    try:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(d), local_files_only=True)
    except (OSError, ValueError) as err:
        return [f"model_dir: cannot load a tokenizer from {path!r}: {err}"]
    return []


def mlm_problems(cfg: FaithfulnessTransformerTrialConfig) -> list[str]:
    """The masked LM of a marginalize method: there, with a mask token, and the classifier's vocabulary when
    its tokenizer is a local directory (``model_dir``; before it is downloaded, ``xaisweep evaluate``'s check,
    the ``model`` the finetune trial started from, whose tokenizer it saved)."""
    from trainables.restorability.config import mlm_problems as location_problems
    from xaicore.cancel_out.methods import CANCEL_OUT_REGISTRY

    if cfg.mlm is None or not CANCEL_OUT_REGISTRY[cfg.cancel_out].needs_mlm:
        return []
    problems = location_problems(cfg.mlm, local_files_only=True)
    classifier = cfg.model_path
    if problems or not Path(classifier).is_dir() or not Path(cfg.mlm).expanduser().is_dir():
        return problems
    from transformers import AutoTokenizer

    try:
        same = (AutoTokenizer.from_pretrained(str(Path(cfg.mlm).expanduser()), local_files_only=True).get_vocab()
                == AutoTokenizer.from_pretrained(classifier, local_files_only=True).get_vocab())
    except (OSError, ValueError) as err:
        return [f"mlm: cannot compare the tokenizers of {cfg.mlm!r} and {classifier!r}: {err}"]
    return [] if same else [f"mlm: the tokenizer of {cfg.mlm!r} differs from the classifier's ({classifier!r}): "
                            "the masked LM must share its vocabulary"]


def evaluation_problems(cfg: FaithfulnessTransformerTrialConfig) -> list[str]:
    """What ``xaisweep evaluate`` checks before Ray starts (the model is downloaded later): the data, the
    masked LM, rationales asked of data without them."""
    return faith_evaluation_problems(cfg) + mlm_problems(cfg) + data_problems(cfg)


def preflight(cfg: FaithfulnessTransformerTrialConfig) -> list[str]:
    """I/O checks before Ray starts: the saved model (:func:`model_dir_problems`) and the data, or, without
    ``model_dir``, those of the ``finetune`` trainable (the model it fine-tunes); the masked LM."""
    if cfg.model_dir is None:
        problems = finetune_preflight(cfg)
    else:
        problems = model_dir_problems(cfg.model_dir) + data_problems(cfg)
    return problems + mlm_problems(cfg)

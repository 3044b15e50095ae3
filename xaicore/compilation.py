"""Optional :func:`torch.compile` of a run's model, its compilations counted (issue 18, item 5).

:class:`Compilation` is what the training loop (and restorability's MLM passes) take, never a config dict:
``enabled=False`` (the default, :data:`EAGER`) changes nothing. ``enabled=True``:

* **What is compiled** (:func:`compile_regions`): the ``forward`` of each block of the model's largest
  :class:`~torch.nn.ModuleList` of same-type blocks (the layers of a Hugging Face encoder: "regional
  compilation", one compiled block serves every layer; the embeddings, pooler and head run eagerly), or
  else the model's own ``forward`` (the BiLSTM). A masked LM's training and evaluation call its encoder
  directly (:mod:`xaicore.models.masked_lm`), never the model's forward: its layers are what runs.
  Only ``forward`` is replaced (an instance attribute), so the module's hooks, ``state_dict``, parameters
  and every other method stay as they are and run eagerly: the perturbation arithmetic of the
  regularisers (:mod:`xaicore.perturbation`: SMART's noise and ascent step, the VAT probe, the
  similar-word noise), the attention-only re-runs (``attend``), ``embedding_output`` and the masked LM's
  last-layer shortcut (a pre-hook on the last layer) are never traced. They call the compiled forward
  like the eager one and stay fp32 (:mod:`xaicore.precision`). Dynamo does not trace ``nn.LSTM``: the
  BiLSTM's forward is compiled around its two LSTMs (graph breaks), which run eagerly.
* **Padded lengths** are rounded up to a multiple of :attr:`Compilation.pad_multiple` (8) by the batching
  (``pad_multiple=`` of :mod:`xaicore.data.batching`, :func:`xaicore.data.encoded.padded_width`), so a
  run meets at most ``max_length / 8`` distinct lengths. The masks cover the extra padding (attention,
  pooling and loss ignore it). With ``dynamic=None`` (torch's default, automatic dynamic shapes) a
  region is compiled for its first shape and once more with the wobbling sizes symbolic; with
  ``dynamic=False`` (static shapes) once per distinct ``(batch, length)`` shape, which the rounding bounds.
* **Counting**: the backend is wrapped (:class:`CompileCounter`): every graph handed to it is counted
  (:attr:`CompileCounter.graphs`; a graph break gives several graphs per call, a guard failure such as a new
  shape or ``train()`` / ``eval()`` one more). The training loop reports the graphs compiled during each
  epoch as ``recompiles`` (the first compilations count in the first epoch; a later epoch above 0 means
  new shapes or guards). A region past dynamo's ``recompile_limit`` (8 per function) runs eagerly from
  then on (torch logs a warning); the count stops growing there.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

__all__ = ["EAGER", "PAD_MULTIPLE", "CompileCounter", "Compilation", "compile_regions", "compile_model",
           "forget_compiled", "known_backends"]

#: the multiple padded lengths are rounded up to when compiling (tensor-core friendly, bounded shapes)
PAD_MULTIPLE = 8


def forget_compiled() -> None:
    """Drop every function's compiled code and dynamo's caches in this process (``torch._dynamo.reset()``):
    a new trial in a reused worker starts without the graphs of the last one, which would otherwise count
    towards dynamo's recompile limit of the same functions."""
    import torch._dynamo

    torch._dynamo.reset()


def known_backends() -> tuple[str, ...]:
    """The names :func:`torch.compile` accepts as ``backend`` here (``inductor``, ``aot_eager``, ``eager``, ...)."""
    import torch._dynamo

    return tuple(sorted(set(torch._dynamo.list_backends(exclude_tags=())) | {"inductor"}))


class CompileCounter:
    """A :func:`torch.compile` backend that counts the graphs it compiles and hands them to ``backend``.

    Attributes:
        backend: the name of the wrapped backend.
        graphs: graphs compiled so far (every call of the backend: first compilations, recompilations after
            a guard failure, and each piece of a graph-broken function).
        seconds: wall time spent inside the wrapped backend (the backend's share of compile time; dynamo's
            tracing is not included).
    """

    def __init__(self, backend: str = "inductor") -> None:
        import torch._dynamo

        self.backend = backend
        self._inner = torch._dynamo.lookup_backend(backend)
        self.graphs = 0
        self.seconds = 0.0

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: Sequence[Any]) -> Callable:
        self.graphs += 1
        t0 = time.perf_counter()
        try:
            return self._inner(gm, example_inputs)
        finally:
            self.seconds += time.perf_counter() - t0


def compile_regions(model: nn.Module) -> list[nn.Module]:
    """The modules whose ``forward`` :func:`compile_model` compiles: the blocks of ``model``'s largest (by
    parameter count) :class:`~torch.nn.ModuleList` of blocks of one type (a transformer's layers, one layer
    included), else ``[model]``."""
    best: Optional[nn.ModuleList] = None
    size = -1
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) >= 1 and len({type(m) for m in module}) == 1:
            n = sum(p.numel() for p in module.parameters())
            if n > size:
                best, size = module, n
    return list(best) if best is not None else [model]


def compile_model(model: nn.Module, *, backend: str = "inductor", dynamic: Optional[bool] = None,
                  regions: Optional[Sequence[nn.Module]] = None) -> CompileCounter:
    """Compile ``model`` in place: the ``forward`` of each region (default :func:`compile_regions`) becomes
    ``torch.compile(forward, backend=CompileCounter(backend), dynamic=dynamic)``. Returns the counter.

    Raises:
        ValueError: a region is compiled already.
    """
    counter = CompileCounter(backend)
    for region in (compile_regions(model) if regions is None else regions):
        if "forward" in vars(region):
            raise ValueError(f"{type(region).__name__}.forward is compiled (or replaced) already")
        region.forward = torch.compile(region.forward, backend=counter, dynamic=dynamic)
    return counter


@dataclass(frozen=True)
class Compilation:
    """Whether and how a run compiles its model (see the module docstring).

    Attributes:
        enabled: compile (``False``: eager, batches padded to their longest example as before).
        backend: the :func:`torch.compile` backend (``inductor``; ``aot_eager`` / ``eager`` trace without
            generating code: the tests).
        dynamic: ``dynamic`` of :func:`torch.compile` (``None``: automatic dynamic shapes; ``False``: static).
        multiple: padded lengths are rounded up to a multiple of this when ``enabled``.
    """

    enabled: bool = False
    backend: str = "inductor"
    dynamic: Optional[bool] = None
    multiple: int = PAD_MULTIPLE

    def __post_init__(self) -> None:
        if isinstance(self.multiple, bool) or not isinstance(self.multiple, int) or self.multiple < 1:
            raise ValueError(f"multiple must be an int >= 1, got {self.multiple!r}")

    @property
    def pad_multiple(self) -> Optional[int]:
        """``pad_multiple`` for the batching: :attr:`multiple` when compiling, ``None`` (longest) otherwise."""
        return self.multiple if self.enabled else None

    def apply(self, model: nn.Module, regions: Optional[Sequence[nn.Module]] = None) -> Optional[CompileCounter]:
        """Compile ``model`` in place (:func:`compile_model`) and return the counter; ``None`` (and nothing
        changed) when not ``enabled``."""
        if not self.enabled:
            return None
        return compile_model(model, backend=self.backend, dynamic=self.dynamic, regions=regions)


#: no compilation (the default everywhere)
EAGER = Compilation()

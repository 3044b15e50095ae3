"""Batch.to: a plain copy on CPU; pinned memory and non-blocking copies to a CUDA device."""
import pickle

import pytest
import torch

from xaicore.types import Batch


def batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 50, (3, 5), generator=g)
    mask = torch.arange(5)[None, :] < torch.tensor([5, 3, 1])[:, None]
    return Batch(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 0]),
                 token_type_ids=torch.zeros(3, 5, dtype=torch.long), special_tokens_mask=None,
                 rationale_mask=torch.zeros(3, 5, dtype=torch.bool), index=torch.arange(3))


def test_to_cpu_is_an_unchanged_copy():
    b = batch()
    moved = b.to("cpu")
    for name in ("input_ids", "attention_mask", "labels", "token_type_ids", "rationale_mask", "index"):
        src, dst = getattr(b, name), getattr(moved, name)
        assert dst.dtype == src.dtype and dst.shape == src.shape and dst.device.type == "cpu"
        assert torch.equal(dst, src) and not dst.is_pinned()
    assert moved.special_tokens_mask is None
    assert "_pinned_cache" not in vars(b) and "_pinned_cache" not in vars(moved)  # nothing pinned on CPU
    again = b.to(torch.device("cpu"))  # a torch.device works as well as its name
    assert torch.equal(again.input_ids, b.input_ids) and "_pinned_cache" not in vars(b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_to_cuda_pins_once_and_copies_non_blocking():
    b = batch()
    moved = b.to("cuda")
    torch.cuda.synchronize()
    assert moved.input_ids.device.type == "cuda" and moved.special_tokens_mask is None
    for name in ("input_ids", "attention_mask", "labels", "token_type_ids", "rationale_mask", "index"):
        src, dst = getattr(b, name), getattr(moved, name)
        assert dst.dtype == src.dtype and dst.shape == src.shape and torch.equal(dst.cpu(), src)
    assert not b.input_ids.is_pinned()  # the fields are left alone; the pinned copy is kept aside
    pinned = b._pinned()["input_ids"]
    assert pinned.is_pinned()
    b.to("cuda")
    assert b._pinned()["input_ids"].data_ptr() == pinned.data_ptr()  # pinned once
    b.input_ids[0, 0] = 49  # an in-place edit after pinning is copied, not the stale pinned copy
    again = b.to("cuda")
    torch.cuda.synchronize()
    assert int(again.input_ids[0, 0]) == 49
    assert not pickle.loads(pickle.dumps(b)).__dict__.get("_pinned_cache")


def test_to_cuda_path_pins_once_and_asks_for_non_blocking_copies(monkeypatch):
    """The CUDA path's logic without a GPU: ``pin_memory`` and the device copy are stand-ins that record calls."""
    pins, copies = [], []
    real_to = torch.Tensor.to

    def fake_pin(self):
        pins.append(self)
        return self.clone()

    def fake_to(self, *args, **kwargs):
        if args and isinstance(args[0], (str, torch.device)) and torch.device(args[0]).type == "cuda":
            copies.append((self, kwargs))
            return self.clone()
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    monkeypatch.setattr(torch.Tensor, "to", fake_to)
    b = batch()
    fields = ("input_ids", "attention_mask", "labels", "token_type_ids", "rationale_mask", "index")
    moved = b.to("cuda")
    assert len(pins) == len(fields) and all(kw == {"non_blocking": True} for _, kw in copies)
    assert all(src is not getattr(b, name) for (src, _), name in zip(copies, fields))  # copied from the pinned copies
    assert all(torch.equal(getattr(moved, n), getattr(b, n)) for n in fields) and moved.special_tokens_mask is None
    b.to("cuda:0")
    assert len(pins) == len(fields)  # pinned once
    b.input_ids.add_(1)  # an in-place edit: that field is pinned again, the others are not
    again = b.to("cuda")
    assert len(pins) == len(fields) + 1 and torch.equal(again.input_ids, b.input_ids)
    assert "_pinned_cache" in vars(b) and "_pinned_cache" not in vars(pickle.loads(pickle.dumps(b)))

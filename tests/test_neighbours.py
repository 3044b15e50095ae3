"""Neighbour tables: known answers against a brute-force top-k (similar-word-noise.txt sec. 3.1)."""
import torch

import pytest

from xaicore.perturbation.neighbours import (
    NeighbourTable, cached_neighbours, excluded_tokens, nearest_neighbours, readable_sample, vocabulary_hash,
)


def brute_force(weight, k, exclude):
    unit = weight / weight.norm(dim=1, keepdim=True)
    sims = unit @ unit.T  # (V, V): fine for a hand-built matrix
    sims.fill_diagonal_(float("-inf"))
    sims[:, exclude] = float("-inf")
    return sims.topk(k, dim=1)


def test_hand_built_matrix_known_neighbours():
    # rows 0/1 nearly parallel, 2 is -0, 3 orthogonal to 0, 4 between 0 and 3
    w = torch.tensor([[1.0, 0.0], [0.9, 0.1], [-1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    t = nearest_neighbours(w, 2)
    assert t.ids[0].tolist() == [1, 4]
    assert t.ids[3].tolist() == [4, 1]
    assert t.ids[2].tolist() == [3, 4]  # cos(2,3)=0 > cos(2,4)=-0.71 > cos(2,1)=-0.99
    torch.testing.assert_close(t.sims[0, 1], torch.tensor(2 ** -0.5))


def test_equals_brute_force_and_never_itself():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(97, 12, generator=g)
    exclude = torch.zeros(97, dtype=torch.bool)
    exclude[[0, 5, 50]] = True
    t = nearest_neighbours(w, 10, exclude=exclude)
    ref = brute_force(w, 10, exclude)
    rows = ~exclude
    assert torch.equal(t.ids[rows], ref.indices[rows])
    torch.testing.assert_close(t.sims[rows], ref.values[rows])
    assert not (t.ids[rows] == torch.arange(97)[rows, None]).any()
    assert not exclude[t.ids[rows]].any()
    # excluded rows map to themselves (noise built from them is 0)
    assert (t.ids[0] == 0).all() and (t.sims[0] == 0).all()
    assert (t.sims[rows][:, :-1] >= t.sims[rows][:, 1:]).all()


@pytest.mark.parametrize("chunk", [1, 7, 32, 1000])
def test_chunked_equals_unchunked(chunk):
    w = torch.randn(61, 8, generator=torch.Generator().manual_seed(1))
    full = nearest_neighbours(w, 5, chunk_size=10_000)
    part = nearest_neighbours(w, 5, chunk_size=chunk)
    assert torch.equal(full.ids, part.ids) and torch.equal(full.sims, part.sims)


def test_specials_and_unused_excluded():
    tokens = ["[PAD]", "[unused0]", "[unused1]", "[CLS]", "[SEP]", "good", "great", "nice", "bad", "<unused3>"]
    mask = excluded_tokens(tokens, special_ids=[0, 3, 4])
    assert mask.tolist() == [True, True, True, True, True, False, False, False, False, True]
    w = torch.randn(10, 4, generator=torch.Generator().manual_seed(2))
    w[1] = w[5] * 1.01  # an unused slot right next to "good" must still not be its neighbour
    t = nearest_neighbours(w, 3, exclude=mask)
    assert set(t.ids[5:9].flatten().tolist()) <= {5, 6, 7, 8}


def test_bad_input():
    w = torch.randn(5, 3)
    with pytest.raises(ValueError, match="k must be"):
        nearest_neighbours(w, 5)
    with pytest.raises(ValueError, match="exclude"):
        nearest_neighbours(w, 2, exclude=torch.zeros(4, dtype=torch.bool))
    with pytest.raises(ValueError):
        NeighbourTable(ids=torch.zeros(3, 2), sims=torch.zeros(3, 2))


def test_cache_roundtrip_and_key(tmp_path):
    tokens = [f"w{i}" for i in range(30)]
    w = torch.randn(30, 6, generator=torch.Generator().manual_seed(3))
    t1, path, hit = cached_neighbours(tmp_path, model_id="org/model", tokens=tokens, weight=w, k=4)
    assert not hit and path.is_file()
    t2, path2, hit2 = cached_neighbours(tmp_path, model_id="org/model", tokens=tokens, weight=w, k=4)
    assert hit2 and path2 == path and torch.equal(t1.ids, t2.ids)
    # another vocabulary (one token renamed) is another key
    _, path3, hit3 = cached_neighbours(tmp_path, model_id="org/model", tokens=tokens[:-1] + ["x"], weight=w, k=4)
    assert not hit3 and path3 != path
    assert vocabulary_hash(tokens) != vocabulary_hash(tokens[:-1] + ["x"])


def test_readable_sample():
    tokens = ["good", "great", "nice", "bad"]
    w = torch.tensor([[1.0, 0.1], [1.0, 0.2], [1.0, 0.5], [-1.0, 0.0]])
    lines = readable_sample(nearest_neighbours(w, 2), tokens, ["good", "absent"], n=2)
    assert lines == ["good -> great (1.00), nice (0.93)"]


def clustered(V=3000, E=48, centres=200, spread=0.35, seed=0):
    """Word-vector-like rows: ``centres`` directions plus noise, so each row has a few clearly closer rows."""
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(centres, E, generator=g)
    return c[torch.randint(0, centres, (V,), generator=g)] + spread * torch.randn(V, E, generator=g)


@pytest.mark.parametrize("weight, min_screened", [(clustered(), 0.9), (clustered(spread=2.0, seed=1), 0.0),
                                                   (torch.randn(1500, 32), 0.0)], ids=["clustered", "loose", "random"])
def test_bf16_screen_gives_the_fp32_table(weight, min_screened, monkeypatch):
    from xaicore.perturbation.neighbours import bf16_screen_available

    if not bf16_screen_available():
        pytest.skip("no native bf16 matmul on this CPU: nearest_neighbours runs the fp32 path only")
    """The bf16 screen (default ``screen=64``) returns the same ids as the plain fp32 matrix (``screen=0``), both
    where the screen is conclusive and where rows fall back to fp32 in full; excluded entries, a zero row."""
    import xaicore.perturbation.neighbours as nb

    weight = weight.clone()
    weight[7] = 0.0
    exclude = torch.zeros(weight.shape[0], dtype=torch.bool)
    exclude[[0, 5, 40, 41]] = True
    calls = {"screened": 0, "full": 0}
    inner = nb._topk_exact

    def counting(unit, rows, k, col_penalty, cols=None):
        calls["full" if cols is None else "screened"] += int(rows.numel())
        return inner(unit, rows, k, col_penalty, cols)

    monkeypatch.setattr(nb, "_topk_exact", counting)
    fast = nearest_neighbours(weight, 10, exclude=exclude, chunk_size=512)
    assert calls["screened"] > 0 and calls["full"] > 0  # the default runs the screen (and some rows in full)
    screened_rows = calls["screened"]
    plain = nearest_neighbours(weight, 10, exclude=exclude, chunk_size=512, screen=0)
    assert torch.equal(fast.ids, plain.ids)
    assert torch.equal(fast.sims, plain.sims)
    print(f"screened {screened_rows / weight.shape[0]:.3f} of the rows")
    assert screened_rows >= min_screened * weight.shape[0]  # clustered rows: the screen decides nearly all


def test_bf16_similarity_error_bound_holds():
    """The bound the screen relies on: |bf16 cosine - fp32 cosine| <= BF16_SIMILARITY_ERROR on unit rows."""
    from xaicore.perturbation.neighbours import BF16_SIMILARITY_ERROR

    for w in (clustered(), torch.randn(2000, 384), torch.randn(2000, 384).abs()):
        u = w / w.norm(dim=1, keepdim=True)
        ub = u.to(torch.bfloat16)
        err = ((ub @ ub.T).float() - u @ u.T).abs().max()
        assert float(err) <= BF16_SIMILARITY_ERROR
        assert float(err) > 1e-4  # bf16 is really rounding here (the bound is not vacuous)

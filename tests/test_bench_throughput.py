"""Smoke and known-answer tests of tests/benchmarks/bench_throughput.py and its GPU mode (bench_throughput_gpu.py):
``--help``, the fail-fast without CUDA, the GPU code path run on the CPU with a tiny model (``--dry-run --tiny``),
and the helpers (pad efficiency of a batch plan, the host-sync counter) on inputs with a known answer."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parent / "benchmarks"


@pytest.fixture(scope="module")
def mods():
    sys.path.insert(0, str(BENCH))
    try:
        import bench_throughput
        import bench_throughput_gpu
        yield bench_throughput, bench_throughput_gpu
    finally:
        sys.path.remove(str(BENCH))


def test_help_of_both_modes(mods, capsys):
    cpu, gpu = mods
    for main in (cpu.main, gpu.main):
        with pytest.raises(SystemExit) as e:
            main(["--help"])
        assert e.value.code == 0
    assert "--dry-run" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_gpu_mode_stops_at_once_without_cuda(mods, capsys, tmp_path):
    cpu, _ = mods
    assert cpu.main(["--gpu", "--out", str(tmp_path)]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written


def _dry_run(gpu, tmp_path, concurrency):
    threads = torch.get_num_threads()
    try:  # the dry run sets one thread, as the benchmark does
        rc = gpu.main(["--dry-run", "--tiny", "--concurrency", concurrency, "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    doc = json.loads((tmp_path / "throughput_gpu.json").read_text())
    assert (tmp_path / "throughput_gpu.md").read_text().startswith("## GPU check")
    return doc


def test_gpu_code_path_runs_on_cpu_with_a_tiny_model(mods, tmp_path):
    _, gpu = mods
    doc = _dry_run(gpu, tmp_path, "")
    got = {(r["method"], r["precision"]) for r in doc["precision"]}
    assert got == {(m, p) for m in gpu.METHODS for p in gpu.PRECISIONS}
    for r in doc["precision"]:
        assert r["step_ms"] > 0 and r["reported_step_time_ms"] > 0 and r["sequences_per_s"] > 0
        assert torch.isfinite(torch.tensor(r["loss"]))
        if r["precision"] == "fp32":
            assert r["speedup_vs_fp32"] == 1.0
    assert doc["dry_run"] and doc["concurrency"] == []


@pytest.mark.slow
def test_gpu_concurrent_trials_run_as_processes(mods, tmp_path):
    _, gpu = mods
    doc = _dry_run(gpu, tmp_path, "1,2")
    rows = {r["trials"]: r for r in doc["concurrency"]}
    assert set(rows) == {1, 2}
    assert len(rows[2]["per_trial_sequences_per_s"]) == 2 and rows[1]["aggregate_vs_one"] == 1.0
    assert all(x > 0 for r in rows.values() for x in r["per_trial_sequences_per_s"])


def test_plan_pad_efficiency_known_answers(mods):
    cpu, _ = mods
    lengths = [1, 4, 1, 4, 1, 4, 1, 4]
    grouped = cpu.plan_lengths(lengths, 2, 0, 100)  # one pool: sorted, so [1, 1] and [4, 4] batches only
    assert cpu.pad_eff(grouped) == 1.0
    assert sorted(grouped) == [(2, 2), (2, 2), (8, 8), (8, 8)]
    rand = cpu.plan_lengths(lengths, 2, 0, None)
    assert sum(r for r, _ in rand) == sum(lengths)  # every token once
    assert cpu.pad_eff(rand) <= 1.0
    # a batch of one 1-token and one 4-token row pads 8 positions for 5 tokens
    assert cpu.pad_eff([(5, 8)]) == 5 / 8


def test_sync_counter_counts_host_reads_and_restores_torch(mods):
    cpu, _ = mods
    item = torch.Tensor.item
    x = torch.ones(3)
    assert cpu.count_syncs(lambda: (x.sum().item(), float(x[0]), x.tolist())) == 3
    assert cpu.count_syncs(lambda: x * 2) == 0
    assert torch.Tensor.item is item

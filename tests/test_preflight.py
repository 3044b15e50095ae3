"""Checks that run before Ray starts: tracking URI, storage path, trial configs (no Ray here)."""
from __future__ import annotations

import http.server
import socket
import threading
from pathlib import Path

import pytest
import yaml

from sweeps.launch.plan import PreflightError, plan_sweep
from sweeps.launch.preflight import check_raw_spec_config, check_storage_path, check_tracking_uri, check_trial_configs
from sweeps.spec.parse import parse_spec
from sweeps.workdir import Workdir

TINY = {"dataset": "synthetic", "synthetic_size": 200, "epochs": 2, "embedding_dim": 8, "hidden_dim": 8,
        "attention_dim": 8}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def http_server():
    """A local HTTP server answering ``GET /health`` with the status in ``codes[0]``."""
    codes = [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(codes[0] if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", codes
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def spec(**overrides):
    doc = {"name": "pf", "trainable": "classifier", "config": dict(TINY), "metric": "best/valid_f1", "mode": "max",
           "num_samples": 2}
    doc.update(overrides)
    return parse_spec(doc)


# ------------------------------------------------------------------ tracking URI
def test_sqlite_uri_in_a_writable_directory(tmp_path):
    assert check_tracking_uri(f"sqlite:///{tmp_path / 'sub' / 'mlflow.db'}") == []
    assert (tmp_path / "sub").is_dir()


def test_sqlite_uri_under_a_file_is_reported(tmp_path):
    (tmp_path / "file").write_text("x")
    [problem] = check_tracking_uri(f"sqlite:///{tmp_path / 'file' / 'mlflow.db'}")
    assert "not writable" in problem and str(tmp_path / "file") in problem


def test_unreachable_server_is_reported_quickly():
    uri = f"http://127.0.0.1:{closed_port()}"
    [problem] = check_tracking_uri(uri, timeout=5)
    assert uri in problem and "unreachable" in problem and "--tracking-uri" in problem


def test_live_server_passes_and_a_sick_one_is_reported(http_server):
    uri, codes = http_server
    assert check_tracking_uri(uri) == []
    codes[0] = 500
    [problem] = check_tracking_uri(uri)
    assert "HTTP 500" in problem
    codes[0] = 403  # the server is there; credentials are the client's business
    assert check_tracking_uri(uri) == []


# ------------------------------------------------------------------ storage
def test_storage_path_writable_and_not(tmp_path):
    assert check_storage_path(str(tmp_path / "ray")) == []
    assert check_storage_path((tmp_path / "ray2").as_uri()) == []
    (tmp_path / "file").write_text("x")
    [problem] = check_storage_path(str(tmp_path / "file" / "ray"))
    assert problem.startswith("storage path") and "not writable" in problem


# ------------------------------------------------------------------ trial configs
def test_every_config_problem_is_listed_once():
    s = spec(config={**TINY, "dropuot": 0.1, "dropout": 1.5},
             search_space={"regularizer": {"type": "choice", "values": ["none", "attention_vta"]},
                           "lam": {"type": "uniform", "low": 0.5, "high": 1.0}},
             metric="valid/nonsense")
    problems = check_trial_configs(s)
    text = "\n".join(problems)
    assert "metric: 'valid/nonsense' is not reported" in text
    assert "dropuot: unknown key (did you mean 'dropout'?)" in text
    assert "dropout: must be in [0, 1), got 1.5" in text
    assert "regularizer: unknown 'attention_vta'" in text and "(with regularizer='attention_vta'" in text
    assert len(problems) == len(set(problems)) == 4, problems
    # problems of the base config hold at every point of the space: no "(with ...)" suffix
    assert [p for p in problems if "dropuot" in p or "got 1.5" in p] == [
        "config: dropuot: unknown key (did you mean 'dropout'?)", "config: dropout: must be in [0, 1), got 1.5"]


def test_search_space_corners_are_checked():
    s = spec(search_space={"dropout": {"type": "uniform", "low": 0.0, "high": 1.2}})
    [problem] = check_trial_configs(s)
    assert "dropout: must be in [0, 1), got 1.2" in problem and "(with dropout=1.2)" in problem


def test_conditional_parameters_are_checked_only_where_active():
    s = spec(search_space={
        "regularizer": {"type": "choice", "values": ["none", "attention_vat"]},
        "eps": {"type": "uniform", "low": 0.1, "high": 2.0, "when": {"regularizer": ["attention_vat"]}},
    })
    assert check_trial_configs(s) == []


def test_plan_sweep_reports_everything_at_once(tmp_path):
    (tmp_path / "file").write_text("x")
    s = spec(config={**TINY, "epochs": 0})
    with pytest.raises(PreflightError) as info:
        plan_sweep(s, tracking_uri=f"http://127.0.0.1:{closed_port()}", storage=str(tmp_path / "file" / "ray"),
                   workdir=Workdir(tmp_path / "home"))
    problems = info.value.problems
    assert len(problems) == 3, problems
    assert problems[0].startswith("config: epochs: must be >= 1")
    assert "unreachable" in problems[1] and problems[2].startswith("storage path")


def test_plan_sweep_defaults_to_the_work_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    plan = plan_sweep(spec(), workdir=Workdir(tmp_path))
    assert plan.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert plan.experiment_dir == str(tmp_path / "ray" / "pf")


def test_smoke_test_plan_is_tiny(tmp_path):
    s = spec(num_samples=8, repeats=3, scheduler={"type": "asha", "max_t": 4})
    plan = plan_sweep(s, smoke_test=True, workdir=Workdir(tmp_path))
    assert plan.spec.name == "pf-smoke" and plan.spec.num_samples == 2 and plan.spec.repeats == 1
    assert plan.spec.scheduler.max_t == 1 and plan.config_overrides["epochs"] == 1


# ------------------------------------------------------------------ a spec that does not parse
def test_raw_config_problems_of_an_unparsable_spec(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({
        "name": "pf", "trainable": "classifier", "num_sample": 3,  # <- the spec error
        "config": {**TINY, "dropout": 2, "hiden_dim": 4},
        "search_space": {"regularizer": {"type": "choice", "values": ["none", "bogus"]}},
        "metric": "valid/nope", "mode": "max",
    }))
    text = "\n".join(check_raw_spec_config(path))
    for part in ("metric: 'valid/nope'", "dropout: must be in [0, 1)", "hiden_dim: unknown key",
                 "regularizer: unknown 'bogus'"):
        assert part in text, text


@pytest.mark.parametrize("content", ["", "[1, 2]", "trainable: nope\n", ":\n  - ][", "config: 3\ntrainable: classifier\n"])
def test_raw_config_check_never_raises(tmp_path, content):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    assert isinstance(check_raw_spec_config(path), list)
    assert check_raw_spec_config(Path(tmp_path / "missing.yaml")) == []


def test_multinode_warnings_flag_machine_local_tracking_and_storage(tmp_path):
    from sweeps.launch.plan import SweepPlan, multinode_warnings
    from sweeps.spec.parse import parse_spec
    from sweeps.workdir import Workdir

    spec = parse_spec({"name": "w", "trainable": "classifier", "metric": "best/valid_f1", "mode": "max"})
    local = SweepPlan(spec, f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path), Workdir(tmp_path), {})
    shared = SweepPlan(spec, "http://10.0.0.5:5000", "s3://bucket/xaisweep", Workdir(tmp_path), {})
    assert multinode_warnings(local, 1) == []
    warnings = multinode_warnings(local, 2)
    assert len(warnings) == 2 and "local to this machine" in warnings[0] and "shared filesystem" in warnings[1]
    assert multinode_warnings(shared, 3) == []

"""Sweeps on a real multi-node Ray cluster, tracked by a real MLflow server over HTTP.

One cluster per module, on this machine (see ``tests/multinode_utils.py``):

* head node ``127.0.0.2`` with 1 CPU, no GPU;
* worker node ``127.0.0.3`` with 1 CPU and one *declared* GPU (``ray start --num-gpus 1``;
  the machine has none, so torch falls back to CPU inside the trial);
* Ray token authentication on, a token generated for the test;
* ``mlflow server`` on 127.0.0.1 with a SQLite backend and ``--artifacts-destination`` (so
  artifacts travel over HTTP, ``mlflow-artifacts:`` URIs) and, when Flask-WTF is installed
  (``mlflow[auth]``), the ``basic-auth`` app: every sweep here is then an authenticated one.
  Credentials reach the trials the way cluster.yaml arranges it, through each node's own
  environment (there: ``~/.mlflow/credentials``). Without Flask-WTF the sweeps run against a
  plain server and only the basic-auth test is skipped.

Each sweep is ``xaisweep run SPEC --address HEAD --tracking-uri http://... --storage DIR``
in a subprocess. Trials are told apart by node through Tune's ``node_ip`` (each node has
its own loopback address). Everything here is ``slow``; the module takes ~3-4 minutes on
2 cores.
"""
from __future__ import annotations

import base64
import importlib.util
import json
import re
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from multinode_utils import (  # noqa: E402
    RAY,
    XAISWEEP,
    LocalCluster,
    MlflowServer,
    RayNode,
    kill_session,
    run_xaisweep,
    latest_checkpoint,
    trial_results,
    write_spec,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="multi-node harness reads /proc"),
]

SWEEP_USER = "xaisweep-sweeper"
HAVE_AUTH_APP = importlib.util.find_spec("flask_wtf") is not None  # MLflow's basic-auth app needs it
ARTIFACTS = {"config.yaml", "training_curves.png"}


# ------------------------------------------------------------------ fixtures
@dataclass
class Stack:
    cluster: LocalCluster
    server: MlflowServer
    password: str
    worker: RayNode
    auth: bool

    @property
    def creds(self) -> dict[str, str]:
        if not self.auth:
            return {}
        return {"MLFLOW_TRACKING_USERNAME": SWEEP_USER, "MLFLOW_TRACKING_PASSWORD": self.password}

    def driver_env(self, home: Path) -> dict[str, str]:
        return {**self.cluster.env, **self.creds, "XAISWEEP_HOME": str(home)}

    def ensure_worker(self) -> RayNode:
        """The GPU worker node (a new one if a node-loss test killed it)."""
        if not self.worker.alive():
            self.worker = self.cluster.add_node(num_cpus=1, num_gpus=1)
        return self.worker

    def sweep(self, spec: Path, tmp: Path, *extra: str, timeout: float = 240) -> subprocess.CompletedProcess:
        args = ["run", str(spec), "--address", self.cluster.address, "--tracking-uri", self.server.uri,
                "--storage", str(tmp / "storage"), *extra]
        return run_xaisweep(args, env=self.driver_env(tmp / "home"), log=tmp / "driver.log", cwd=tmp,
                            timeout=timeout)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _request(url: str, *, auth: Optional[str] = None, body: Optional[dict] = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **({"Authorization": auth} if auth else {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def _start_auth_server(root: Path, password: str) -> MlflowServer:
    """MLflow with the basic-auth app, and a non-admin user ``SWEEP_USER`` with ``password``."""
    admin_password = secrets.token_urlsafe(18)
    root.mkdir(parents=True, exist_ok=True)
    ini = root / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{root / 'basic_auth.db'}\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 60\n"
    )
    server = MlflowServer.start(root, app_name="basic-auth", env={
        "MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),
    })
    status, text = _request(f"{server.uri}/api/2.0/mlflow/users/create", auth=_basic("admin", admin_password),
                            body={"username": SWEEP_USER, "password": password})
    if status != 200:
        server.stop()
        raise RuntimeError(f"could not create the sweep user ({status}): {text}")
    return server


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    password = secrets.token_urlsafe(18)
    started: dict[str, Any] = {}

    def start_server() -> None:
        try:
            started["server"] = _start_auth_server(root, password) if HAVE_AUTH_APP else MlflowServer.start(root)
        except BaseException as err:  # noqa: BLE001 - re-raised below
            started["error"] = err

    # the server and the Ray nodes start at the same time: both are mostly Python imports
    thread = threading.Thread(target=start_server, daemon=True)
    thread.start()
    # node-level credentials, as ~/.mlflow/credentials provides them on a real cluster
    creds = {"MLFLOW_TRACKING_USERNAME": SWEEP_USER, "MLFLOW_TRACKING_PASSWORD": password} if HAVE_AUTH_APP else {}
    cluster = LocalCluster.create(creds)
    try:
        cluster.start_head(num_cpus=1)
        worker = cluster.add_node(num_cpus=1, num_gpus=1)
        thread.join()
        if "error" in started:
            raise started["error"]
        yield Stack(cluster=cluster, server=started["server"], password=password, worker=worker, auth=HAVE_AUTH_APP)
    finally:
        cluster.shutdown()
        thread.join()
        if "server" in started:
            started["server"].stop()


@pytest.fixture()
def mlflow_client(stack, monkeypatch):
    from mlflow.tracking import MlflowClient

    for key, value in stack.creds.items():
        monkeypatch.setenv(key, value)
    return MlflowClient(stack.server.uri)


def _child_runs(client, name: str) -> dict[str, Any]:
    """The trial runs of sweep ``name`` by Ray trial id (the parent run has no ``ray_trial_id``)."""
    exp = client.get_experiment_by_name(name)
    assert exp is not None, f"no MLflow experiment {name!r}"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    children = [r for r in runs if r.data.tags.get("ray_trial_id")]
    by_trial = {r.data.tags["ray_trial_id"]: r for r in children}
    assert len(by_trial) == len(children), "two MLflow runs for one trial"
    return by_trial


def _parent_run(client, name: str):
    exp = client.get_experiment_by_name(name)
    parents = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("xaisweep.role") == "sweep"]
    assert len(parents) == 1
    return parents[0]


def _metric_steps(client, run_id: str, key: str) -> list[int]:
    return sorted(int(m.step) for m in client.get_metric_history(run_id, key))


def _nodes_of(rows: list[dict[str, Any]]) -> list[str]:
    return [r["node_ip"] for r in rows]


def _check_fail(result: subprocess.CompletedProcess, what: str) -> str:
    return f"{what} failed (rc={result.returncode}); driver output:\n{result.stdout[-6000:]}"


# --------------------------------------------------------------------- tests
def test_sweep_spreads_trials_over_both_nodes_and_logs_everything_over_http(stack, mlflow_client, tmp_path):
    worker = stack.ensure_worker()
    head = stack.cluster.head
    spec = write_spec(tmp_path / "spec.yaml", "mn-spread",
                      search_space={"lr": {"type": "grid", "values": [0.001, 0.003]}}, num_samples=2)
    result = stack.sweep(spec, tmp_path)
    assert result.returncode == 0, _check_fail(result, "sweep")

    # placement: each node has 1 CPU and both trials ran at once, so one trial per node
    trials = trial_results(tmp_path / "storage" / "mn-spread")
    assert len(trials) == 2
    placed = {tid: set(_nodes_of(rows)) for tid, rows in trials.items()}
    assert all(len(ips) == 1 for ips in placed.values()), placed
    assert {ip for ips in placed.values() for ip in ips} == {head.ip, worker.ip}
    assert {mlflow_client.get_run(r.info.run_id).data.tags["ray_node_ip"]
            for r in _child_runs(mlflow_client, "mn-spread").values()} == {head.ip, worker.ip}
    on_head, on_worker = head.trials_started_here("mn-spread"), worker.trials_started_here("mn-spread")
    assert len(on_head) == len(on_worker) == 1 and on_head | on_worker == set(trials)

    # tracking: one child run per trial, everything reached the server
    runs = _child_runs(mlflow_client, "mn-spread")
    assert set(runs) == set(trials)
    for trial_id, run in runs.items():
        run = mlflow_client.get_run(run.info.run_id)
        assert run.info.status == "FINISHED"
        assert run.data.params["epochs"] == "2" and float(run.data.params["lr"]) in (0.001, 0.003)
        assert run.data.params["lr"] == str(trials[trial_id][0]["config"]["lr"])
        for key in ("valid/f1", "train/loss", "best/valid_f1"):
            assert _metric_steps(mlflow_client, run.info.run_id, key) == [1, 2], key
        assert "test/f1" in run.data.metrics
        assert run.data.tags["device"] == "cpu"
        assert run.data.tags["ray_node_ip"] in (head.ip, worker.ip) and run.data.tags["ray_gpu_ids"] == "none"
        # artifacts were uploaded through the server (proxied URI), and it stored them
        assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
        assert {a.path for a in mlflow_client.list_artifacts(run.info.run_id)} >= ARTIFACTS
        for name in ARTIFACTS:
            stored = list(stack.server.artifacts.rglob(f"{run.info.run_id}/artifacts/{name}"))
            assert len(stored) == 1 and stored[0].stat().st_size > 0, name
    parent = _parent_run(mlflow_client, "mn-spread")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["best_run_id"] in {r.info.run_id for r in runs.values()}
    # nothing went to a local store instead of the server
    assert not (tmp_path / "home" / "mlflow.db").exists()
    assert not list(tmp_path.rglob("mlruns"))


def test_half_gpu_trials_pack_two_per_gpu_on_the_gpu_node_and_run_on_cpu_there(stack, mlflow_client, tmp_path):
    worker = stack.ensure_worker()
    spec = write_spec(tmp_path / "spec.yaml", "mn-gpu", config={"epochs": 3},
                      search_space={"lr": {"type": "grid", "values": [0.001, 0.003]}}, num_samples=2,
                      resources={"cpu": 0.5, "gpu": 0.5})
    result = stack.sweep(spec, tmp_path)
    assert result.returncode == 0, _check_fail(result, "sweep")

    trials = trial_results(tmp_path / "storage" / "mn-gpu")
    assert len(trials) == 2
    # only the worker declares a GPU: every gpu-0.5 trial was placed there...
    assert {ip for rows in trials.values() for ip in _nodes_of(rows)} == {worker.ip}
    assert worker.trials_started_here("mn-gpu") == set(trials)
    assert not stack.cluster.head.trials_started_here("mn-gpu")
    # ...and both at the same time, sharing its one GPU
    runs = [mlflow_client.get_run(r.info.run_id) for r in _child_runs(mlflow_client, "mn-gpu").values()]
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    (s1, e1), (s2, e2) = [(r.info.start_time, r.info.end_time) for r in runs]
    assert max(s1, s2) < min(e1, e2), "the two half-GPU trials did not overlap"
    # device: auto -> Ray set CUDA_VISIBLE_DEVICES, but torch has no CUDA here: CPU fallback
    assert all(r.data.tags["device"] == "cpu" for r in runs)
    assert all(r.data.params["device"] == "auto" for r in runs)
    # Ray assigned GPU 0 (of the worker) to both trials, as the MLflow tags record
    assert all(r.data.tags["ray_gpu_ids"] == "0" and r.data.tags["ray_node_ip"] == worker.ip for r in runs)


def test_node_loss_restarts_trials_from_checkpoints_without_losing_or_duplicating_metrics(
        stack, mlflow_client, tmp_path):
    epochs = 8
    victim = stack.ensure_worker()
    head = stack.cluster.head
    spec = write_spec(tmp_path / "spec.yaml", "mn-loss", config={"epochs": epochs, "synthetic_size": 400},
                      search_space={"lr": {"type": "grid", "values": [0.001, 0.003]}}, num_samples=2,
                      max_failures=2, checkpoint_every_s=0)  # a checkpoint every epoch: lost mid-trial
    experiment_dir = tmp_path / "storage" / "mn-loss"
    args = ["run", str(spec), "--address", stack.cluster.address, "--tracking-uri", stack.server.uri,
            "--storage", str(tmp_path / "storage")]
    log = tmp_path / "driver.log"
    with open(log, "wb") as out:
        driver = subprocess.Popen([XAISWEEP, *args], env=stack.driver_env(tmp_path / "home"), cwd=tmp_path,
                                  stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
    try:
        # wait until the trial on the worker has persisted 2 checkpoints, then lose the worker
        deadline, moved_id, done = time.time() + 180, None, -1
        while time.time() < deadline:
            on_victim = victim.trials_started_here("mn-loss")
            if on_victim:
                (moved_id,) = on_victim
                done = latest_checkpoint(experiment_dir / f"trial_{moved_id}")
                if done >= 1:
                    break
            assert driver.poll() is None, f"sweep ended before the node was lost:\n{log.read_text()[-4000:]}"
            time.sleep(0.1)
        else:
            pytest.fail(f"no trial reached epoch 2 on the worker:\n{log.read_text()[-4000:]}")
        assert done < epochs - 1, "the worker's trial finished before the node was lost: raise epochs"
        victim.kill()
        assert not victim.alive()
        rc = driver.wait(300)
    finally:
        if driver.poll() is None:
            kill_session(driver.pid)
        kill_session(driver.pid)
    output = log.read_text(errors="replace")
    assert rc == 0, f"sweep failed after node loss (rc={rc}):\n{output[-6000:]}"
    summary = re.search(r"\d+ trials?, \d+ finished, (\d+) failed", output)  # the CLI's closing line
    assert summary is None or summary.group(1) == "0", summary.group(0)

    trials = trial_results(experiment_dir)
    assert len(trials) == 2
    assert {tid for tid, rows in trials.items() if _nodes_of(rows)[0] == victim.ip} == {moved_id}, \
        {tid: _nodes_of(rows) for tid, rows in trials.items()}
    rows = trials[moved_id]
    nodes = _nodes_of(rows)
    first_on_head = nodes.index(head.ip)
    assert set(nodes[first_on_head:]) == {head.ip}
    # the restarted trial resumed from its last checkpoint, not from epoch 1
    assert rows[first_on_head]["epoch"] >= max(2, done + 1), [(r["epoch"], r["node_ip"]) for r in rows]
    assert rows[-1]["epoch"] == epochs

    runs = _child_runs(mlflow_client, "mn-loss")
    assert set(runs) == set(trials)  # the retry re-opened its run: no second run
    for trial_id, run in runs.items():
        run = mlflow_client.get_run(run.info.run_id)
        assert run.info.status == "FINISHED"
        assert run.data.tags.get("resumed") == ("true" if trial_id == moved_id else None)
        for key in ("valid/f1", "train/loss", "best/valid_f1", "training_iteration"):
            assert _metric_steps(mlflow_client, run.info.run_id, key) == list(range(1, epochs + 1)), (trial_id, key)
        assert {a.path for a in mlflow_client.list_artifacts(run.info.run_id)} >= ARTIFACTS


@pytest.mark.skipif(not HAVE_AUTH_APP, reason="MLflow's basic-auth app needs Flask-WTF: pip install 'mlflow[auth]'")
def test_mlflow_basic_auth_refuses_anonymous_and_wrong_credentials(stack, monkeypatch):
    """The sweeps above ran as SWEEP_USER through this server; here: nobody else gets in."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    url = f"{stack.server.uri}/api/2.0/mlflow/experiments/search"
    body = {"max_results": 10}
    assert _request(url, body=body)[0] == 401
    assert _request(url, body=body, auth=_basic(SWEEP_USER, "not-the-password"))[0] == 401
    status, text = _request(url, body=body, auth=_basic(SWEEP_USER, stack.password))
    assert status == 200, text

    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(MlflowException):
        MlflowClient(stack.server.uri).create_experiment("anonymous-should-not-exist")
    for key, value in stack.creds.items():
        monkeypatch.setenv(key, value)
    client = MlflowClient(stack.server.uri)
    exp = client.create_experiment(f"auth-ok-{secrets.token_hex(4)}")
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "m", 1.0)
    assert client.get_run(run.info.run_id).data.metrics == {"m": 1.0}


def test_ray_refuses_a_client_without_the_cluster_token(stack):
    env = {k: v for k, v in stack.cluster.env.items() if k != "RAY_AUTH_TOKEN_PATH"}
    env["RAY_AUTH_TOKEN"] = secrets.token_hex(32)  # a wrong token
    out = subprocess.run([RAY, "status", "--address", stack.cluster.address],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "InvalidAuthToken" in out.stdout + out.stderr or "Authentication" in out.stdout + out.stderr

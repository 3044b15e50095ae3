"""A sweep survives an outage of its MLflow tracking server (killed and restarted mid-sweep).

``xaisweep run`` (local Ray, 2 CPUs) logs over HTTP to an ``mlflow server`` on 127.0.0.1 with a
SQLite store. Once a trial has logged its first epoch the server is SIGKILLed, kept down for a
while, and restarted on the same port and store. The trials block in MLflow's client retries
(``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` and ``..._BACKOFF_FACTOR``, docs/cluster.md) and go on when
the server answers again: every trial finishes, every epoch is logged exactly once.

The retry policy is whatever the environment sets (MLflow's defaults in CI); with
``MLFLOW_HTTP_REQUEST_MAX_RETRIES=0`` the trials fail at the outage and this test fails.

A retried request may have reached the server before the connection broke (the reply was
lost). The tests with :class:`ReplyDroppingProxy` pin what a retry of that kind does: a metric
batch is stored once (same body, same timestamps: the SQL store drops the duplicate rows), and a
trial's ``create_run`` does not leave a second run of the trial behind.
"""
from __future__ import annotations

import itertools
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from multinode_utils import XAISWEEP, MlflowServer, kill_session, write_spec

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(420),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the harness reads /proc"),
]

EPOCHS = 6  # enough that the outage still finds epochs to log when the first ones reach the store late (a busy machine)
DOWN_S = 5.0    # the server stays down this long before its restart begins (the restart adds ~5-10 s)
PER_EPOCH = ("valid/f1", "train/loss", "best/valid_f1", "training_iteration")


def _steps_by_run(client, experiment_id: str) -> dict[str, set[int]]:
    """The epochs each trial run of the experiment has logged so far."""
    runs = client.search_runs([experiment_id], "tags.ray_trial_id != ''")
    return {r.info.run_id: {int(m.step) for m in client.get_metric_history(r.info.run_id, "training_iteration")}
            for r in runs}


def test_sweep_survives_a_tracking_server_outage_without_losing_or_doubling_a_metric_step(tmp_path):
    from mlflow.tracking import MlflowClient

    name = "outage"
    server = MlflowServer.start(tmp_path / "mlflow")
    port = server.port
    spec = write_spec(tmp_path / "spec.yaml", name, config={"epochs": EPOCHS},
                      search_space={"lr": {"type": "grid", "values": [0.001, 0.003]}}, num_samples=2)
    env = {**os.environ, "XAISWEEP_HOME": str(tmp_path / "home"), "RAY_AIR_NEW_OUTPUT": "0",
           "PYTHONUNBUFFERED": "1"}
    for key in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI"):
        env.pop(key, None)
    log = tmp_path / "driver.log"
    args = ["run", str(spec), "--num-cpus", "2", "--tracking-uri", server.uri, "--storage", str(tmp_path / "storage")]
    driver = None
    try:
        with open(log, "wb") as out:
            driver = subprocess.Popen([XAISWEEP, *args], env=env, cwd=tmp_path, stdout=out,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        client = MlflowClient(server.uri)

        # 1. wait until a trial has logged an epoch (and the sweep still has epochs to go)
        deadline = time.time() + 180
        while True:
            assert driver.poll() is None, f"the sweep ended before the outage:\n{log.read_text()[-4000:]}"
            exp = client.get_experiment_by_name(name)
            if exp is not None and any(_steps_by_run(client, exp.experiment_id).values()):
                break
            assert time.time() < deadline, f"no trial logged an epoch in 180 s:\n{log.read_text()[-4000:]}"
            time.sleep(0.3)
        before = _steps_by_run(client, exp.experiment_id)  # what reached the store before the outage
        assert sum(map(len, before.values())) < 2 * EPOCHS - 2, "the trials nearly finished first: raise EPOCHS"

        # 2. the outage: SIGKILL (no graceful shutdown), down DOWN_S, restarted on the same port and store
        went_down = time.time()
        kill_session(server.sid)
        time.sleep(DOWN_S)
        assert driver.poll() is None, f"the driver died during the outage:\n{log.read_text()[-4000:]}"
        server = MlflowServer.start(tmp_path / "mlflow", port=port)
        back_up = time.time()
        downtime = back_up - went_down

        # 3. the sweep ends by itself
        rc = driver.wait(240)
        print(f"outage {downtime:.1f} s (SIGKILL -> /health answers again); the sweep ended "
              f"{time.time() - back_up:.1f} s after the restart; epochs logged before it: {sorted(before.values())}")
        output = log.read_text(errors="replace")
        assert rc == 0, f"sweep failed across the outage (rc={rc}):\n{output[-6000:]}"
        summary = re.search(r"(\d+) trials?, (\d+) finished, (\d+) failed", output)
        assert summary is not None and summary.groups() == ("2", "2", "0"), output[-3000:]

        # 4. everything reached the store, once
        runs = client.search_runs([exp.experiment_id], "tags.ray_trial_id != ''")
        assert len(runs) == 2, [r.data.tags for r in runs]
        assert len({r.data.tags["ray_trial_id"] for r in runs}) == 2, "two MLflow runs for one trial"
        pending, gaps, during = 0, [], 0
        for run in runs:
            rid = run.info.run_id
            assert run.info.status == "FINISHED", (rid, run.info.status, run.data.tags.get("failure_reason"))
            # the trial went through the outage in its first attempt (no Ray retry re-opened the run)
            assert run.data.tags.get("attempts") == "1" and "resumed" not in run.data.tags, run.data.tags
            for key in PER_EPOCH:
                steps = sorted(int(m.step) for m in client.get_metric_history(rid, key))
                assert steps == list(range(1, EPOCHS + 1)), (rid, key, steps)
            assert "test/f1" in run.data.metrics
            # a metric's timestamp is when the trial made the log call
            stamps = [m.timestamp / 1000 for m in sorted(client.get_metric_history(rid, "training_iteration"),
                                                         key=lambda m: m.step)]
            pending += EPOCHS - len(before.get(rid, ()))
            during += sum(went_down <= t <= back_up for t in stamps)
            gaps += [b - a for a, b in itertools.pairwise(stamps) if b < went_down or a > back_up]
        # The outage hit the trials mid-sweep: epochs were still to be logged when the server went down,
        # and the trials logged epochs while it was down (the worker's tracking process retried those
        # writes until the server answered; the trial waited for them only at its next checkpoint).
        assert pending > 0, "every epoch was logged before the outage"
        assert during > 0, f"no epoch was logged during the {downtime:.1f} s outage: lengthen DOWN_S"
        print(f"{pending} epoch(s) pending at the outage, {during} logged while it lasted; "
              f"epochs took {min(gaps, default=0):.1f}-{max(gaps, default=0):.1f} s outside it")
        parents = client.search_runs([exp.experiment_id], "tags.`xaisweep.role` = 'sweep'")
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        assert parents[0].data.tags["best_run_id"] in {r.info.run_id for r in runs}
    finally:
        if driver is not None:
            kill_session(driver.pid)  # the driver if still running, and Ray daemons it left behind
        server.stop()


# ------------------------------------------------------------------ lost replies
class ReplyDroppingProxy:
    """A loopback HTTP proxy in front of the server on ``upstream_port``.

    Every request is forwarded (one request per connection: ``Connection: close`` both ways).
    For the first ``drop`` requests whose path contains ``match`` the server's reply is read and
    thrown away, and the client's connection closed: the request reached the server, the reply
    never came back (a server or network dying mid-request). The client sees the connection
    aborted and retries.
    """

    def __init__(self, upstream_port: int, match: str, drop: int = 1) -> None:
        self.upstream_port, self.match, self.drop = upstream_port, match, drop
        self.paths: list[str] = []      # every request forwarded, in order
        self.dropped: list[str] = []    # the ones whose reply was lost
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.uri = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self._sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_request(conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return b""
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = 0
        for line in lines[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return b""
            body += chunk
        lines = [lines[0]] + [line for line in lines[1:] if not line.lower().startswith(b"connection:")]
        return b"\r\n".join(lines + [b"Connection: close"]) + b"\r\n\r\n" + body

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            request = self._read_request(conn)
            if not request:
                return
            path = request.split(b" ", 2)[1].decode()
            with socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30) as up:
                up.sendall(request)
                reply = b""
                while chunk := up.recv(65536):
                    reply += chunk
            with self._lock:
                self.paths.append(path)
                lose = self.match in path and len(self.dropped) < self.drop
                if lose:
                    self.dropped.append(path)
            if not lose:
                conn.sendall(reply)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = MlflowServer.start(tmp_path_factory.mktemp("mlflow-lost-replies"))
    yield server
    server.stop()


def test_a_metric_batch_retried_after_its_reply_was_lost_is_stored_once(server):
    from mlflow.tracking import MlflowClient

    from trainables.tracking import TrialRun, get_or_create_experiment

    exp = get_or_create_experiment(MlflowClient(server.uri), "lost-metric-reply")
    proxy = ReplyDroppingProxy(server.port, "/runs/log-batch", drop=1)
    try:
        run = TrialRun(proxy.uri, exp, None, "trial-metrics", "trial-metrics", tags={})
        for step in (1, 2):
            assert run.log_metrics({"train/loss": 1.0 / step, "valid/f1": 0.5}, step=step)
        run.finish()
    finally:
        proxy.close()
    # the first batch reached the server, its reply was lost, the client sent it again
    assert len(proxy.dropped) == 1
    assert [p for p in proxy.paths if "/runs/log-batch" in p] == ["/api/2.0/mlflow/runs/log-batch"] * 3
    client = MlflowClient(server.uri)
    for key in ("train/loss", "valid/f1", "training_iteration"):
        assert sorted(int(m.step) for m in client.get_metric_history(run.run_id, key)) == [1, 2], key
    assert client.get_run(run.run_id).info.status == "FINISHED"


def test_a_trial_run_whose_create_reply_was_lost_is_not_left_behind_twice(server):
    """``create_run`` is not idempotent: its retry after a lost reply makes a second run. The trial
    keeps one and deletes the other, so the trial has one run (and a later attempt of the trial
    re-opens the run that holds its metrics)."""
    from mlflow.tracking import MlflowClient

    from trainables.tracking import TrialRun, find_trial_runs, get_or_create_experiment

    client = MlflowClient(server.uri)
    exp = get_or_create_experiment(client, "lost-create-reply")
    parent = client.create_run(exp, tags={"xaisweep.role": "sweep"}).info.run_id
    proxy = ReplyDroppingProxy(server.port, "/runs/create", drop=1)
    try:
        run = TrialRun(proxy.uri, exp, parent, "trial-create", "trial-create", tags={})
        run.log_metrics({"valid/f1": 0.5}, step=1)
    finally:
        proxy.close()
    assert proxy.dropped == ["/api/2.0/mlflow/runs/create"]
    assert proxy.paths.count("/api/2.0/mlflow/runs/create") == 2  # the request was sent twice...
    # ...and the trial has one run: the one it logs to
    assert [r.info.run_id for r in find_trial_runs(client, exp, "trial-create", parent)] == [run.run_id]
    assert [r.info.run_id for r in client.search_runs([exp], "tags.ray_trial_id = 'trial-create'")] == [run.run_id]
    # a retried attempt of the trial re-opens that run and sees its epoch
    again = TrialRun(server.uri, exp, parent, "trial-create", "trial-create", tags={})
    assert again.resumed and again.run_id == run.run_id and not again.log_metrics({"valid/f1": 0.5}, step=1)

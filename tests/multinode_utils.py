"""A real multi-node Ray cluster and an MLflow tracking server on one machine, for tests.

Every node is a separate ``ray start`` (own raylet, own ``--temp-dir``, own loopback IP:
the head on 127.0.0.2, workers on 127.0.0.3, 127.0.0.4, ...), so trials really run in
different Ray nodes and Tune's per-result ``node_ip`` tells them apart. 127.0.0.1 is not
used for Ray on purpose: Ray rewrites it to the machine's external interface address.

Isolation from other Ray instances on the machine (other tests, other engineers):

* every port is an explicitly chosen free port (no 6379 / 8265 / 52365 defaults);
* each node has its own temp dir (short, under /tmp: Unix socket paths are limited to
  107 bytes, pytest's tmp_path is too deep);
* token authentication is on (``RAY_AUTH_MODE=token``) with a token generated per
  cluster and handed over by ``RAY_AUTH_TOKEN_PATH``, so neither ``~/.ray/auth_token``
  nor another cluster's token is read or written;
* nodes are stopped by killing the process *session* their ``ray start`` was put in
  (``start_new_session=True``; Ray's daemons and workers stay in it), never with
  ``ray stop``, which terminates every Ray process of every user on the machine.

Linux only (reads /proc).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import yaml

BIN = Path(sys.executable).parent
RAY = str(BIN / "ray")
MLFLOW = str(BIN / "mlflow")
XAISWEEP = str(BIN / "xaisweep")
HEAD_IP = "127.0.0.2"


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on at ``host`` (bound and released at once; never connected to)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_ray_port() -> int:
    """A port free on every interface: Ray's GCS and raylets bind the wildcard address."""
    return free_port("0.0.0.0")


# ----------------------------------------------------------------- processes
def session_pids(sid: int) -> list[int]:
    """Pids of the live processes whose session id is ``sid`` (from /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            pids.append(int(entry))
    return pids


def kill_session(sid: int, *, grace: float = 0.0, timeout: float = 15.0) -> None:
    """SIGTERM (if ``grace``) then SIGKILL every process of session ``sid``; wait until none is left."""
    if grace > 0:
        for pid in session_pids(sid):
            _signal(pid, signal.SIGTERM)
        deadline = time.time() + grace
        while session_pids(sid) and time.time() < deadline:
            time.sleep(0.1)
    deadline = time.time() + timeout
    while True:
        left = session_pids(sid)
        if not left:
            return
        for pid in left:
            _signal(pid, signal.SIGKILL)
        if time.time() > deadline:
            raise RuntimeError(f"processes {left} of session {sid} survive SIGKILL")
        time.sleep(0.1)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


# ----------------------------------------------------------------------- Ray
@dataclass
class RayNode:
    ip: str
    sid: int            # session id = pid of the `ray start` that launched the node
    temp_dir: Path
    log: Path
    num_gpus: int = 0

    def alive(self) -> bool:
        return bool(session_pids(self.sid))

    def kill(self) -> None:
        """Simulate losing the machine: SIGKILL the raylet, its agents and all its workers at once."""
        kill_session(self.sid)

    def trials_started_here(self, experiment: str) -> set[str]:
        """Ids of the trials of ``experiment`` that started on this node.

        Ray Tune makes each trial's working directory in the temp dir of the node that runs
        it (``<temp>/session_*/artifacts/<time>/<experiment>/working_dirs/<trial dir>``), and
        every node here has its own temp dir.
        """
        found = self.temp_dir.glob(f"session_*/artifacts/*/{experiment}/working_dirs/trial_*")
        return {p.name[len("trial_"):] for p in found}


@dataclass
class LocalCluster:
    """A head node plus worker nodes started with ``ray start`` on loopback IPs (see module doc)."""

    root: Path                              # short dir under /tmp: temp dirs, logs, token
    env: dict[str, str]
    port: int = 0
    nodes: list[RayNode] = field(default_factory=list)

    @classmethod
    def create(cls, extra_env: Optional[Mapping[str, str]] = None) -> "LocalCluster":
        root = Path(tempfile.mkdtemp(prefix="xsr-", dir="/tmp"))
        token = root / "ray_auth_token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        env = dict(os.environ)
        for key in ("RAY_ADDRESS", "RAY_AUTH_TOKEN"):
            env.pop(key, None)
        env.update({
            "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
            "RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
            # a lost node is declared dead after ~1.5 s instead of ~30 s
            "RAY_health_check_initial_delay_ms": "1000", "RAY_health_check_period_ms": "500",
            "RAY_health_check_timeout_ms": "500", "RAY_health_check_failure_threshold": "3",
            # print trial progress to the driver's log as plain lines
            "RAY_AIR_NEW_OUTPUT": "0",
            **(extra_env or {}),
        })
        return cls(root=root, env=env)

    @property
    def address(self) -> str:
        return f"{HEAD_IP}:{self.port}"

    @property
    def head(self) -> RayNode:
        return self.nodes[0]

    def _ports(self) -> list[str]:
        args = []
        for flag in ("--node-manager-port", "--object-manager-port", "--metrics-export-port",
                     "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port"):
            args += [flag, str(free_ray_port())]
        return args

    def _start(self, name: str, ip: str, args: list[str], num_gpus: int, timeout: float = 90) -> RayNode:
        temp_dir = self.root / name
        log = self.root / f"{name}.log"
        cmd = [RAY, "start", "--node-ip-address", ip, "--temp-dir", str(temp_dir), "--disable-usage-stats",
               "--object-store-memory", str(80 * 1024 * 1024), "--num-gpus", str(num_gpus),
               *self._ports(), *args]
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        node = RayNode(ip=ip, sid=proc.pid, temp_dir=temp_dir, log=log, num_gpus=num_gpus)
        self.nodes.append(node)  # registered first: shutdown() cleans up even a failed start
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        if rc != 0:
            raise RuntimeError(f"`ray start` of {name} failed (rc={rc}):\n{_tail(log)}")
        return node

    def start_head(self, *, num_cpus: int = 1, num_gpus: int = 0,
                   resources: Optional[Mapping[str, float]] = None) -> RayNode:
        self.port = free_ray_port()
        args = ["--head", "--port", str(self.port), "--num-cpus", str(num_cpus),
                "--include-dashboard", "false", "--dashboard-host", "127.0.0.1",
                "--dashboard-port", str(free_port())]
        if resources:
            args += ["--resources", json.dumps(dict(resources))]
        return self._start("head", HEAD_IP, args, num_gpus)

    def add_node(self, *, num_cpus: int = 1, num_gpus: int = 0,
                 resources: Optional[Mapping[str, float]] = None) -> RayNode:
        ip = f"127.0.0.{len(self.nodes) + 2}"
        args = ["--address", self.address, "--num-cpus", str(num_cpus)]
        if resources:
            args += ["--resources", json.dumps(dict(resources))]
        node = self._start(f"node{len(self.nodes)}", ip, args, num_gpus)
        self.wait_for_nodes(len([n for n in self.nodes if n.alive()]))
        return node

    def ray_status(self) -> str:
        out = subprocess.run([RAY, "status", "--address", self.address], env=self.env,
                             capture_output=True, text=True, timeout=60)
        return out.stdout + out.stderr

    def wait_for_nodes(self, n: int, timeout: float = 60) -> None:
        """Until ``ray status`` lists ``n`` active nodes."""
        deadline = time.time() + timeout
        status = ""
        while time.time() < deadline:
            status = self.ray_status()
            if "Active:" in status and "Pending:" in status:
                active = status.split("Active:")[1].split("Pending:")[0]
                if active.count("node_") >= n:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"cluster did not reach {n} nodes:\n{status}")

    def shutdown(self) -> None:
        for node in reversed(self.nodes):
            kill_session(node.sid, grace=2.0)
        shutil.rmtree(self.root, ignore_errors=True)


# -------------------------------------------------------------------- MLflow
@dataclass
class MlflowServer:
    """``mlflow server`` on 127.0.0.1 with a SQLite backend and proxied artifacts, in its own session."""

    uri: str
    sid: int
    root: Path
    artifacts: Path
    log: Path

    @classmethod
    def start(cls, root: Path, *, env: Optional[Mapping[str, str]] = None, app_name: Optional[str] = None,
              timeout: float = 90, port: Optional[int] = None) -> "MlflowServer":
        """Start a server on ``port`` (a free one if ``None``; the same ``root`` and port restart
        a stopped server on its store)."""
        root.mkdir(parents=True, exist_ok=True)
        artifacts = root / "artifacts"
        port = port or free_port()
        cmd = [MLFLOW, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
               "--artifacts-destination", str(artifacts)]
        if app_name:
            cmd += ["--app-name", app_name]
        log = root / "mlflow-server.log"
        if log.exists():  # a restart: keep the earlier server's log
            log.rename(log.with_name(f"mlflow-server.{time.time_ns()}.log"))
        server_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
        # no GenAI job runners (7 extra Python processes): a sweep never submits server jobs
        server_env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        server_env.update(env or {})
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, env=server_env, cwd=root, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        server = cls(uri=f"http://127.0.0.1:{port}", sid=proc.pid, root=root, artifacts=artifacts, log=log)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc.poll() is not None:
                server.stop()
                raise RuntimeError(f"mlflow server exited with {proc.returncode}:\n{_tail(log)}")
            try:
                with urllib.request.urlopen(server.uri + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        return server
            except urllib.error.HTTPError as err:
                if err.code in (401, 403):  # auth app: up, but wants credentials
                    return server
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        server.stop()
        raise RuntimeError(f"mlflow server did not answer within {timeout} s:\n{_tail(log)}")

    @property
    def port(self) -> int:
        return int(self.uri.rsplit(":", 1)[1])

    def stop(self) -> None:
        kill_session(self.sid, grace=3.0)


# -------------------------------------------------------------------- sweeps
TINY_CONFIG = {
    "dataset": "synthetic", "synthetic_size": 200, "epochs": 2, "batch_size": 32,
    "embedding_dim": 8, "hidden_dim": 8, "attention_dim": 8, "correlation": False, "heatmaps": 0,
    "num_threads": 1,
}


def write_spec(path: Path, name: str, *, config: Optional[Mapping[str, Any]] = None, **top: Any) -> Path:
    """A small grid sweep over ``lr`` (no ASHA: every trial runs all its epochs)."""
    spec: dict[str, Any] = {
        "name": name, "trainable": "classifier", "config": {**TINY_CONFIG, **(config or {})},
        "search_space": {"lr": {"type": "grid", "values": [0.001, 0.002, 0.003, 0.004]}},
        "metric": "best/valid_f1", "mode": "max", "sampler": {"type": "grid", "seed": 0},
        "scheduler": {"type": "none"}, "num_samples": 4, "max_concurrent": 2,
        "resources": {"cpu": 1},
    }
    spec.update(top)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run_xaisweep(args: Iterable[str], *, env: Mapping[str, str], log: Path, timeout: float = 240,
                 cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    """``xaisweep ARGS`` in its own session (killed whole on timeout); output goes to ``log``."""
    with open(log, "wb") as out:
        proc = subprocess.Popen([XAISWEEP, *args], env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_session(proc.pid)
            proc.wait()
            raise AssertionError(f"xaisweep {' '.join(args)} timed out after {timeout} s:\n{_tail(log, 8000)}")
        finally:
            if proc.poll() is not None:
                kill_session(proc.pid)  # anything the driver left behind
    return subprocess.CompletedProcess(proc.args, rc, _tail(log, 20000), "")


def latest_checkpoint(trial_dir: Path) -> int:
    """Index of the newest checkpoint persisted in a trial's storage directory (-1: none yet)."""
    return max((int(p.name.rsplit("_", 1)[-1]) for p in Path(trial_dir).glob("checkpoint_*")), default=-1)


def trial_results(experiment_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Ray Tune's per-trial ``result.json`` rows (one per report, incl. ``node_ip``, ``pid``), by trial id."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(Path(experiment_dir).glob("trial_*/result.json")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if rows:
            out[rows[0]["trial_id"]] = rows
    return out

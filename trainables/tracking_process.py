"""A Ray trial's MLflow client in a child process of its worker: MLflow off the trial's critical path.

A fresh Ray worker spent about 2 s (2 idle cores; 6-8 s under load) importing MLflow (its GenAI,
gateway and pandas modules, SQLAlchemy and alembic) and opening the tracking store before its
trial could log, and every per-epoch ``log_batch`` (an SQLite transaction, ~10 ms; a round trip to
a tracking server on a cluster) was time the training thread waited for
(``tests/benchmarks/RESULTS_sweep_overhead.md``). Here the worker starts one child process
(:class:`TrackingProcess`, kept for every trial the worker runs) that imports MLflow and serves
:class:`trainables.tracking.TrialRun` calls while the trial sets up and trains. A thread would not
do: the import and the SQLAlchemy work hold the GIL, and the training thread then waits for it
after every torch op (measured: slower, not faster).

The trial side is :class:`RemoteTrialRun`, with the interface of ``TrialRun``:

* calls run in the child one at a time, in the order they were sent;
* ``start`` (params, provenance), ``log_text``, ``log_metrics`` and ``set_tags`` are sent without waiting;
* ``log_artifacts`` (the files may be temporary), ``flush`` and ``finish`` wait until the child has
  carried out every call sent before, and raise :class:`TrackingError` with the first error any of
  this run's calls met; ``run_id`` and ``resumed`` wait for the run to be opened;
* when the worker's end of the connection closes (the worker exits or dies), the child still carries
  out everything it was sent, then exits: a trial that Tune stops keeps its last metrics.

:class:`trainables.ray_trainable.RayTrial` flushes before every report that carries a checkpoint, so
every epoch that a retried or resumed trial will not run again is in MLflow before Tune records it.
The connection is a socket pair between the worker and the child it started; the messages are
pickled Python values of this module's own protocol (no file is ever unpickled).
"""
from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional


class TrackingError(RuntimeError):
    """A call to MLflow failed in the tracking process (or the process is gone); the message says why."""


class TrackingProcess:
    """The child process that owns the MLflow client of this worker's trials.

    ``send(method, handle, *args)`` returns the call's sequence number without waiting;
    ``wait(seq, handle)`` blocks until the child carried out every call up to ``seq`` and returns that
    call's value, raising :class:`TrackingError` with the first error of ``handle``'s calls.
    """

    def __init__(self) -> None:
        parent, child = socket.socketpair()
        env = dict(os.environ)
        # the child imports this project the way the worker did (an installed package, or Ray's working_dir)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            self._proc = subprocess.Popen([sys.executable, "-m", __name__, str(child.fileno())],
                                          pass_fds=(child.fileno(),), env=env, stdin=subprocess.DEVNULL)
        finally:
            child.close()
        self._conn = Connection(parent.detach())
        self._sent = 0
        self._done = 0
        self._values: dict[int, Any] = {}
        self._errors: dict[int, str] = {}

    def alive(self) -> bool:
        return not self._conn.closed and self._proc.poll() is None

    def send(self, method: str, handle: int, *args: Any) -> int:
        self._drain()
        self._sent += 1
        try:
            self._conn.send((self._sent, method, handle, args))
        except OSError as err:
            raise TrackingError(f"the MLflow tracking process is gone ({self._exit()})") from err
        return self._sent

    def wait(self, seq: int, handle: int, timeout: Optional[float] = None) -> Any:
        """The value of call ``seq`` once every call up to it was carried out (``timeout``: seconds, then
        :class:`TrackingError`); raises the first error of ``handle``'s calls."""
        while self._done < seq:
            if timeout is not None and not self._conn.poll(timeout):
                raise TrackingError(f"the MLflow tracking process did not answer within {timeout:g} s")
            self._receive()
        if handle in self._errors:
            raise TrackingError(self._errors.pop(handle))
        return self._values.pop(seq, None)

    def forget(self, handle: int) -> None:
        """Drop what is kept of ``handle`` (its run is closed, or its trial ended)."""
        self._errors.pop(handle, None)

    def close(self, timeout: float = 30.0) -> None:
        """Close the connection; the child carries out what it was sent, then exits."""
        self._conn.close()
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()

    def _drain(self) -> None:
        try:
            while self._conn.poll(0):
                self._receive()
        except TrackingError:
            pass  # the next wait says so

    def _receive(self) -> None:
        try:
            seq, handle, ok, value = self._conn.recv()
        except (EOFError, OSError) as err:
            raise TrackingError(f"the MLflow tracking process is gone ({self._exit()})") from err
        self._done = seq
        if not ok:
            self._errors.setdefault(handle, value)
        elif value is not None:
            self._values[seq] = value

    def _exit(self) -> str:
        code = self._proc.poll()
        return "still running" if code is None else f"exit code {code}"


_HANDLES = itertools.count(1)


class RemoteTrialRun:
    """The trial's side of a :class:`trainables.tracking.TrialRun` that lives in ``process``.

    Args: as ``TrialRun`` (``tracking_uri``, ``experiment_id``, ``parent_run_id``, ``trial_id``,
    ``run_name``, ``tags``); the run is opened (found again for a retried trial, or created) in the child.
    """

    def __init__(self, process: TrackingProcess, tracking_uri: str, experiment_id: str,
                 parent_run_id: Optional[str], trial_id: str, run_name: str, tags: Mapping[str, Any]) -> None:
        self.process = process
        self.handle = next(_HANDLES)
        self._opened = process.send("open", self.handle, tracking_uri, experiment_id, parent_run_id, trial_id,
                                    run_name, {k: str(v) for k, v in tags.items()})
        self._info: Optional[dict[str, Any]] = None
        self.finished = False

    def _open_info(self) -> dict[str, Any]:
        if self._info is None:
            self._info = self.process.wait(self._opened, self.handle)
        return self._info

    @property
    def run_id(self) -> str:
        return self._open_info()["run_id"]

    @property
    def resumed(self) -> bool:
        return self._open_info()["resumed"]

    def _call(self, method: str, *args: Any) -> int:
        return self.process.send(method, self.handle, *args)

    def start(self, params: Mapping[str, Any]) -> None:
        """Log the params (new keys only on a re-opened run) and, on a new run, the provenance."""
        self._call("start", dict(params))

    def log_text(self, text: str, artifact_file: str) -> None:
        self._call("log_text", text, artifact_file)

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        """Sent with the time of this call: a metric's timestamp is when the trial logged it, also when the
        child writes it later (a tracking-server outage)."""
        self._call("log_metrics", dict(metrics), int(step), int(time.time() * 1000))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._call("set_tags", {k: str(v) for k, v in tags.items()})

    def log_artifacts(self, files: Iterable[Path], root: Path, timeout: Optional[float] = None) -> None:
        """Upload ``files`` (paths under ``root``); returns once they are uploaded."""
        paths = [str(f) for f in files]
        self.process.wait(self._call("log_artifacts", paths, str(root)), self.handle, timeout=timeout)

    def flush(self, timeout: Optional[float] = None) -> None:
        """Return once every call sent so far was carried out; raise the first error of this run's calls."""
        self.process.wait(self._call("flush"), self.handle, timeout=timeout)

    def finish(self, status: str = "FINISHED", reason: Optional[str] = None) -> None:
        try:
            self.process.wait(self._call("finish", status, reason), self.handle)
            self.finished = True
        finally:
            self.process.forget(self.handle)


# ----------------------------------------------------------------------------- the child process
def _serve(conn: Connection) -> None:
    import signal

    # a Ctrl-C meant for the driver must not drop what the trial sent: the child ends when its worker does
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from trainables.tracking import TrialRun  # the MLflow import this process exists for

    runs: dict[int, TrialRun] = {}

    def call(method: str, handle: int, args: tuple) -> Any:
        if method == "open":
            run = runs[handle] = TrialRun(*args)
            return {"run_id": run.run_id, "resumed": run.resumed}
        if method == "flush":
            return None
        run = runs.get(handle)
        if run is None:
            raise TrackingError(f"tracking call {method!r} for a run that is not open (its opening failed)")
        if method == "start":
            (params,) = args
            run.log_params(params)
            if not run.resumed:
                run.log_provenance(params)
        elif method == "log_text":
            run.client.log_text(run.run_id, *args)
        elif method == "log_metrics":
            run.log_metrics(*args)
        elif method == "set_tags":
            run.set_tags(*args)
        elif method == "log_artifacts":
            paths, root = args
            run.log_artifacts([Path(p) for p in paths], Path(root))
        elif method == "finish":
            run.finish(*args)
            del runs[handle]
        else:
            raise ValueError(f"unknown tracking call {method!r}")
        return None

    while True:
        try:
            seq, method, handle, args = conn.recv()
        except (EOFError, OSError):
            return  # the worker closed its end and everything it sent was carried out
        try:
            value, ok = call(method, handle, args), True
        except BaseException as err:  # noqa: BLE001 - sent to the trial, which fails with it
            value, ok = f"{type(err).__name__}: {err}\n{traceback.format_exc()[-3000:]}", False
        try:
            conn.send((seq, handle, ok, value))
        except OSError:
            pass  # the worker is gone: carry out the rest of what it sent


#: niceness the child adds to its own: a fresh worker's first trial sets up (torch, data, model) while the child
#: imports MLflow, and on a machine with few cores the trial should have the CPU first (the child is never waited
#: for before the trial's first report)
CHILD_NICENESS = 5

if __name__ == "__main__":
    try:
        os.nice(CHILD_NICENESS)
    except OSError:  # not permitted here: run at the worker's priority
        pass
    _serve(Connection(int(sys.argv[1])))

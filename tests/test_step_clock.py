"""train/step_time: the host clock on CPU, CUDA events read once per epoch on CUDA (issue 18: without a sync the
host clock only times the queueing of the work)."""
import time

import torch

from xaicore.training import StepClock


class FakeEvent:
    """Stands in for ``torch.cuda.Event`` on a machine without CUDA: records a host time, counts waits."""

    syncs = 0

    def __init__(self, enable_timing=False):
        assert enable_timing
        self.t = None

    def record(self):
        self.t = time.perf_counter()

    def synchronize(self):
        FakeEvent.syncs += 1

    def elapsed_time(self, end):  # milliseconds, as CUDA's
        return 1000.0 * (end.t - self.t)


def test_cpu_clock_times_each_step_on_the_host():
    clock = StepClock(torch.device("cpu"), per_step_read=False)
    assert not clock.events
    dts = []
    for _ in range(3):
        mark = clock.start()
        time.sleep(0.01)
        dts.append(clock.stop(mark))
    assert all(dt >= 0.01 for dt in dts)
    assert clock.total() == sum(dts)


def test_cuda_clock_records_events_and_reads_them_once(monkeypatch):
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    FakeEvent.syncs = 0
    clock = StepClock(torch.device("cuda"), per_step_read=False)
    assert clock.events
    for _ in range(4):
        mark = clock.start()
        time.sleep(0.01)
        assert clock.stop(mark) is None  # nothing read per step
    assert FakeEvent.syncs == 0
    total = clock.total()
    assert FakeEvent.syncs == 1  # one wait, on the last step's end event
    assert 0.04 <= total < 1.0
    assert clock.total() == total  # read already: no second wait, nothing added
    assert FakeEvent.syncs == 1


def test_cuda_with_per_step_reads_keeps_the_host_clock():
    # a step that reads its values back has waited for the device: the host clock is right there
    assert not StepClock(torch.device("cuda"), per_step_read=True).events

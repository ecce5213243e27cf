"""peak_memory.py: ru_maxrss units per platform, and a generation's peak that is its own (not
the process's lifetime peak) where the platform lets it be reset."""

import resource
import sys

import numpy as np
import pytest

from sfmobile import peak_memory
from sfmobile.backends.torch_backend import TorchBackend
from sfmobile.models.random_init import random_model
from sfmobile.peak_memory import MIB, PeakTracker, maxrss_mb
from sfmobile.pipeline import Pipeline

LINUX_RESET = sys.platform.startswith("linux") and peak_memory.PROC_CLEAR_REFS.exists()


@pytest.mark.parametrize(
    ("platform", "ru_maxrss", "mb"),
    [("linux", 2048, 2.0), ("darwin", 2 * MIB, 2.0), ("freebsd14", 512, 0.5)],
)
def test_maxrss_is_kib_on_linux_and_bytes_on_macos(platform, ru_maxrss, mb):
    assert maxrss_mb(ru_maxrss, platform) == mb


def spike(megabytes: int) -> None:
    """Raise the process's peak RSS by touching `megabytes` of memory, then free it."""
    block = np.ones(megabytes * MIB // 8)
    del block


@pytest.mark.skipif(not LINUX_RESET, reason="needs Linux /proc/self/clear_refs")
def test_generation_peak_excludes_an_earlier_spike():
    model = random_model("tiny", seed=0)
    spike(400)
    lifetime = maxrss_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    timings = Pipeline(TorchBackend(model)).generate("x", steps=1, height=32, width=32).timings
    assert timings.peak_rss_scope == "generation"
    assert 0 < timings.peak_rss_mb < lifetime - 300


@pytest.mark.skipif(not LINUX_RESET, reason="needs Linux /proc/self/clear_refs")
def test_generation_peak_includes_a_spike_inside_it():
    tracker = PeakTracker()
    tracker.start()
    before = tracker.peak().mb
    spike(200)
    assert tracker.peak().mb > before + 150


def test_without_a_reset_the_process_peak_is_reported_in_its_unit(monkeypatch):
    monkeypatch.setattr(peak_memory.sys, "platform", "darwin")
    tracker = PeakTracker()
    tracker.start()
    peak = tracker.peak()
    assert peak.scope == "process"
    assert peak.mb == resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / MIB


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux's")
def test_a_childs_own_peak_is_not_its_parents():
    """wait4's ru_maxrss of a child forked by a parent holding 300 MB reports >= 300 MB (Linux
    carries the fork's high-water mark over exec); the child's own VmHWM does not."""
    import os
    import subprocess

    held = np.ones(300 * 2**20 // 8)  # 300 MB resident in this process
    code = "from sfmobile.peak_memory import own_peak_mb; print(own_peak_mb())"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    out = child.stdout.read()
    _, _, usage = os.wait4(child.pid, 0)
    own = float(out)
    assert maxrss_mb(usage.ru_maxrss) >= 300 > 3 * own
    assert held.sum() > 0

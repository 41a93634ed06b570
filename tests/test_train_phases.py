"""benchmarks/train_phases.py: each phase's calls timed, and the window one iteration of train.py measures."""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import train_phases  # noqa: E402


def test_every_call_is_timed_under_its_phase_and_its_result_passed_on():
    class Loss:
        def accumulate_gradients(self, phase, pause):
            time.sleep(pause)
            if phase == "Dreg":
                raise FloatingPointError("a failing phase is still timed")
            return {"phase": phase}

    seconds = defaultdict(list)
    train_phases._time_phases(Loss, seconds)
    assert Loss().accumulate_gradients("Gmain", 0.02) == {"phase": "Gmain"}
    Loss().accumulate_gradients("Gmain", 0.0)
    with pytest.raises(FloatingPointError):
        Loss().accumulate_gradients("Dreg", 0.01)
    assert sorted(seconds) == ["Dreg", "Gmain"] and len(seconds["Gmain"]) == 2
    assert seconds["Gmain"][0] >= 0.02 > seconds["Gmain"][1]


def test_table_gives_each_phase_and_the_measured_window():
    ours = {"Gmain": [1.0, 1.2, 0.8], "Greg": [4.0], "Dmain": [2.0, 2.0], "Dreg": [5.0]}
    theirs = {"Gmain": [2.0], "Greg": [8.0], "Dmain": [3.0], "Dreg": [5.0]}
    lines = train_phases.table(ours, theirs).splitlines()
    assert lines[2] == "| Gmain | 1.00 s (0.80–1.20; n = 3) | 2.00 s (2.00–2.00; n = 1) | 2.00× |"
    assert lines[5] == "| Dreg | 5.00 s (5.00–5.00; n = 1) | 5.00 s (5.00–5.00; n = 1) | 1.00× |"
    # Gmain + Dmain + Greg / 4: ours 1 + 2 + 1 = 4 s, NVIDIA's 2 + 3 + 2 = 7 s.
    assert lines[-1] == "| Gmain + Dmain + Greg / 4 | 4.00 s | 7.00 s | 1.75× |"


def test_table_without_a_phase_on_one_side_leaves_the_window_out():
    lines = train_phases.table({"Gmain": [1.0], "Dmain": [2.0]}, {"Gmain": [2.0], "Dmain": [3.0]}).splitlines()
    assert "| Greg | – | – | – |" in lines
    assert not any(line.startswith("| Gmain + Dmain") for line in lines)

"""Fixtures shared by the tests of the picture-making stages."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module: as fast for the tiny test networks, and no
    multi-second stalls of OpenMP threads waiting for each other when other processes
    share the two cores. Modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

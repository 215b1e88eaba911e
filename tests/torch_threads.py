"""An autouse fixture for torch-heavy test modules: ``from .torch_threads import one_torch_thread``."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run torch on one thread: the test machine's 2 cores are shared, and oversubscription stalls."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

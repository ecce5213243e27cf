"""Shared fixtures: small random reference models built with diffusers/transformers."""

import os
import warnings

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
warnings.filterwarnings("ignore", category=FutureWarning)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models train fastest, and time steadily on a busy machine, on one torch thread
    (modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

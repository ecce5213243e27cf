"""Shared fixtures: small random reference models built with diffusers/transformers."""

import os
import warnings

import pytest
import torch
from hypothesis import HealthCheck, settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
warnings.filterwarnings("ignore", category=FutureWarning)

# Hypothesis profiles (tests/test_safety_fuzz.py). "fast", the default: few examples, the same
# ones every run, so the suite stays quick and reproducible. "deep" (`pytest
# --hypothesis-profile=deep`): many random examples, for occasional hunting. Neither keeps an
# example database (it would write .hypothesis/ into the working tree).
_FUZZ = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("fast", max_examples=12, derandomize=True, **_FUZZ)
settings.register_profile("deep", max_examples=400, **_FUZZ)
settings.load_profile("fast")


# Modules whose tests take minutes in all (exports to TFLite, training runs, the JVM, fresh
# processes): marked `slow`, so `pytest -m "not slow"` is the quick set for a developer. CI runs
# every test.
SLOW_MODULES = {
    "test_bench",
    "test_demo",
    "test_demo_quality",
    "test_distill",
    "test_export_matrix",
    "test_export_tflite",
    "test_img2img",
    "test_lora",
    "test_qnn",
    "test_sfcore",
    "test_train_ddp",
    "test_train_decoder",
    "test_train_engine",
    "test_train_loop",
    "test_train_stages_real_data",
    "test_train_unet",
    "test_verify_components",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models train fastest, and time steadily on a busy machine, on one torch thread
    (modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

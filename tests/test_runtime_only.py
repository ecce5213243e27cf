"""The runtime-only install (`pip install sfmobile`, no extras) without a second venv: the CLI
runs in a subprocess whose `sitecustomize` makes torch and the exporters unimportable, and
must still generate from an ONNX bundle the same image as the full environment; commands that
need torch must say which extra to install (sfmobile/extras.py). scripts/runtime_smoke.sh
checks the real thing (a fresh venv) in CI."""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_bundle import tiny_sources
from typer.testing import CliRunner

from sfmobile.cli import app
from sfmobile.cli.app import _register_commands
from sfmobile.extras import EXTRA_OF_MODULE, missing_extra

ROOT = Path(__file__).resolve().parents[1]
# What `pip install sfmobile` leaves out and the runtime must never import.
BLOCKED = ("torch", "diffusers", "transformers", "litert_torch", "ai_edge_quantizer")
BLOCKER = f"""
import sys

BLOCKED = {BLOCKED!r}


class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, Blocker())
"""


@pytest.fixture(scope="module")
def runtime_env(tmp_path_factory) -> dict[str, str]:
    """The environment of a process that cannot import torch & co (sitecustomize on the path)."""
    folder = tmp_path_factory.mktemp("runtime-only")
    (folder / "sitecustomize.py").write_text(BLOCKER)
    paths = [str(folder), str(ROOT), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def runtime_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    code = "from sfmobile.cli import main; main()"
    command = [sys.executable, "-c", code, *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def full_cli(*args: str):
    _register_commands()
    return CliRunner().invoke(app, list(args))


def test_the_blocker_blocks(runtime_env):
    """Without this, every other test here would pass with torch quietly imported."""
    check = "import sfmobile.backends.onnx_backend, sfmobile.backends.tflite_backend\nimport torch"
    result = subprocess.run(
        [sys.executable, "-c", check], env=runtime_env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "ModuleNotFoundError: No module named 'torch'" in result.stderr


def test_generate_from_onnx_bundle_is_the_full_environments_image(runtime_env, tmp_path):
    bundle = tiny_sources()[1]
    args = ["generate", "--model", str(bundle), "--backend", "onnx", "--prompt", "a red circle"]
    args += ["--seed", "3"]
    full = full_cli(*args, "--out", str(tmp_path / "full.png"))
    assert full.exit_code == 0, full.output
    runtime = runtime_cli(runtime_env, *args, "--out", str(tmp_path / "runtime.png"))
    assert runtime.returncode == 0, runtime.stderr
    with Image.open(tmp_path / "full.png") as a, Image.open(tmp_path / "runtime.png") as b:
        assert a.text == b.text
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_help_tokenize_and_noise_run_without_torch(runtime_env, tmp_path):
    assert runtime_cli(runtime_env, "--help").returncode == 0
    prompts = ["a photo of a cat", "Привет 😺"]
    runtime = runtime_cli(runtime_env, "tokenize", *prompts)
    assert runtime.returncode == 0, runtime.stderr
    assert runtime.stdout == full_cli("tokenize", *prompts).stdout
    assert len(json.loads(runtime.stdout.splitlines()[0])) == 77
    args = ["noise", "--seed", "7", "--shape", "1,4,8,8", "--out"]
    assert runtime_cli(runtime_env, *args, str(tmp_path / "runtime.npy")).returncode == 0
    assert full_cli(*args, str(tmp_path / "full.npy")).exit_code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "runtime.npy"), np.load(tmp_path / "full.npy"))


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["export", "--model", "M", "--format", "onnx", "--precision", "fp32", "--out", "B"],
         "export"),
        (["verify", "BUNDLE", "--reference", "M"], "export"),
        (["random-model", "--preset", "tiny", "--out", "C"], "export"),
        (["generate", "--prompt", "a cat", "--out", "x.png"], "export"),  # the torch backend
        (["train", "vae", "--out", "RUN"], "train"),
    ],
)  # fmt: skip
def test_commands_that_need_torch_name_the_extra(runtime_env, tmp_path, args, extra):
    (tmp_path / "M").mkdir()
    (tmp_path / "BUNDLE").mkdir()
    result = subprocess.run(
        [sys.executable, "-c", "from sfmobile.cli import main; main()", *args],
        env=runtime_env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f'error: this command needs torch, which is not installed: pip install "sfmobile[{extra}]"'
    ]
    assert not (tmp_path / "B").exists() and not (tmp_path / "C").exists()


def test_a_bundle_given_to_the_torch_backend_is_refused_before_torch_is_needed(runtime_env):
    bundle = str(tiny_sources()[1])
    args = ("generate", "--model", bundle, "--backend", "torch", "--prompt", "x")
    result = runtime_cli(runtime_env, *args)
    assert result.returncode == 2
    assert "is an exported bundle: use --backend onnx, tflite or qnn" in result.stderr


def test_other_import_errors_stay_bugs():
    assert missing_extra(ModuleNotFoundError("No module named 'numpy'", name="numpy"), "x") is None
    assert (
        missing_extra(ImportError("cannot import name 'nn' from 'torch'", name="torch"), "x")
        is None
    )
    message = missing_extra(ModuleNotFoundError("no", name="torch.nn"), "train_vae")
    assert message is not None and message.endswith('pip install "sfmobile[train]"')


def requirement_name(requirement: str) -> str:
    for stop in "<>=!~[;( ":
        requirement = requirement.split(stop)[0]
    return requirement.strip().lower().replace("_", "-")


def extra_requirements(extras: dict[str, list[str]], extra: str) -> set[str]:
    """The distributions `sfmobile[extra]` installs, its `sfmobile[...]` references expanded."""
    names = set()
    for requirement in extras[extra]:
        if requirement.startswith("sfmobile["):
            names |= extra_requirements(extras, requirement[len("sfmobile[") : -1])
        else:
            names.add(requirement_name(requirement))
    return names


def test_pyproject_keeps_the_runtime_torch_free_and_each_extra_brings_its_modules():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {requirement_name(r) for r in project["dependencies"]}
    extras = project["optional-dependencies"]
    for module, extra in EXTRA_OF_MODULE.items():
        distribution = module.replace("_", "-")
        assert distribution not in base, f"{distribution} is a base dependency"
        assert distribution in extra_requirements(extras, extra), f"{extra} lacks {distribution}"
    assert {"torch", "webdataset"} <= extra_requirements(extras, "train")
    assert {"onnxruntime", "ai-edge-litert", "numpy", "pillow", "typer"} <= base
    for extra in extras:
        assert extra_requirements(extras, extra) <= extra_requirements(extras, "dev"), extra

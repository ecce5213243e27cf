"""Property-based fuzzing of every reader of user input (docs/safety.md): the manifest reader,
the checkpoint readers and the CLI options of generate, noise and tokenize.

The property: whatever the input, the only exceptions that escape are sfmobile's own
(SfmobileError), a CLI run exits 0 or 2 (never 1, a bug), and nothing is written outside the
run's temporary folder. Where the reader accepts a bundle, its closure rules hold. Examples are
few and fixed by default (tests/conftest.py "fast"); `--hypothesis-profile=deep` runs many.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import chdir, contextmanager, suppress
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_bundle import write_bundle
from tiny_bundle import IMAGE_SIZE, tiny_sources

from sfmobile.backends.bundle_backend import model_info
from sfmobile.bundle import read_bundle, sha256_of
from sfmobile.bundle_rules import used_paths
from sfmobile.cli.app import run
from sfmobile.errors import SfmobileError
from sfmobile.tokenizer import ClipTokenizer
from sfmobile.weights import load_model

pytestmark = pytest.mark.usefixtures("one_thread")

# Examples per test: the loaded profile's count (tests/conftest.py), times 4 for cheap readers.
CHEAP = settings(max_examples=settings.default.max_examples * 4)

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)
NASTY_PATHS = st.sampled_from(
    [
        "../x",
        "/etc/passwd",
        "a/../unet.onnx",
        "unet.onnx/",
        "",
        ".",
        "tokenizer",
        "tokenizer//vocab.json",
        "decoder.onnx",
        "C:\\unet.onnx",
        "unet.onnx\x00",
        "missing.onnx",
        "manifest.json",
        "tokenizer/merges.txt",
    ]
) | st.text(max_size=10)


@contextmanager
def sandbox() -> Iterator[Path]:
    """A fresh folder per example; the folder holding it must gain nothing else."""
    outer = Path(tempfile.mkdtemp(prefix="sfmobile-fuzz-"))
    inner = outer / "run"
    inner.mkdir()
    try:
        yield inner
        assert [p.name for p in outer.iterdir()] == ["run"], "wrote outside its folder"
    finally:
        shutil.rmtree(outer)


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


# --- the manifest reader ----------------------------------------------------------------------


def nodes(data, path=()) -> Iterator[tuple]:
    """Every path (tuple of keys/indices) into a JSON tree."""
    yield path
    if isinstance(data, dict):
        for key, value in data.items():
            yield from nodes(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from nodes(value, (*path, index))


@st.composite
def mutated_manifest(draw, data: dict) -> dict:
    data = json.loads(json.dumps(data))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(nodes(data))[1:]))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        operation = draw(st.sampled_from(["delete", "replace", "path", "rename", "add"]))
        if operation == "delete":
            del parent[key]
        elif operation == "replace":
            parent[key] = draw(JSON)
        elif operation == "path":
            parent[key] = draw(NASTY_PATHS)
        elif operation == "rename" and isinstance(parent, dict):
            parent[draw(NASTY_PATHS)] = parent.pop(key)
        elif operation == "add" and isinstance(parent[key], dict):
            parent[key][draw(st.text(max_size=8))] = draw(JSON)
    return data


@pytest.fixture(scope="module")
def fake_bundle(tmp_path_factory) -> Path:
    """test_bundle's small valid bundle (fake model bytes), with a complete tokenizer."""
    path = write_bundle(tmp_path_factory.mktemp("fuzz") / "bundle")
    data = json.loads((path / "manifest.json").read_text())
    ClipTokenizer.default().save(path / "tokenizer")
    for name in ("tokenizer/vocab.json", "tokenizer/merges.txt"):
        file = path / name
        data["files"][name] = {"sha256": sha256_of(file), "bytes": file.stat().st_size}
    (path / "manifest.json").write_text(json.dumps(data))
    model_info(read_bundle(path))  # the unmutated bundle reads
    return path


@CHEAP
@given(data=st.data())
def test_manifest_reader_raises_only_bundle_errors_and_accepts_only_closed_bundles(
    fake_bundle, data
):
    original = json.loads((fake_bundle / "manifest.json").read_text())
    manifest = data.draw(mutated_manifest(original))
    with sandbox() as folder:
        bundle = folder / "bundle"
        shutil.copytree(fake_bundle, bundle)
        (bundle / "manifest.json").write_text(json.dumps(manifest))
        before = tree(bundle)
        try:
            model_info(read_bundle(bundle))
        except SfmobileError:
            pass
        else:
            root = bundle.resolve()
            for _, file in used_paths(manifest):
                assert file in manifest["files"]
                assert (bundle / file).resolve().is_relative_to(root)
        assert tree(bundle) == before


# --- the checkpoint readers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    return tiny_sources()[0]


def load_or_refuse(path: Path) -> None:
    with suppress(SfmobileError):
        load_model(path)


def header_end(weights: Path) -> int:
    return 8 + int.from_bytes(weights.read_bytes()[:8], "little")


@CHEAP
@given(cut=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_safetensors_is_a_checkpoint_error(checkpoint, cut):
    with sandbox() as folder:
        shutil.copytree(checkpoint, folder / "ckpt")
        weights = folder / "ckpt" / "model.safetensors"
        raw = weights.read_bytes()
        weights.write_bytes(raw[: int(cut * len(raw))])
        with pytest.raises(SfmobileError):
            load_model(folder / "ckpt")


@CHEAP
@given(data=st.data())
def test_bit_flipped_safetensors_loads_or_is_refused(checkpoint, data):
    with sandbox() as folder:
        shutil.copytree(checkpoint, folder / "ckpt")
        weights = folder / "ckpt" / "model.safetensors"
        raw = bytearray(weights.read_bytes())
        end = header_end(weights)
        for _ in range(data.draw(st.integers(1, 4))):
            position = data.draw(st.integers(0, end + 16))  # the header, where flips matter
            raw[position] ^= 1 << data.draw(st.integers(0, 7))
        weights.write_bytes(bytes(raw))
        load_or_refuse(folder / "ckpt")


SMALL = st.none() | st.booleans() | st.integers(-2, 40) | st.floats() | st.text(max_size=6)
SMALL_JSON = st.recursive(SMALL, lambda c: st.lists(c, max_size=3), max_leaves=4)


@CHEAP
@given(data=st.data())
def test_sfmobile_json_with_random_values_loads_or_is_refused(checkpoint, data):
    with sandbox() as folder:
        shutil.copytree(checkpoint, folder / "ckpt")
        config = folder / "ckpt" / "sfmobile.json"
        meta = json.loads(config.read_text())
        for _ in range(data.draw(st.integers(1, 3))):
            path = data.draw(st.sampled_from(list(nodes(meta))[1:]))
            parent = meta
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = data.draw(SMALL_JSON)
        config.write_text(json.dumps(meta))
        load_or_refuse(folder / "ckpt")


UNET_KEYS = st.sampled_from(
    [
        "block_out_channels",
        "down_block_types",
        "up_block_types",
        "layers_per_block",
        "attention_head_dim",
        "num_attention_heads",
        "cross_attention_dim",
        "transformer_layers_per_block",
    ]
)
BLOCKS = st.sampled_from(["CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"])


@CHEAP
@given(config=st.dictionaries(UNET_KEYS, SMALL_JSON | st.lists(BLOCKS, max_size=4), max_size=8))
def test_diffusers_unet_config_with_random_values_is_a_project_error(config):
    with sandbox() as folder:
        (folder / "sd" / "unet").mkdir(parents=True)
        (folder / "sd" / "model_index.json").write_text("{}")
        (folder / "sd" / "unet" / "config.json").write_text(json.dumps(config))
        with pytest.raises(SfmobileError):  # no weights: at best "no weights file"
            load_model(folder / "sd")


# --- CLI options ------------------------------------------------------------------------------

TEXT = st.text(max_size=20)
FLOATS = st.floats(allow_nan=True, allow_infinity=True).map(repr) | TEXT
INTS = st.integers(-(2**65), 2**65).map(str) | TEXT


def cli(args: list[str], folder: Path) -> int:
    with chdir(folder):
        code = run(args)
    assert code in (0, 2), f"exit {code} for {args}"
    return code


@st.composite
def generate_args(draw) -> list[str]:
    args = ["generate", "--model", "{ckpt}", "--prompt", draw(TEXT)]
    options = {
        "--negative-prompt": TEXT,
        "--steps": st.sampled_from(["1", "2", "0", "-1", "x", "99999999999999999999"]),
        "--guidance": FLOATS,
        "--seed": INTS,
        "--height": st.sampled_from(["32", "16", "8", "0", "-8", "7", "33", "x"]),
        "--width": st.sampled_from(["32", "16", "8", "0", "-8", "7", "33", "x"]),
        "--cfg-batch": st.sampled_from(["1", "2", "0", "3"]),
        "--backend": st.sampled_from(["torch", "onnx", "tflite", "cuda", ""]),
        "--out": st.sampled_from(["a.png", "a.jpg", "a.bmp", ".", "no/a.png", "", "a"]),
        "--timings": st.sampled_from(["t.json", "no/t.json", ".", ""]),
        "--init-latents": st.sampled_from(["good.npy", "nan.npy", "text.npy", "l.npz", "none"]),
    }
    for option in draw(st.lists(st.sampled_from(sorted(options)), max_size=4, unique=True)):
        args += [option, draw(options[option])]
    if "--height" not in args:
        args += ["--height", str(IMAGE_SIZE)]
    if "--width" not in args:
        args += ["--width", str(IMAGE_SIZE)]
    if "--steps" not in args:
        args += ["--steps", "1"]
    return args


def latents_files(folder: Path) -> None:
    shape = (1, 4, IMAGE_SIZE // 8, IMAGE_SIZE // 8)
    np.save(folder / "good.npy", np.zeros(shape, np.float32))
    np.save(folder / "nan.npy", np.full(shape, np.nan, np.float32))
    (folder / "text.npy").write_text("hello")
    np.savez(folder / "l.npz", a=np.zeros(shape, np.float32))


@given(args=generate_args())
def test_generate_options_exit_0_or_2(checkpoint, args):
    with sandbox() as folder:
        latents_files(folder)
        cli([a.replace("{ckpt}", str(checkpoint)) for a in args], folder)


@CHEAP
@given(
    seed=INTS,
    shape=st.lists(st.integers(-3, 20), max_size=5).map(lambda d: ",".join(map(str, d))) | TEXT,
    out=st.sampled_from(["n.npy", "n.txt", ".", "no/n.npy", "", "n.npy/"]),
)
def test_noise_options_exit_0_or_2(seed, shape, out):
    with sandbox() as folder:
        cli(["noise", "--seed", seed, "--shape", shape, "--out", out], folder)


@CHEAP
@given(
    prompts=st.lists(st.text(max_size=40), min_size=1, max_size=3),
    tokenizer=st.sampled_from([None, "missing", "file.txt", "empty", "broken"]),
)
def test_tokenize_options_exit_0_or_2(prompts, tokenizer):
    with sandbox() as folder:
        (folder / "file.txt").write_text("x")
        (folder / "empty").mkdir()
        (folder / "broken").mkdir()
        (folder / "broken" / "vocab.json").write_text("[1, 2")
        (folder / "broken" / "merges.txt").write_text("a b c\n")
        args = ["tokenize", "--", *prompts]
        if tokenizer:
            args = ["tokenize", "--tokenizer", tokenizer, "--", *prompts]
        cli(args, folder)

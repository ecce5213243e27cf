"""The safety catalogue (docs/safety.md): every bad input a hostile but fair user can give the
commands in the README, as one table. Each row: how the input is made, the command, the exit
code, a phrase the one-line message must hold (and one it must not), and what must still exist
afterwards with the same checksum.

Reference: the file system itself (checksums of what was there before the command) and the
exit-code policy of sfmobile/cli/app.py (2: user error, 1: bug, 130: interrupted, 0: done).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_bundle import IMAGE_SIZE, tiny_sources

from sfmobile.bundle import sha256_of
from sfmobile.cli.app import run

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = ["--height", str(IMAGE_SIZE), "--width", str(IMAGE_SIZE)]
# A folder no user (root included) can create files in: stands for a read-only file system.
READ_ONLY = "/proc"

Setup = Callable[[Path, Path, Path], None]  # (tmp, checkpoint, bundle)


def nothing(tmp: Path, checkpoint: Path, bundle: Path) -> None:
    """Inputs made by the command line alone."""


@dataclass(frozen=True)
class Case:
    """One row. args, keep and absent may name {tmp}, {ckpt}, {bundle}."""

    id: str
    setup: Setup
    args: tuple[str, ...]
    code: int
    phrase: str
    keep: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    not_phrase: str | None = None
    patch: Callable[[pytest.MonkeyPatch], None] | None = None


# --- inputs -----------------------------------------------------------------------------------


def user_folder(tmp: Path, checkpoint: Path, bundle: Path) -> None:
    (tmp / "mine").mkdir()
    (tmp / "mine" / "thesis.tex").write_text("years of work")


def user_file(tmp: Path, checkpoint: Path, bundle: Path) -> None:
    (tmp / "notes.txt").write_text("keep me")


def folder_named(name: str) -> Setup:
    def setup(tmp: Path, checkpoint: Path, bundle: Path) -> None:
        (tmp / name).mkdir()
        (tmp / name / "inside.txt").write_text("mine")

    return setup


def own_checkpoint(tmp: Path, checkpoint: Path, bundle: Path) -> None:
    shutil.copytree(checkpoint, tmp / "ckpt")


def checkpoint_in_folder(tmp: Path, checkpoint: Path, bundle: Path) -> None:
    shutil.copytree(checkpoint, tmp / "models" / "ckpt")


def own_bundle(tmp: Path, checkpoint: Path, bundle: Path) -> None:
    shutil.copytree(bundle, tmp / "b")


def edited_manifest(edit: Callable[[dict, Path], None]) -> Setup:
    """A copy of the bundle at {tmp}/b whose manifest.json `edit(data, folder)` changed."""

    def setup(tmp: Path, checkpoint: Path, bundle: Path) -> None:
        own_bundle(tmp, checkpoint, bundle)
        path = tmp / "b" / "manifest.json"
        data = json.loads(path.read_text())
        edit(data, tmp / "b")
        path.write_text(json.dumps(data, indent=2))

    return setup


def relisted(data: dict, folder: Path, name: str) -> None:
    """Make files[name] match the file as it is now (so the checksums pass)."""
    file = folder / name
    data["files"][name] = {"sha256": sha256_of(file), "bytes": file.stat().st_size}


def unet_path(path: str) -> Callable[[dict, Path], None]:
    def edit(data: dict, folder: Path) -> None:
        data["components"]["unet"]["files"][0] = path

    return edit


def unlisted_unet(data: dict, folder: Path) -> None:
    """The UNet moved to a name `files` does not list: it would never be checksummed."""
    (folder / "unet.onnx").rename(folder / "other.onnx")
    data["components"]["unet"]["files"][0] = "other.onnx"
    data["files"]["unet.onnx"] = data["files"].pop("unet.onnx")
    shutil.copy(folder / "other.onnx", folder / "unet.onnx")


def symlinked_outside(data: dict, folder: Path) -> None:
    """unet.onnx a symlink to an identical file outside the bundle: checksums pass."""
    outside = folder.parent / "elsewhere.onnx"
    shutil.copy(folder / "unet.onnx", outside)
    (folder / "unet.onnx").unlink()
    (folder / "unet.onnx").symlink_to(outside)


def corrupt_unet(data: dict, folder: Path) -> None:
    (folder / "unet.onnx").write_bytes(b"\x08\x07garbage, not a protobuf" * 50)
    relisted(data, folder, "unet.onnx")


def swapped_unet(data: dict, folder: Path) -> None:
    raw = bytearray((folder / "unet.onnx").read_bytes())
    raw[-100] ^= 0x01
    (folder / "unet.onnx").write_bytes(bytes(raw))


def relabelled_tflite(data: dict, folder: Path) -> None:
    """Every component claims to be TFLite but holds ONNX bytes (checksums still pass)."""
    for component in data["components"].values():
        component["format"] = "tflite"
    data["created_by"]["recipe"]["format"] = "tflite"


def wider_text(data: dict, folder: Path) -> None:
    data["components"]["text_encoder"]["outputs"][0]["shape"][-1] += 1


def tokenizer_outside(data: dict, folder: Path) -> None:
    data["tokenizer"]["vocab"] = "../vocab.json"


def tokenizer_unlisted(data: dict, folder: Path) -> None:
    data["tokenizer"]["vocab"] = "tokenizer/vocab2.json"


def broken_vocab(data: dict, folder: Path) -> None:
    (folder / "tokenizer" / "vocab.json").write_text("[1,")
    relisted(data, folder, "tokenizer/vocab.json")


def lists_itself(data: dict, folder: Path) -> None:
    data["files"]["manifest.json"] = {"sha256": "0" * 64, "bytes": 1}


def latents(values: np.ndarray, name: str = "l.npy") -> Setup:
    def setup(tmp: Path, checkpoint: Path, bundle: Path) -> None:
        np.save(tmp / name, values)

    return setup


def npz_latents(tmp: Path, checkpoint: Path, bundle: Path) -> None:
    np.savez(tmp / "l.npz", latents=np.zeros((1, 4, 4, 4), np.float32))


def text_file(name: str) -> Setup:
    def setup(tmp: Path, checkpoint: Path, bundle: Path) -> None:
        (tmp / name).write_text("101 not binary at all\n")

    return setup


class RunsCode:
    """A pickle that would create {tmp}/pwned when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def malicious_pickle(tmp: Path, checkpoint: Path, bundle: Path) -> None:
    (tmp / "evil.ckpt").write_bytes(pickle.dumps({"state_dict": RunsCode(tmp / "pwned")}))


def nonsense_diffusers(tmp: Path, checkpoint: Path, bundle: Path) -> None:
    (tmp / "sd" / "unet").mkdir(parents=True)
    (tmp / "sd" / "model_index.json").write_text("{}")
    (tmp / "sd" / "unet" / "config.json").write_text('{"block_out_channels": "wide", "x": []}')


def malformed_checkpoint_json(tmp: Path, checkpoint: Path, bundle: Path) -> None:
    shutil.copytree(checkpoint, tmp / "ckpt")
    data = {"format": "sfmobile-checkpoint", "format_version": 1, "model": {"unet": 3}}
    (tmp / "ckpt" / "sfmobile.json").write_text(json.dumps(data))


def missing_folder(tmp: Path, checkpoint: Path, bundle: Path) -> None:
    (tmp / "out").mkdir()


def interrupt_export(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the first model file is half written into the staging folder."""
    import sfmobile.export.bundle_export as bundle_export

    def half_written(target, precision, quantization, samples, folder, phase):
        (folder / f"{target.name}.onnx").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(bundle_export, "_converter", lambda format, *qnn_options: half_written)


def nan_from(component: str) -> Callable[[pytest.MonkeyPatch], None]:
    def patch(monkeypatch: pytest.MonkeyPatch) -> None:
        from sfmobile.backends.torch_backend import TorchBackend

        method = {"unet": "predict", "decoder": "decode"}[component]
        real = getattr(TorchBackend, method)

        def poisoned(self, *args, **kwargs):
            return np.full_like(real(self, *args, **kwargs), np.nan)

        monkeypatch.setattr(TorchBackend, method, poisoned)

    return patch


# --- commands -------------------------------------------------------------------------------

EXPORT = ("export", "--model", "{ckpt}", "--format", "onnx", "--precision", "fp32", *SIZE)
GENERATE = ("generate", "--model", "{ckpt}", "--prompt", "a red circle", "--steps", "1", *SIZE)
ONNX = ("generate", "--model", "{tmp}/b", "--backend", "onnx", "--prompt", "x", "--steps", "1")
PNG = ("--out", "{tmp}/a.png")

CASES = [
    # 1. Outputs never destroy what they did not create.
    Case(
        "export-onto-user-folder",
        user_folder,
        (*EXPORT, "--out", "{tmp}/mine"),
        2,
        "not an earlier sfmobile-bundle output",
        keep=("{tmp}/mine",),
    ),
    Case(
        "export-onto-plain-file",
        user_file,
        (*EXPORT, "--out", "{tmp}/notes.txt"),
        2,
        "is a file",
        keep=("{tmp}/notes.txt",),
    ),
    Case(
        "export-onto-its-own-model",
        own_checkpoint,
        (
            "export",
            "--model",
            "{tmp}/ckpt",
            "--format",
            "onnx",
            "--precision",
            "fp32",
            "--out",
            "{tmp}/ckpt",
        ),
        2,
        "would replace --model",
        keep=("{tmp}/ckpt",),
    ),
    Case(
        "export-onto-the-model's-parent",
        checkpoint_in_folder,
        (
            "export",
            "--model",
            "{tmp}/models/ckpt",
            "--format",
            "onnx",
            "--precision",
            "fp32",
            "--out",
            "{tmp}/models",
        ),
        2,
        "would replace --model",
        keep=("{tmp}/models",),
    ),
    Case(
        "export-onto-current-folder",
        user_file,
        (*EXPORT, "--out", "."),
        2,
        "current folder",
        keep=("{tmp}/notes.txt",),
    ),
    Case(
        "export-onto-a-parent-of-cwd",
        user_file,
        (*EXPORT, "--out", ".."),
        2,
        "current folder or one of its parents",
        keep=("{tmp}/notes.txt",),
    ),
    Case(
        "export-onto-read-only-place",
        nothing,
        (*EXPORT, "--out", f"{READ_ONLY}/bundle"),
        2,
        "cannot write",
        keep=("{ckpt}",),
    ),
    Case(
        "interrupted-export-keeps-previous-bundle",
        own_bundle,
        (*EXPORT, "--out", "{tmp}/b"),
        130,
        "interrupted",
        keep=("{tmp}/b",),
        patch=interrupt_export,
    ),
    Case(
        "random-model-onto-user-folder",
        user_folder,
        ("random-model", "--preset", "tiny", "--out", "{tmp}/mine"),
        2,
        "not an earlier sfmobile-checkpoint output",
        keep=("{tmp}/mine",),
    ),
    Case(
        "random-model-onto-plain-file",
        user_file,
        ("random-model", "--preset", "tiny", "--out", "{tmp}/notes.txt"),
        2,
        "is a file",
        keep=("{tmp}/notes.txt",),
    ),
    Case(
        "random-model-onto-a-bundle",
        own_bundle,
        ("random-model", "--preset", "tiny", "--out", "{tmp}/b"),
        2,
        "not an earlier sfmobile-checkpoint output",
        keep=("{tmp}/b",),
    ),
    Case(
        "convert-onto-user-folder",
        user_folder,
        ("convert", "--to", "diffusers", "--model", "{ckpt}", "--out", "{tmp}/mine"),
        2,
        "not an earlier diffusers-folder output",
        keep=("{tmp}/mine",),
    ),
    Case(
        "convert-onto-its-model",
        own_checkpoint,
        ("convert", "--to", "diffusers", "--model", "{tmp}/ckpt", "--out", "{tmp}/ckpt"),
        2,
        "would replace --model",
        keep=("{tmp}/ckpt",),
    ),
    Case(
        "convert-to-unknown-format",
        nothing,
        ("convert", "--to", "onnx", "--model", "{ckpt}", "--out", "{tmp}/out"),
        2,
        "--to onnx: expected one of diffusers",
        absent=("{tmp}/out",),
    ),
    Case(
        "swap-vae-onto-its-model",
        own_checkpoint,
        ("swap-vae", "--model", "{tmp}/ckpt", "--vae", "{tmp}/ckpt", "--out", "{tmp}/ckpt"),
        2,
        "would replace --model",
        keep=("{tmp}/ckpt",),
    ),
    Case(
        "generate-out-is-a-folder",
        user_folder,
        (*GENERATE, "--out", "{tmp}/mine"),
        2,
        "is a folder",
        keep=("{tmp}/mine",),
    ),
    Case(
        "generate-out-is-a-folder-named-png",
        folder_named("a.png"),
        (*GENERATE, *PNG),
        2,
        "is a folder",
        keep=("{tmp}/a.png",),
    ),
    Case(
        "generate-out-unknown-extension",
        nothing,
        (*GENERATE, "--out", "{tmp}/a.bmp"),
        2,
        "unsupported extension '.bmp'",
        absent=("{tmp}/a.bmp",),
    ),
    Case(
        "generate-out-read-only-place",
        nothing,
        (*GENERATE, "--out", f"{READ_ONLY}/a.png"),
        2,
        "cannot write",
    ),
    Case(
        "generate-out-missing-folder",
        nothing,
        (*GENERATE, "--out", "{tmp}/no/a.png"),
        2,
        "does not exist",
        absent=("{tmp}/no",),
    ),
    Case(
        "timings-into-missing-folder-writes-no-image",
        nothing,
        (*GENERATE, *PNG, "--timings", "{tmp}/no/t.json"),
        2,
        "--timings",
        absent=("{tmp}/a.png", "{tmp}/no"),
    ),
    Case(
        "noise-read-only-place",
        nothing,
        ("noise", "--seed", "1", "--out", f"{READ_ONLY}/n.npy"),
        2,
        "cannot write",
    ),
    Case(
        "noise-onto-a-folder",
        folder_named("n.npy"),
        ("noise", "--seed", "1", "--out", "{tmp}/n.npy"),
        2,
        "is a folder",
    ),
    Case(
        "noise-of-terabytes",
        nothing,
        ("noise", "--seed", "1", "--shape", "1000,1000,1000,1000", "--out", "{tmp}/n.npy"),
        2,
        "exceeds",
        absent=("{tmp}/n.npy",),
    ),
    # 2. A bundle is closed.
    Case(
        "component-path-outside",
        edited_manifest(unet_path("../elsewhere/unet.onnx")),
        ONNX,
        2,
        "manifest invalid at components/unet/files/0",
        keep=("{tmp}/b",),
    ),
    Case(
        "component-path-absolute",
        edited_manifest(unet_path("/tmp/unet.onnx")),
        ONNX,
        2,
        "manifest invalid at components/unet/files/0",
    ),
    Case(
        "component-path-not-normalised",
        edited_manifest(unet_path("./unet.onnx")),
        ONNX,
        2,
        "manifest invalid at components/unet/files/0",
    ),
    Case(
        "component-file-not-listed",
        edited_manifest(unlisted_unet),
        ONNX,
        2,
        "components.unet.files[0] 'other.onnx' is not listed in files",
    ),
    Case(
        "component-symlinked-outside",
        edited_manifest(symlinked_outside),
        ONNX,
        2,
        "resolves outside the bundle folder",
    ),
    Case(
        "tokenizer-path-outside",
        edited_manifest(tokenizer_outside),
        ONNX,
        2,
        "manifest invalid at tokenizer/vocab",
    ),
    Case(
        "tokenizer-path-unlisted",
        edited_manifest(tokenizer_unlisted),
        ONNX,
        2,
        "tokenizer.vocab 'tokenizer/vocab2.json' is not listed",
    ),
    Case(
        "tokenizer-vocab-broken-with-matching-checksum",
        edited_manifest(broken_vocab),
        ONNX,
        2,
        "tokenizer ('tokenizer/vocab.json', 'tokenizer/merges.txt'): tokenizer file",
    ),
    Case(
        "manifest-lists-itself", edited_manifest(lists_itself), ONNX, 2, "manifest invalid at files"
    ),
    Case(
        "swapped-unet-fails-its-checksum",
        edited_manifest(swapped_unet),
        ONNX,
        2,
        "unet.onnx: sha256 does not match",
        absent=("{tmp}/a.png",),
    ),
    Case(
        "verify-refuses-an-open-bundle",
        edited_manifest(unet_path("../elsewhere/unet.onnx")),
        ("verify", "{tmp}/b", "--reference", "{ckpt}"),
        2,
        "manifest invalid",
    ),
    Case(
        "corrupt-onnx-with-matching-checksums",
        edited_manifest(corrupt_unet),
        ONNX,
        2,
        "component unet (unet.onnx)",
    ),
    Case(
        "corrupt-tflite-with-matching-checksums",
        edited_manifest(relabelled_tflite),
        (*ONNX[:4], "tflite", *ONNX[5:]),
        2,
        "component text_encoder (text_encoder.onnx): LiteRT cannot load it",
    ),
    Case(
        "edited-manifest-shapes",
        edited_manifest(wider_text),
        ONNX,
        2,
        "component text_encoder (text_encoder.onnx): tensor text_embeddings",
    ),
    # 3. Non-finite numbers are refused.
    Case(
        "guidance-inf",
        nothing,
        (*GENERATE, "--guidance", "inf", *PNG),
        2,
        "--guidance must be a finite number",
        absent=("{tmp}/a.png",),
    ),
    Case(
        "guidance-nan",
        nothing,
        (*GENERATE, "--guidance", "nan", *PNG),
        2,
        "--guidance must be a finite number",
        absent=("{tmp}/a.png",),
    ),
    Case(
        "init-latents-with-nan",
        latents(np.full((1, 4, 4, 4), np.nan, np.float32)),
        (*GENERATE, "--init-latents", "{tmp}/l.npy", *PNG),
        2,
        "NaN or inf",
        absent=("{tmp}/a.png",),
    ),
    Case(
        "init-latents-with-inf",
        latents(np.full((1, 4, 4, 4), np.inf, np.float32)),
        (*GENERATE, "--init-latents", "{tmp}/l.npy", *PNG),
        2,
        "NaN or inf",
    ),
    Case(
        "unet-output-not-finite",
        nothing,
        (*GENERATE, *PNG),
        2,
        "unet output at step 1/1",
        absent=("{tmp}/a.png",),
        patch=nan_from("unet"),
    ),
    Case(
        "decoder-output-not-finite",
        nothing,
        (*GENERATE, *PNG),
        2,
        "decoder output",
        absent=("{tmp}/a.png",),
        patch=nan_from("decoder"),
    ),
    # 4. Clear errors, not tracebacks.
    Case(
        "nonsense-diffusers-unet-config",
        nonsense_diffusers,
        (*GENERATE[:1], "--model", "{tmp}/sd", *GENERATE[3:], *PNG),
        2,
        "unet/config.json",
    ),
    Case(
        "malformed-sfmobile-json",
        malformed_checkpoint_json,
        (*GENERATE[:1], "--model", "{tmp}/ckpt", *GENERATE[3:], *PNG),
        2,
        "sfmobile.json",
    ),
    Case(
        "npz-as-init-latents",
        npz_latents,
        (*GENERATE, "--init-latents", "{tmp}/l.npz"),
        2,
        ".npz archive",
    ),
    Case(
        "init-latents-of-objects",
        latents(np.array([None, 1], dtype=object)),
        (*GENERATE, "--init-latents", "{tmp}/l.npy"),
        2,
        "not numbers",
        not_phrase="allow_pickle",
    ),
    Case(
        "usage-error-is-one-line",
        nothing,
        ("generate", "--prompt", "x", "--bogus"),
        2,
        "No such option: --bogus",
    ),
    # 5. Messages name what the user gave and never advise unsafe loading.
    Case(
        "malicious-pickle-never-runs",
        malicious_pickle,
        (*GENERATE[:1], "--model", "{tmp}/evil.ckpt", *GENERATE[3:], *PNG),
        2,
        "refused",
        absent=("{tmp}/pwned", "{tmp}/a.png"),
        not_phrase="weights_only",
    ),
    Case(
        "text-file-named-ckpt",
        text_file("model.ckpt"),
        (*GENERATE[:1], "--model", "{tmp}/model.ckpt", *GENERATE[3:]),
        2,
        "not a PyTorch checkpoint",
    ),
    Case(
        "text-file-named-npy",
        text_file("l.npy"),
        (*GENERATE, "--init-latents", "{tmp}/l.npy"),
        2,
        "--init-latents",
        not_phrase="unsafe",
    ),
    # Good outcomes the policy must not break.
    Case(
        "export-replaces-an-earlier-bundle", own_bundle, (*EXPORT, "--out", "{tmp}/b"), 0, "wrote"
    ),
    Case(
        "random-model-into-empty-folder",
        missing_folder,
        ("random-model", "--preset", "tiny", "--out", "{tmp}/out"),
        0,
        "wrote",
    ),
    Case("generate-jpeg", nothing, (*GENERATE, "--out", "{tmp}/a.jpg"), 0, "wrote"),
]


def expand(text: str, tmp: Path, checkpoint: Path, bundle: Path) -> str:
    return text.format(tmp=tmp, ckpt=checkpoint, bundle=bundle)


def digest(path: Path) -> str:
    """sha256 of a file, or of a folder's relative names and file contents (symlinks as their
    targets' text)."""
    if path.is_symlink():
        return "link:" + os.readlink(path)
    if path.is_file():
        return sha256_of(path)
    entries = [
        f"{p.relative_to(path).as_posix()}={digest(p) if not p.is_dir() else 'dir'}"
        for p in sorted(path.rglob("*"))
    ]
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


@pytest.fixture(scope="module")
def sources() -> tuple[Path, Path]:
    return tiny_sources()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_catalogue(case: Case, sources, tmp_path, monkeypatch, capsys):
    checkpoint, bundle = sources
    case.setup(tmp_path, checkpoint, bundle)
    if case.patch:
        case.patch(monkeypatch)
    monkeypatch.chdir(tmp_path)
    kept = {expand(p, tmp_path, checkpoint, bundle): None for p in case.keep}
    kept = {p: digest(Path(p)) for p in kept}

    code = run([expand(a, tmp_path, checkpoint, bundle) for a in case.args])

    captured = capsys.readouterr()
    err = captured.err
    assert code == case.code, err
    assert case.phrase in (err if case.code else captured.out + err)
    if case.code in (1, 2):
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err  # one line, no traceback
    if case.not_phrase:
        assert case.not_phrase not in err
    for path, before in kept.items():
        assert digest(Path(path)) == before, f"{path} changed"
    for path in case.absent:
        assert not Path(expand(path, tmp_path, checkpoint, bundle)).exists()
    leftovers = [p.name for p in tmp_path.rglob("*") if ".partial-" in p.name or ".old-" in p.name]
    assert not leftovers


def test_written_outputs_get_ordinary_permissions(sources, tmp_path, monkeypatch):
    """Not mkdtemp's 0700: folders 0777 & ~umask, files 0666 & ~umask."""
    monkeypatch.chdir(tmp_path)
    old = os.umask(0o022)
    try:
        assert run(["random-model", "--preset", "tiny", "--out", str(tmp_path / "m")]) == 0
        assert run(["noise", "--seed", "1", "--out", str(tmp_path / "n.npy")]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "m").stat().st_mode & 0o777 == 0o755
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "m").iterdir()} == {0o644}
    assert (tmp_path / "n.npy").stat().st_mode & 0o777 == 0o644


def test_jpeg_keeps_the_settings_the_help_promises(sources, tmp_path):
    checkpoint, _ = sources
    args = ["generate", "--model", str(checkpoint), "--prompt", "a blue café", "--seed", "7"]
    assert run([*args, "--steps", "1", *SIZE, "--out", str(tmp_path / "a.jpg")]) == 0
    settings = json.loads(Image.open(tmp_path / "a.jpg").info["comment"])
    assert settings == {
        "prompt": "a blue café",
        "negative_prompt": "",
        "seed": "7",
        "steps": "1",
        "guidance": "7.5",
        "backend": "torch",
    }


def test_unexpected_error_exits_1_with_a_log_of_the_traceback(tmp_path, monkeypatch, capsys):
    import sfmobile.cli.noise_cmd as noise_cmd

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(noise_cmd, "gaussian_noise", broken)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert run(["noise", "--seed", "1", "--out", str(tmp_path / "n.npy")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unexpected ZeroDivisionError: a bug")
    assert len(err.splitlines()) == 1
    logs = list(tmp_path.glob("sfmobile-error-*.log"))
    assert len(logs) == 1 and str(logs[0]) in err
    assert "Traceback" in logs[0].read_text() and "broken" in logs[0].read_text()
    with pytest.raises(ZeroDivisionError):  # --debug: the traceback itself
        run(["--debug", "noise", "--seed", "1", "--out", str(tmp_path / "n.npy")])

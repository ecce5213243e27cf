"""Checkpoint loading builds the modules on the meta device and makes the file's tensors the
parameters (weights/strict.py): the loaded model must be exactly the one the old path (modules
built with random weights, then the tensors copied in) gave, with no tensor left without data."""

import sys

import numpy as np
import pytest
import torch
from compvis_files import compvis_state
from safetensors.torch import load_file, save_file

from sfmobile.backends.torch_backend import TorchBackend
from sfmobile.errors import CheckpointError
from sfmobile.models.random_init import random_model
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.pipeline import Pipeline
from sfmobile.presets import preset
from sfmobile.shipped import shipped_demo_path
from sfmobile.weights import load_model, sfmobile_checkpoint
from sfmobile.weights.components import COMPONENTS
from sfmobile.weights.diffusers_export import save_diffusers_folder
from sfmobile.weights.safetensors_file import load_owned
from sfmobile.weights.sfmobile_checkpoint import save_checkpoint
from sfmobile.weights.strict import build_empty, load_strict


def every_tensor(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and all buffers, persistent or not (state_dict() leaves the computed ones out)."""
    return {**dict(module.named_parameters()), **dict(module.named_buffers())}


def assert_identical(loaded: StableDiffusion, reference: StableDiffusion) -> None:
    """Same names, dtypes, shapes and bits for every parameter and buffer; all on the CPU, own
    memory, contiguous."""
    for name, module in reference.modules().items():
        theirs, ours = every_tensor(module), every_tensor(getattr(loaded, name))
        assert ours.keys() == theirs.keys(), name
        for key, tensor in theirs.items():
            mine = ours[key]
            assert mine.device.type == "cpu" and mine.is_contiguous(), f"{name}.{key}"
            assert mine.dtype == tensor.dtype and mine.shape == tensor.shape, f"{name}.{key}"
            assert torch.equal(mine, tensor), f"{name}.{key}"
            assert not mine.requires_grad, f"{name}.{key}"


def copied_into_built_modules(folder) -> StableDiffusion:
    """The old loading path of an sfmobile checkpoint, written out: modules built with random
    weights on the CPU, then the file's tensors (as float32) copied into them."""
    tensors = load_file(str(folder / sfmobile_checkpoint.WEIGHTS_FILE))
    config = load_model(folder).config
    modules = {}
    for component in COMPONENTS:
        module = component.build(component.config_of(config))
        prefix = component.name + "."
        state = {k[len(prefix) :]: v.float() for k, v in tensors.items() if k.startswith(prefix)}
        module.load_state_dict(state, strict=True)
        modules[component.name] = module.eval().requires_grad_(False)
    return StableDiffusion(config=config, scheduler=None, **modules)


def test_the_demo_model_loads_exactly_as_copying_into_built_modules_did():
    assert_identical(load_model(None), copied_into_built_modules(shipped_demo_path()))


def save_as(kind: str, model: StableDiffusion, folder) -> object:
    """`model` written as one checkpoint kind; the path load_model takes."""
    if kind == "sfmobile":
        save_checkpoint(model, folder / "ckpt")
        return folder / "ckpt"
    if kind == "diffusers":
        save_diffusers_folder(model, folder / "diffusers")
        return folder / "diffusers"
    if kind == "compvis-safetensors":
        save_file(compvis_state(model), str(folder / "model.safetensors"))
        return folder / "model.safetensors"
    torch.save({"state_dict": compvis_state(model)}, folder / "model.ckpt")
    return folder / "model.ckpt"


@pytest.mark.parametrize("kind", ["sfmobile", "diffusers", "compvis-safetensors", "compvis-ckpt"])
def test_every_checkpoint_kind_loads_the_saved_model_exactly(tmp_path, kind):
    model = random_model("tiny", seed=5)
    path = save_as(kind, model, tmp_path)
    assert_identical(load_model(path, preset="tiny" if "compvis" in kind else None), model)


def test_the_files_float32_tensors_become_the_parameters_without_a_copy(tmp_path, monkeypatch):
    save_checkpoint(random_model("tiny", seed=6), tmp_path / "ckpt")
    read = []

    def recording(path):
        tensors = load_owned(path)
        read.extend(tensor.data_ptr() for tensor in tensors.values())
        return tensors

    monkeypatch.setattr(sfmobile_checkpoint, "read_tensors", recording)
    loaded = load_model(tmp_path / "ckpt")
    parameters = [t for m in loaded.modules().values() for t in m.parameters()]
    assert parameters and {t.data_ptr() for t in parameters} <= set(read)


def test_tensors_a_file_ties_or_strides_become_separate_contiguous_parameters(tmp_path):
    model = random_model("tiny", seed=7)
    state = compvis_state(model)
    first = "first_stage_model.encoder.norm_out.weight"
    second = "first_stage_model.encoder.norm_out.bias"
    state[second] = state[first]  # one storage under two names
    conv = "model.diffusion_model.input_blocks.0.0.weight"
    state[conv] = state[conv].permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # strided
    torch.save({"state_dict": state}, tmp_path / "model.ckpt")
    loaded = load_model(tmp_path / "model.ckpt", preset="tiny")
    norm = loaded.vae.encoder.norm_out
    assert torch.equal(norm.weight, norm.bias) and torch.equal(norm.weight, state[first])
    norm.weight.add_(1.0)  # in place, as merging a LoRA does
    assert torch.equal(norm.bias, state[first])
    assert loaded.unet.conv_in.weight.is_contiguous()
    assert torch.equal(loaded.unet.conv_in.weight, model.unet.conv_in.weight)


def configs():
    """(build, config, the buffers checkpoints lack) for every component, and a guided UNet."""
    tiny = preset("tiny")
    guided = tiny.unet.__class__(**{**tiny.unet.__dict__, "guidance_embedding": True})
    computed = {
        "unet": {"time_embed.frequencies"},
        "text_encoder": {"causal_mask"},
        "vae": set(),
    }
    cases = [(c.build, c.config_of(tiny), computed[c.name]) for c in COMPONENTS]
    both = {"time_embed.frequencies", "guidance_embed.frequencies"}
    return [*cases, (COMPONENTS[0].build, guided, both)]


@pytest.mark.parametrize("build, config, names", configs())
def test_buffers_checkpoints_lack_are_computed_on_the_cpu_when_built_on_meta(build, config, names):
    built = dict(build(config).named_buffers())
    empty = build_empty(build, config)
    persistent = set(empty.state_dict())
    buffers = dict(empty.named_buffers())
    assert buffers.keys() == built.keys()
    assert buffers.keys() - persistent == names  # a new one: add it here, computed on the CPU
    for key in names:
        assert buffers[key].device.type == "cpu" and torch.equal(buffers[key], built[key]), key
    assert all(t.is_meta for t in empty.parameters())


class ForgetfulModule(torch.nn.Module):
    """A module type whose computed buffers do not say device="cpu"."""

    def __init__(self, _config=None) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(2, 2)
        self.register_buffer("table", torch.arange(4.0), persistent=False)
        self.register_buffer("scratch", torch.empty(3), persistent=False)


def test_a_buffer_left_on_the_meta_device_fails_naming_it():
    module = build_empty(ForgetfulModule, None)
    state = {"proj.weight": torch.ones(2, 2), "proj.bias": torch.zeros(2)}
    with pytest.raises(RuntimeError, match=r"file\.safetensors: ForgetfulModule .*: table, scr"):
        load_strict(module, state, "file.safetensors")


def test_a_missing_tensor_fails_naming_it_and_the_file(tmp_path):
    save_checkpoint(random_model("tiny", seed=8), tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / sfmobile_checkpoint.WEIGHTS_FILE
    tensors = load_file(str(weights))
    del tensors["unet.conv_in.weight"]
    save_file(tensors, str(weights))
    with pytest.raises(CheckpointError) as error:
        load_model(tmp_path / "ckpt")
    assert str(error.value) == (
        f"{weights} (unet): checkpoint does not match the architecture; 1 missing: conv_in.weight"
    )


def test_generation_is_unchanged_from_the_copying_path():
    reference = copied_into_built_modules(shipped_demo_path())
    loaded = load_model(None)
    reference.scheduler, reference.tokenizer_dir = loaded.scheduler, loaded.tokenizer_dir
    images = [
        np.asarray(
            Pipeline(TorchBackend(model))
            .generate("a red circle", steps=2, seed=4, height=64, width=64)
            .image
        )
        for model in (loaded, reference)
    ]
    assert np.array_equal(images[0], images[1]) and images[0].std() > 1.0


def test_safetensors_are_read_into_memory_of_their_own(tmp_path):
    tensors = {
        "f32": torch.randn(3, 5),
        "f16": torch.randn(4).half(),
        "bf16": torch.randn(2, 2).bfloat16(),
        "i64": torch.arange(6).reshape(2, 3),
        "bool": torch.tensor([True, False]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }
    path = tmp_path / "t.safetensors"
    save_file(tensors, str(path))
    read = load_owned(path)
    if sys.platform.startswith("linux"):
        with open("/proc/self/maps") as maps:
            assert str(path) not in maps.read()  # no mapping of the file holds their pages
    expected = load_file(str(path))
    assert read.keys() == expected.keys()
    for key, tensor in expected.items():
        assert read[key].dtype == tensor.dtype and read[key].shape == tensor.shape, key
        assert torch.equal(read[key], tensor), key


def test_a_safetensors_file_that_ends_early_is_a_checkpoint_error(tmp_path):
    save_checkpoint(random_model("tiny", seed=9), tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / sfmobile_checkpoint.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-4])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors"):
        load_model(tmp_path / "ckpt")

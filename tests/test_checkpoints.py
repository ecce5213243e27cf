"""Checkpoint formats end to end: CompVis single files, sfmobile checkpoints, SnapFusion init, and
the errors bad files must give."""

import pickle

import pytest
import torch
from compvis_files import compvis_state
from safetensors.torch import save_file

from sfmobile.errors import CheckpointError
from sfmobile.models.random_init import random_model
from sfmobile.models.unet import UNet
from sfmobile.presets import narrowed, sd15_unet, snapfusion_unet
from sfmobile.weights import load_model
from sfmobile.weights.compvis_file import SCHEDULE_BUFFERS
from sfmobile.weights.sfmobile_checkpoint import save_checkpoint
from sfmobile.weights.snapfusion_init import init_from_sd15


def outputs(model) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 49408, (1, 77), generator=generator)
    latents = torch.randn(1, 4, 8, 8, generator=generator)
    with torch.no_grad():
        text = model.text_encoder(ids)
        noise = model.unet(latents, torch.tensor([500.0]), text)
        image = model.vae.decode(latents)
    return [text, noise, image]


def assert_same_outputs(a, b) -> None:
    for x, y in zip(outputs(a), outputs(b), strict=True):
        assert torch.allclose(x, y, atol=1e-6, rtol=0)


def test_compvis_single_file_loads_every_component(tmp_path):
    model = random_model("tiny", seed=1)
    save_file(compvis_state(model), str(tmp_path / "model.safetensors"))
    loaded = load_model(tmp_path / "model.safetensors", preset="tiny")
    assert_same_outputs(model, loaded)


def test_compvis_ckpt_is_read_with_weights_only(tmp_path):
    model = random_model("tiny", seed=2)
    torch.save({"state_dict": compvis_state(model)}, tmp_path / "model.ckpt")
    assert_same_outputs(model, load_model(tmp_path / "model.ckpt", preset="tiny"))


def test_sfmobile_checkpoint_round_trips(tmp_path):
    model = random_model("tiny", seed=3)
    save_checkpoint(model, tmp_path / "ckpt")
    loaded = load_model(tmp_path / "ckpt")
    assert loaded.config == model.config
    assert loaded.scheduler == model.scheduler
    assert_same_outputs(model, loaded)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(CheckpointError, match=r"nothing\.safetensors"):
        load_model(tmp_path / "nothing.safetensors")


def test_truncated_safetensors_is_refused(tmp_path):
    model = random_model("tiny")
    path = tmp_path / "model.safetensors"
    save_file(compvis_state(model), str(path))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_model(path, preset="tiny")


def test_checkpoint_of_another_architecture_lists_mismatches(tmp_path):
    save_file(compvis_state(random_model("tiny")), str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError) as error:
        load_model(tmp_path / "model.safetensors", preset="demo")
    message = str(error.value)
    assert "model.safetensors" in message
    assert "missing" in message and "mis-shaped" in message


def test_unknown_tensors_are_reported_as_unexpected(tmp_path):
    state = compvis_state(random_model("tiny"))
    state["model.diffusion_model.extra_head.weight"] = torch.zeros(3)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"1 unexpected: model\.diffusion_model\.extra_head"):
        load_model(tmp_path / "model.safetensors", preset="tiny")


class RunsCode:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = RunsCode()
    payload.marker = str(marker)
    (tmp_path / "evil.ckpt").write_bytes(pickle.dumps({"state_dict": payload}))
    with pytest.raises(CheckpointError, match="refused") as refusal:
        load_model(tmp_path / "evil.ckpt", preset="tiny")
    assert "weights_only" not in str(refusal.value)  # never torch's advice to load unsafely
    assert not marker.exists()


def test_schedule_buffers_are_not_mistaken_for_weights():
    assert "alphas_cumprod" in SCHEDULE_BUFFERS


def test_snapfusion_init_copies_shared_blocks_and_reports_new_ones():
    sd15 = UNet(narrowed(sd15_unet(), 10, 32))
    snap, report = init_from_sd15(narrowed(snapfusion_unet(), 10, 32), sd15)
    theirs, ours = sd15.state_dict(), snap.state_dict()
    for name in report.copied:
        source = name.replace("up_stages.1.units.1.", "up_stages.1.units.2.")
        assert torch.equal(ours[name], theirs[source])
    fresh_blocks = report.blocks(report.fresh)
    assert "up_stages.1.units.0.transformer" in fresh_blocks  # blocks 1-2 of depth 3 are new
    assert not any(name.startswith("down_stages.1.") for name in report.fresh)
    assert any(name.startswith("up_stages.1.units.1.resnet.") for name in report.copied)
    assert len(report.copied) + len(report.fresh) == len(ours)


def test_first_difference_names_the_first_unequal_tensor_or_a_renaming():
    from sfmobile.weights.strict import first_difference

    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 2))
    b = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 2))
    b.load_state_dict(a.state_dict())
    assert first_difference(a, b) is None
    with torch.no_grad():
        b[1].bias[0] += 1e-7
    assert first_difference(a, b) == "1.bias"
    assert first_difference(a, torch.nn.Sequential(torch.nn.Linear(3, 3))) == "names differ"

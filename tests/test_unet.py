"""Our UNet against diffusers' UNet2DConditionModel, weights moved through our own loaders."""

import re
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DConditionModel

from sfmobile.models.layers import set_attention_slicing
from sfmobile.models.unet import UNet
from sfmobile.presets import sd15_unet, snapfusion_unet
from sfmobile.weights.components import COMPONENTS
from sfmobile.weights.diffusers_folder import load_component

UNET = next(c for c in COMPONENTS if c.name == "unet")

SD15_LAYOUT_SMALL = dict(
    block_out_channels=(32, 64, 64),
    layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32,
    attention_head_dim=2,
    sample_size=16,
)
MIXED_LAYOUT = dict(
    block_out_channels=(32, 64, 64, 96),
    layers_per_block=(1, 2, 1, 2),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 1, 1),
    attention_head_dim=(2, 4, 2, 4),
    use_linear_projection=True,
    upcast_attention=True,
    cross_attention_dim=48,
    sample_size=16,
)


def random_reference(layout: dict, seed: int = 0) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    model = UNet2DConditionModel(**layout).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.05)
    return model


def reference_inputs(model: UNet2DConditionModel, batch: int = 2) -> tuple:
    generator = torch.Generator().manual_seed(1)
    size = model.config.sample_size
    sample = torch.randn(batch, 4, size, size, generator=generator)
    text = torch.randn(batch, 7, model.config.cross_attention_dim, generator=generator)
    timestep = torch.tensor([1.0, 981.0][:batch])
    return sample, timestep, text


@pytest.mark.parametrize("layout", [SD15_LAYOUT_SMALL, MIXED_LAYOUT], ids=["sd15-small", "mixed"])
def test_unet_matches_diffusers_through_folder_loader(tmp_path, layout):
    reference = random_reference(layout)
    reference.save_pretrained(tmp_path / "unet")
    ours, _ = load_component(tmp_path / "unet", UNET)
    ours.eval()
    sample, timestep, text = reference_inputs(reference)
    with torch.no_grad():
        expected = reference(sample, timestep, text).sample
        actual = ours(sample, timestep, text)
    assert torch.allclose(actual, expected, atol=1e-5, rtol=0)


def test_query_sliced_attention_gives_the_same_output(tmp_path):
    reference = random_reference(SD15_LAYOUT_SMALL)
    reference.save_pretrained(tmp_path / "unet")
    ours, _ = load_component(tmp_path / "unet", UNET)
    sample, timestep, text = reference_inputs(reference)
    with torch.no_grad():
        whole = ours(sample, timestep, text)
        set_attention_slicing(ours, 24)
        sliced = ours(sample, timestep, text)
    assert torch.allclose(whole, sliced, atol=1e-6, rtol=0)


def parameter_count(config) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in UNet(config).parameters())


def test_sd15_preset_has_sd15_parameter_count():
    assert parameter_count(sd15_unet()) == 859_520_964


def test_sd15_preset_matches_diffusers_sd15_config_on_meta():
    with torch.device("meta"):
        reference = UNet2DConditionModel(
            block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8
        )
    shapes = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    ours = {k: tuple(v.shape) for k, v in UNet(sd15_unet()).to("meta").state_dict().items()}
    from sfmobile.weights.unet_keys import diffusers_key_map

    key_map = diffusers_key_map(sd15_unet())
    assert {key_map[k]: s for k, s in shapes.items()} == ours


def section_counts(config, stages) -> tuple[int, int]:
    """(cross-attention blocks, ResNet blocks) over the given stages."""
    attention = sum(depth for stage in stages for depth in stage.units)
    return attention, sum(len(stage.units) for stage in stages)


def test_snapfusion_preset_follows_table_3():
    c = snapfusion_unet()
    assert section_counts(c, [c.down[0]]) == (0, 2)
    assert section_counts(c, [c.down[1]]) == (2, 2)
    assert section_counts(c, [c.down[2]]) == (2, 1)
    assert section_counts(c, [c.down[3], c.mid, c.up[0]]) == (1, 4)
    assert section_counts(c, [c.up[1]]) == (6, 2)
    assert section_counts(c, [c.up[2]]) == (3, 3)
    assert section_counts(c, [c.up[3]]) == (0, 3)
    assert 700_000_000 < parameter_count(c) < parameter_count(sd15_unet())


def test_unet_compvis_names_agree_with_diffusers_converter():
    """Random tensors under our CompVis names, converted by diffusers' own LDM converter, must
    drive diffusers' UNet exactly as they drive ours."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    from sfmobile.weights.strict import load_strict, rename
    from sfmobile.weights.unet_keys import compvis_key_map, config_from_diffusers

    reference = random_reference(SD15_LAYOUT_SMALL)
    config = config_from_diffusers(dict(reference.config))
    key_map = compvis_key_map(config)
    shapes = {k: v.shape for k, v in UNet(config).state_dict().items()}
    generator = torch.Generator().manual_seed(3)
    compvis = {
        theirs: 0.05 * torch.randn(shapes[ours], generator=generator)
        for theirs, ours in key_map.items()
    }
    converted = convert_ldm_unet_checkpoint(compvis, dict(reference.config))
    reference.load_state_dict(converted, strict=True)
    ours = UNet(config).eval()
    state, unexpected = rename(compvis, key_map)
    load_strict(ours, state, "compvis", unexpected)
    sample, timestep, text = reference_inputs(reference)
    with torch.no_grad():
        assert torch.allclose(
            ours(sample, timestep, text),
            reference(sample, timestep, text).sample,
            atol=1e-5,
            rtol=0,
        )


def test_readme_states_each_presets_parameter_count():
    """The README's numbers are the presets' own (a changed preset must change its docs)."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    stated = re.search(r"`sd15` \(SD-1\.5's UNet, ([\d,]+) parameters\)", readme)
    table3 = re.search(r"`snapfusion` \(SnapFusion's Table 3,\s+([\d,]+) parameters", readme)
    assert stated and table3, "README's Layout section no longer states the parameter counts"
    assert int(stated[1].replace(",", "")) == parameter_count(sd15_unet())
    assert int(table3[1].replace(",", "")) == parameter_count(snapfusion_unet())

"""Our SD-1.x autoencoder against diffusers' AutoencoderKL: tiny random models saved with
save_pretrained, loaded through our config mapping, key maps and strict loader, compared on
decode, encode (mean) and sample. The CompVis layout is written here with this file's own
renaming table and checked against diffusers' CompVis -> diffusers converter before use."""

import re
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL as DiffusersAutoencoderKL
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
from safetensors.torch import save_file

from sfmobile.config import VAEConfig
from sfmobile.errors import CheckpointError, ConfigError
from sfmobile.models.vae import AutoencoderKL, Decoder
from sfmobile.weights import vae_keys
from sfmobile.weights.safe_io import read_json, read_tensors
from sfmobile.weights.strict import load_strict, rename

TOL = 1e-5
CHANNELS = (32, 64)
WEIGHTS = "diffusion_pytorch_model.safetensors"

# diffusers name -> CompVis name, applied in order (the decoder's up.{i} is renumbered apart).
COMPVIS_RENAMES = [
    (r"\.down_blocks\.(\d+)\.resnets\.", r".down.\1.block."),
    (r"\.down_blocks\.(\d+)\.downsamplers\.0\.", r".down.\1.downsample."),
    (r"\.upsamplers\.0\.", ".upsample."),
    (r"\.mid_block\.resnets\.0\.", ".mid.block_1."),
    (r"\.mid_block\.resnets\.1\.", ".mid.block_2."),
    (r"\.mid_block\.attentions\.0\.", ".mid.attn_1."),
    (r"\.group_norm\.", ".norm."),
    (r"\.to_([qkv])\.", r".\1."),
    (r"\.to_out\.0\.", ".proj_out."),
    (r"\.conv_shortcut\.", ".nin_shortcut."),
    (r"\.conv_norm_out\.", ".norm_out."),
]
LEGACY_ATTENTION = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


def tiny_diffusers_vae(layers_per_block: int) -> DiffusersAutoencoderKL:
    torch.manual_seed(layers_per_block)
    model = DiffusersAutoencoderKL(
        block_out_channels=CHANNELS,
        down_block_types=("DownEncoderBlock2D",) * len(CHANNELS),
        up_block_types=("UpDecoderBlock2D",) * len(CHANNELS),
        layers_per_block=layers_per_block,
        norm_num_groups=32,
        latent_channels=4,
    )
    with torch.no_grad():  # zero-initialised biases and norms would hide mapping mistakes
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return model.eval()


@pytest.fixture(scope="module", params=[1, 2], ids=["layers1", "layers2"])
def saved(request, tmp_path_factory) -> tuple[DiffusersAutoencoderKL, Path]:
    folder = tmp_path_factory.mktemp(f"vae{request.param}")
    model = tiny_diffusers_vae(request.param)
    model.save_pretrained(folder)
    return model, folder


def compvis_state(diffusers_state: dict[str, torch.Tensor], stages: int) -> dict:
    """diffusers names -> CompVis names (first_stage_model.*), attention weights as 1x1 convs."""
    compvis = {}
    for key, tensor in diffusers_state.items():
        name = "." + key
        for pattern, replacement in COMPVIS_RENAMES:
            name = re.sub(pattern, replacement, name)
        name = re.sub(r"\.up_blocks\.(\d+)\.", lambda m: f".up.{stages - 1 - int(m[1])}.", name)
        name = name.replace(".resnets.", ".block.")[1:]
        if ".attn_1." in name and tensor.ndim == 2:
            tensor = tensor[:, :, None, None]
        compvis["first_stage_model." + name] = tensor.contiguous()
    return compvis


def load_ours(module: torch.nn.Module, tensors: dict, key_map: dict[str, str]) -> torch.nn.Module:
    state, unexpected = rename(tensors, key_map)
    load_strict(module, state, "test checkpoint", unexpected)
    return module.eval()


def load_from_folder(folder: Path) -> AutoencoderKL:
    config = vae_keys.config_from_diffusers(read_json(folder / "config.json"))
    tensors = read_tensors(folder / WEIGHTS)
    return load_ours(AutoencoderKL(config), tensors, vae_keys.diffusers_key_map(config))


def images() -> torch.Tensor:
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1


def latents() -> torch.Tensor:
    return torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(2))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@torch.no_grad()
def test_decode_matches_diffusers(saved) -> None:
    reference, folder = saved
    ours = load_from_folder(folder)
    assert max_diff(ours.decode(latents()), reference.decode(latents()).sample) <= TOL


@torch.no_grad()
def test_encode_mean_matches_diffusers(saved) -> None:
    reference, folder = saved
    ours = load_from_folder(folder)
    expected = reference.encode(images()).latent_dist.mean
    assert max_diff(ours.encode(images()), expected) <= TOL


@torch.no_grad()
def test_sample_matches_diffusers_for_the_same_generator(saved) -> None:
    reference, folder = saved
    ours = load_from_folder(folder)
    expected = reference.encode(images()).latent_dist.sample(torch.Generator().manual_seed(3))
    actual = ours.sample(images(), torch.Generator().manual_seed(3))
    assert max_diff(actual, expected) <= TOL


def test_compvis_table_of_this_test_agrees_with_diffusers_converter(saved) -> None:
    reference, _ = saved
    state = reference.state_dict()
    converted = convert_ldm_vae_checkpoint(compvis_state(state, len(CHANNELS)), reference.config)
    assert converted.keys() == state.keys()
    assert all(torch.equal(converted[key], state[key]) for key in state)


@torch.no_grad()
def test_compvis_layout_matches_diffusers(saved, tmp_path: Path) -> None:
    reference, folder = saved
    config = vae_keys.config_from_diffusers(read_json(folder / "config.json"))
    save_file(
        compvis_state(reference.state_dict(), len(CHANNELS)), str(tmp_path / "vae.safetensors")
    )
    tensors = read_tensors(tmp_path / "vae.safetensors")
    ours = load_ours(AutoencoderKL(config), tensors, vae_keys.compvis_key_map(config))
    assert max_diff(ours.decode(latents()), reference.decode(latents()).sample) <= TOL
    expected = reference.encode(images()).latent_dist.mean
    assert max_diff(ours.encode(images()), expected) <= TOL


@torch.no_grad()
@pytest.mark.parametrize("layout", ["diffusers", "compvis"])
def test_decoder_only_map_loads_a_standalone_decoder(saved, layout: str) -> None:
    reference, folder = saved
    config = vae_keys.config_from_diffusers(read_json(folder / "config.json"))
    state = {k: v for k, v in reference.state_dict().items() if not k.startswith(("enc", "quant"))}
    if layout == "compvis":
        state = compvis_state(state, len(CHANNELS))
        key_map = vae_keys.compvis_key_map(config, decoder_only=True)
    else:
        key_map = vae_keys.diffusers_key_map(config, decoder_only=True)
    decoder = load_ours(Decoder(config), state, key_map)
    assert max_diff(decoder(latents()), reference.decode(latents()).sample) <= TOL


@torch.no_grad()
def test_legacy_diffusers_attention_names_load(saved) -> None:
    reference, folder = saved
    config = vae_keys.config_from_diffusers(read_json(folder / "config.json"))
    state = {}
    for key, tensor in reference.state_dict().items():
        for new, old in LEGACY_ATTENTION.items():
            key = key.replace(f".attentions.0.{new}.", f".attentions.0.{old}.")
        state[key] = tensor
    ours = load_ours(AutoencoderKL(config), state, vae_keys.diffusers_key_map(config))
    assert max_diff(ours.decode(latents()), reference.decode(latents()).sample) <= TOL


def test_pruned_decoder_has_half_the_channels() -> None:
    config = VAEConfig((64, 128), (64, 128))
    full, pruned = Decoder(config), Decoder(config.pruned())
    full_convs = [(n, m) for n, m in full.named_modules() if isinstance(m, torch.nn.Conv2d)]
    pruned_convs = [m for m in pruned.modules() if isinstance(m, torch.nn.Conv2d)]
    for (name, full_conv), pruned_conv in zip(full_convs, pruned_convs, strict=True):
        if name not in ("post_quant_conv", "conv_out"):
            assert pruned_conv.out_channels * 2 == full_conv.out_channels, name
    assert pruned(latents()).shape == (2, 3, 16, 16)


def test_pruned_config_keeps_the_full_encoder() -> None:
    config = VAEConfig((64, 128), (64, 128)).pruned()
    assert (config.encoder_channels, config.decoder_channels) == ((64, 128), (32, 64))


def test_mis_shaped_checkpoint_lists_the_tensors(saved) -> None:
    reference, folder = saved
    config = vae_keys.config_from_diffusers(read_json(folder / "config.json"))
    wider = VAEConfig((64, 128), (64, 128), layers_per_block=config.layers_per_block)
    key_map = vae_keys.diffusers_key_map(wider, decoder_only=True)
    with pytest.raises(CheckpointError, match=r"mis-shaped: conv_in\.weight \(64, 4, 3, 3\) vs"):
        load_ours(Decoder(wider), reference.state_dict(), key_map)


def test_missing_tensors_are_listed(saved) -> None:
    reference, folder = saved
    config = vae_keys.config_from_diffusers(read_json(folder / "config.json"))
    state = dict(reference.state_dict())
    del state["decoder.mid_block.attentions.0.to_k.bias"]
    with pytest.raises(CheckpointError, match=r"1 missing: decoder\.mid\.attention\.self_attn"):
        load_ours(AutoencoderKL(config), state, vae_keys.diffusers_key_map(config))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("up_block_types", ["UpDecoderBlock2D", "AttnUpDecoderBlock2D"]),
        ("down_block_types", ["DownEncoderBlock2D"]),
        ("shift_factor", 0.1159),
        ("act_fn", "gelu"),
        ("_class_name", "AutoencoderTiny"),
    ],
)
def test_config_rejects_unsupported_options_by_name(saved, key: str, value) -> None:
    _, folder = saved
    config_json = {**read_json(folder / "config.json"), key: value}
    with pytest.raises(ConfigError, match=key):
        vae_keys.config_from_diffusers(config_json)


def test_default_decoder_matches_diffusers_parameter_count() -> None:
    with torch.device("meta"):
        ours = Decoder(VAEConfig())
        reference = DiffusersAutoencoderKL(
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=2,
        )
    expected = sum(
        p.numel() for m in (reference.decoder, reference.post_quant_conv) for p in m.parameters()
    )
    assert sum(p.numel() for p in ours.parameters()) == expected

"""Our CLIP text encoder against transformers' CLIPTextModel: a tiny random model saved with
save_pretrained, loaded through our config mapping, key maps and strict loader, compared on
last_hidden_state; the CompVis layout is written here from transformers 4.x names with the
published prefix and checked with diffusers' own CompVis -> transformers converter."""

import logging
from pathlib import Path

import pytest
import torch
from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel

from sfmobile.config import TextEncoderConfig
from sfmobile.errors import CheckpointError, ConfigError
from sfmobile.models.text_encoder import TextEncoder
from sfmobile.weights import text_encoder_keys
from sfmobile.weights.safe_io import read_json, read_tensors
from sfmobile.weights.strict import load_strict, rename

TOL = 1e-5
VOCAB = 1000
COMPVIS_PREFIX = "cond_stage_model.transformer."  # + transformers 4.x names (text_model.*)

logging.getLogger("transformers").setLevel(logging.ERROR)


def tiny_clip(hidden_act: str = "quick_gelu", width: int = 32) -> CLIPTextModel:
    torch.manual_seed(0)
    config = CLIPTextConfig(
        vocab_size=VOCAB,
        hidden_size=width,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=2 * width,
        max_position_embeddings=77,
        hidden_act=hidden_act,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    return CLIPTextModel(config).eval()


def save_tiny_clip(folder: Path, hidden_act: str = "quick_gelu") -> CLIPTextModel:
    model = tiny_clip(hidden_act)
    model.save_pretrained(folder)
    return model


def load_ours(
    tensors: dict[str, torch.Tensor], key_map: dict[str, str], config: TextEncoderConfig
) -> TextEncoder:
    tensors = {k: v for k, v in tensors.items() if k not in text_encoder_keys.IGNORED_KEYS}
    state, unexpected = rename(tensors, key_map)
    module = TextEncoder(config).eval()
    load_strict(module, state, "test checkpoint", unexpected)
    return module


def load_from_folder(folder: Path) -> TextEncoder:
    config = text_encoder_keys.config_from_transformers(read_json(folder / "config.json"))
    tensors = read_tensors(folder / "model.safetensors")
    return load_ours(tensors, text_encoder_keys.diffusers_key_map(config), config)


def token_ids(dtype: torch.dtype = torch.int64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randint(0, VOCAB, (2, 77), generator=generator).to(dtype)


def reference_output(model: CLIPTextModel) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=token_ids()).last_hidden_state


def our_output(module: TextEncoder, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    with torch.no_grad():
        return module(token_ids(dtype))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("hidden_act", ["quick_gelu", "gelu"])
def test_matches_transformers_last_hidden_state(tmp_path: Path, hidden_act: str) -> None:
    reference = save_tiny_clip(tmp_path, hidden_act)
    ours = load_from_folder(tmp_path)
    assert max_diff(our_output(ours), reference_output(reference)) <= TOL


def test_int32_token_ids_give_the_int64_result(tmp_path: Path) -> None:
    save_tiny_clip(tmp_path)
    ours = load_from_folder(tmp_path)
    assert torch.equal(our_output(ours, torch.int32), our_output(ours, torch.int64))


def test_loads_transformers4_names_with_position_ids_buffer(tmp_path: Path) -> None:
    """Published SD-1.x folders: `text_model.` prefix and the position_ids buffer."""
    reference = tiny_clip()
    tensors = {"text_model." + k: v for k, v in reference.state_dict().items()}
    tensors["text_model.embeddings.position_ids"] = torch.arange(77)[None]
    config = text_encoder_keys.config_from_transformers(reference.config.to_dict())
    ours = load_ours(tensors, text_encoder_keys.diffusers_key_map(config), config)
    assert max_diff(our_output(ours), reference_output(reference)) <= TOL


def test_compvis_layout_matches_transformers(tmp_path: Path) -> None:
    reference = tiny_clip()
    names_4x = {"text_model." + k: v.contiguous() for k, v in reference.state_dict().items()}
    compvis = {COMPVIS_PREFIX + k: v for k, v in names_4x.items()}
    assert convert_ldm_clip_checkpoint(compvis).keys() == names_4x.keys()
    save_file(compvis, str(tmp_path / "model.safetensors"))
    config = text_encoder_keys.config_from_transformers(reference.config.to_dict())
    tensors = read_tensors(tmp_path / "model.safetensors")
    ours = load_ours(tensors, text_encoder_keys.compvis_key_map(config), config)
    assert max_diff(our_output(ours), reference_output(reference)) <= TOL


def test_float16_mask_stays_finite_and_output_close() -> None:
    module = TextEncoder(TextEncoderConfig(vocab_size=VOCAB, width=32, layers=2, heads=4)).eval()
    reference = our_output(module)
    module.half()
    assert torch.isfinite(module.causal_mask).all()
    output = our_output(module)
    assert torch.isfinite(output).all()
    assert max_diff(output.float(), reference) < 2e-2


def test_default_config_has_clip_vit_l14_text_parameter_count() -> None:
    with torch.device("meta"):
        ours = TextEncoder(TextEncoderConfig())
        reference = CLIPTextModel(
            CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12)
        )
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in reference.parameters()) == 123_060_480


def test_mis_shaped_checkpoint_lists_the_tensors(tmp_path: Path) -> None:
    save_tiny_clip(tmp_path)
    tensors = read_tensors(tmp_path / "model.safetensors")
    wider = TextEncoderConfig(vocab_size=VOCAB, width=64, layers=3, heads=4, mlp_dim=128)
    with pytest.raises(CheckpointError, match=r"mis-shaped: .*token_embedding\.weight"):
        load_ours(tensors, text_encoder_keys.diffusers_key_map(wider), wider)


def test_missing_tensors_are_listed(tmp_path: Path) -> None:
    save_tiny_clip(tmp_path)
    config = text_encoder_keys.config_from_transformers(read_json(tmp_path / "config.json"))
    tensors = read_tensors(tmp_path / "model.safetensors")
    del tensors["encoder.layers.2.mlp.fc2.weight"]
    with pytest.raises(CheckpointError, match=r"1 missing: layers\.2\.mlp\.fc2\.weight"):
        load_ours(tensors, text_encoder_keys.diffusers_key_map(config), config)


def test_config_rejects_unsupported_activation_by_name() -> None:
    with pytest.raises(ConfigError, match="hidden_act='gelu_new'"):
        text_encoder_keys.config_from_transformers({"hidden_act": "gelu_new"})


def test_config_reads_transformers_fields() -> None:
    saved = tiny_clip().config.to_dict()
    config = text_encoder_keys.config_from_transformers(saved)
    assert (config.width, config.layers, config.heads, config.mlp_dim, config.vocab_size) == (
        saved["hidden_size"],
        saved["num_hidden_layers"],
        saved["num_attention_heads"],
        saved["intermediate_size"],
        saved["vocab_size"],
    )

"""The CLIP text encoder's checkpoint layouts: transformers' `text_encoder/config.json` ->
TextEncoderConfig, and key maps from transformers and CompVis tensor names onto ours.

transformers 4.x (every published SD-1.x folder) names tensors `text_model.embeddings...`;
transformers 5 saves a CLIPTextModel without the `text_model.` prefix. The diffusers map accepts
both. CompVis single files hold the 4.x names under `cond_stage_model.transformer.`.
"""

from __future__ import annotations

from typing import Any

from sfmobile.config import TextEncoderConfig
from sfmobile.errors import ConfigError

# Inside one transformer layer: their module -> our module (each has a weight and a bias).
LAYER_LEAVES = {
    "layer_norm1": "norm1",
    "self_attn.q_proj": "attention.to_q",
    "self_attn.k_proj": "attention.to_k",
    "self_attn.v_proj": "attention.to_v",
    "self_attn.out_proj": "attention.to_out",
    "layer_norm2": "norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
# Outside the layers: their tensor -> our tensor.
TOP_LEVEL = {
    "embeddings.token_embedding.weight": "token_embedding.weight",
    "embeddings.position_embedding.weight": "position_embedding",
    "final_layer_norm.weight": "final_norm.weight",
    "final_layer_norm.bias": "final_norm.bias",
}
TRANSFORMERS_PREFIXES = ("text_model.", "")
COMPVIS_PREFIX = "cond_stage_model.transformer.text_model."

# Buffers some checkpoints carry that are not weights (the position ids 0..76).
IGNORED_KEYS = frozenset(
    prefix + "embeddings.position_ids" for prefix in (*TRANSFORMERS_PREFIXES, COMPVIS_PREFIX)
)

# CLIPTextConfig fields we read, with transformers' defaults (used when config.json omits one).
FIELDS: dict[str, tuple[str, Any]] = {
    "vocab_size": ("vocab_size", 49408),
    "max_position_embeddings": ("max_positions", 77),
    "hidden_size": ("width", 512),
    "num_hidden_layers": ("layers", 12),
    "num_attention_heads": ("heads", 8),
    "intermediate_size": ("mlp_dim", 2048),
    "hidden_act": ("activation", "quick_gelu"),
    "layer_norm_eps": ("norm_eps", 1e-5),
}
ACTIVATIONS = ("quick_gelu", "gelu")
MODEL_TYPES = ("clip_text_model", "clip")


def config_from_transformers(config_json: dict[str, Any]) -> TextEncoderConfig:
    """Map a CLIPTextConfig `config.json` (or a CLIPConfig's `text_config`) onto ours."""
    model_type = config_json.get("model_type", "clip_text_model")
    if model_type not in MODEL_TYPES:
        raise ConfigError(f"text encoder config model_type={model_type!r}: expected {MODEL_TYPES}")
    if isinstance(config_json.get("text_config"), dict):
        config_json = config_json["text_config"]
    activation = config_json.get("hidden_act", "quick_gelu")
    if activation not in ACTIVATIONS:
        raise ConfigError(
            f"text encoder config hidden_act={activation!r} is not supported "
            f"(expected one of {ACTIVATIONS})"
        )
    values = {ours: config_json.get(theirs, default) for theirs, (ours, default) in FIELDS.items()}
    for theirs, (ours, default) in FIELDS.items():
        expected = (int, float) if isinstance(default, float) else type(default)
        if not isinstance(values[ours], expected) or isinstance(values[ours], bool):
            raise ConfigError(
                f"text encoder config {theirs}={values[ours]!r}: expected {type(default).__name__}"
            )
    values["norm_eps"] = float(values["norm_eps"])
    return TextEncoderConfig(**values)


def _our_keys_to_theirs(config: TextEncoderConfig) -> dict[str, str]:
    """Our tensor name -> their name without a prefix (`embeddings...`, `encoder.layers...`)."""
    pairs = {ours: theirs for theirs, ours in TOP_LEVEL.items()}
    for i in range(config.layers):
        for theirs, ours in LAYER_LEAVES.items():
            for param in ("weight", "bias"):
                pairs[f"layers.{i}.{ours}.{param}"] = f"encoder.layers.{i}.{theirs}.{param}"
    return pairs


def diffusers_key_map(config: TextEncoderConfig) -> dict[str, str]:
    """transformers CLIPTextModel tensor name (with or without `text_model.`) -> ours."""
    return {
        prefix + theirs: ours
        for prefix in TRANSFORMERS_PREFIXES
        for ours, theirs in _our_keys_to_theirs(config).items()
    }


def compvis_key_map(config: TextEncoderConfig, prefix: str = COMPVIS_PREFIX) -> dict[str, str]:
    """CompVis (`cond_stage_model.transformer.text_model.*`) tensor name -> ours."""
    return {prefix + theirs: ours for ours, theirs in _our_keys_to_theirs(config).items()}

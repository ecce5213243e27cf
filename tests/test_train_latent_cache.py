"""`sfmobile cache-latents` (sfmobile/train/data/latent_cache.py): a tiny random model's VAE and
text encoder run over a small image-caption folder; the cache read back equals encoding each
sample directly, one at a time, outside the cache's batching, sharding and files."""

import json

import pytest
import tiny_models
import torch
from PIL import Image
from typer.testing import CliRunner

from sfmobile.cli import app
from sfmobile.cli.app import _register_commands
from sfmobile.config import ModelConfig
from sfmobile.errors import InputError
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.models.text_encoder import TextEncoder
from sfmobile.models.unet import UNet
from sfmobile.models.vae import AutoencoderKL
from sfmobile.scheduler import SchedulerConfig
from sfmobile.tokenizer import ClipTokenizer
from sfmobile.train.data.images import load_image
from sfmobile.train.data.latent_cache import INDEX_FILE, LatentCache
from sfmobile.weights.sfmobile_checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 16
SCALING = 0.37
CAPTIONS = ["a red thing", "a green thing", "a blue thing", "stripes", "a grey thing"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(3)
    vae = tiny_models.vae(scaling_factor=SCALING)
    config = ModelConfig(unet=tiny_models.unet(), text_encoder=tiny_models.TEXT, vae=vae)
    model = StableDiffusion(
        config=config,
        unet=UNet(config.unet),
        text_encoder=TextEncoder(config.text_encoder),
        vae=AutoencoderKL(vae),
        scheduler=SchedulerConfig(),
        source="tiny",
    )
    out = tmp_path_factory.mktemp("model") / "tiny"
    save_checkpoint(model, out)
    return out


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    generator = torch.Generator().manual_seed(0)
    for number, caption in enumerate(CAPTIONS):
        pixels = torch.randint(0, 256, (SIZE + 4 * number, SIZE, 3), generator=generator)
        Image.fromarray(pixels.to(torch.uint8).numpy()).save(root / f"{number}.png")
        (root / f"{number}.txt").write_text(caption)
    (root / "broken.png").write_bytes(b"not a png")
    (root / "broken.txt").write_text("skipped")
    (root / "uncaptioned.png").write_bytes((root / "0.png").read_bytes())
    return root


def _run(*args):
    _register_commands()
    return CliRunner().invoke(app, ["cache-latents", *map(str, args)])


def test_cache_round_trip_equals_encoding_each_sample_directly(model_dir, data_dir, tmp_path):
    out = tmp_path / "cache"
    # batch 2 and shard 3: shards cut through batches, the last shard is short
    result = _run(
        "--model", model_dir, "--data", data_dir, "--out", out, "--image-size", SIZE,
        "--batch-size", 2, "--shard-size", 3,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "5 samples read, skipped 1 unreadable images and 1 missing" in result.output

    from sfmobile.weights import load_model

    model = load_model(model_dir).eval()
    tokenizer = ClipTokenizer.default()
    cache = LatentCache(out)
    assert len(cache) == len(CAPTIONS)
    assert [s["count"] for s in cache.index["shards"]] == [3, 2]
    assert cache.index["scaling_factor"] == SCALING
    assert cache.index["skipped"]["unreadable_images"] == 1
    for i, caption in enumerate(CAPTIONS):
        sample = cache[i]
        assert (sample.key, sample.caption) == (f"{i}.png", caption)
        with torch.no_grad():
            mean, _ = model.vae.moments(load_image(data_dir / f"{i}.png", SIZE)[None])
            ids = torch.tensor(tokenizer.encode_batch([caption]))
            embeddings = model.text_encoder(ids)[0]
        assert sample.latents.shape == (4, SIZE // 8, SIZE // 8)
        torch.testing.assert_close(sample.latents, mean[0] * SCALING, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(sample.text_embeddings, embeddings, rtol=1e-5, atol=1e-6)


def test_float16_cache_stores_half_precision(model_dir, data_dir, tmp_path):
    result = _run(
        "--model", model_dir, "--data", data_dir, "--out", tmp_path / "c", "--image-size", SIZE,
        "--dtype", "float16",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    sample = LatentCache(tmp_path / "c")[0]
    assert sample.latents.dtype == sample.text_embeddings.dtype == torch.float16
    assert json.loads((tmp_path / "c" / INDEX_FILE).read_text())["dtype"] == "float16"


def test_nothing_readable_fails_cleanly_and_writes_nothing(model_dir, tmp_path):
    data = tmp_path / "bad"
    data.mkdir()
    (data / "a.png").write_bytes(b"junk")
    (data / "a.txt").write_text("caption")
    out = tmp_path / "cache"
    result = _run("--model", model_dir, "--data", data, "--out", out, "--image-size", SIZE)
    assert result.exit_code == 2 and "no readable samples" in result.output
    assert not out.exists() and list(tmp_path.iterdir()) == [data]  # no staging folder left


def test_bad_arguments_are_one_line_errors(model_dir, data_dir, tmp_path):
    result = _run("--model", model_dir, "--data", data_dir, "--out", tmp_path, "--image-size", 12)
    assert result.exit_code == 2 and "multiple of 8" in result.output
    result = _run("--data", data_dir, "--out", tmp_path / "c", "--device", "nonsense")
    assert result.exit_code == 2 and "--device nonsense" in result.output
    result = _run("--data", tmp_path / "nowhere", "--out", tmp_path / "c")
    assert result.exit_code == 2 and "nowhere" in result.output
    with pytest.raises(InputError, match=r"not a latent cache \(no index\.json\)"):
        LatentCache(data_dir)

"""Components loaded all at once or one at a time (backends/residency.py): the same image either
way, and in one-at-a-time mode only the component in use is open."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_bundle import IMAGE_SIZE, tiny_sources

from sfmobile.backends.factory import open_backend
from sfmobile.backends.residency import Components
from sfmobile.pipeline import Pipeline

pytestmark = pytest.mark.usefixtures("one_thread")


class Opener:
    """Records which components were opened, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, name: str) -> str:
        self.calls.append(name)
        return f"model of {name}"


def test_resident_opens_every_component_up_front_and_keeps_them():
    opener = Opener()
    components = Components(["a", "b", "c"], opener, resident=True)
    assert opener.calls == ["a", "b", "c"]
    assert components.get("b") == "model of b"
    assert components.get("a") == "model of a"
    assert opener.calls == ["a", "b", "c"]
    assert set(components.opened) == {"a", "b", "c"}


def test_one_at_a_time_opens_on_first_use_and_closes_the_one_before():
    opener = Opener()
    components = Components(["a", "b", "c"], opener, resident=False)
    assert opener.calls == [] and components.opened == {}
    components.get("a")
    components.get("a")
    assert opener.calls == ["a"] and set(components.opened) == {"a"}
    components.get("c")
    assert opener.calls == ["a", "c"] and set(components.opened) == {"c"}
    components.get("a")
    assert opener.calls == ["a", "c", "a"] and set(components.opened) == {"a"}
    components.close()
    assert components.opened == {}


def test_a_component_the_bundle_lacks_is_a_key_error():
    components = Components(["a"], Opener(), resident=False)
    with pytest.raises(KeyError):
        components.get("b")


def generate(resident: bool, seen: list[set[str]] | None = None):
    backend = open_backend(tiny_sources()[1], "onnx", resident=resident)

    def on_step(done: int, total: int) -> None:
        if seen is not None:
            seen.append(set(backend.components.opened))

    generation = Pipeline(backend).generate(
        "a red cube", steps=2, seed=3, height=IMAGE_SIZE, width=IMAGE_SIZE, on_step=on_step
    )
    return backend, generation


def test_one_at_a_time_generation_equals_the_resident_one():
    _, resident = generate(resident=True)
    _, one_at_a_time = generate(resident=False)
    np.testing.assert_array_equal(np.asarray(one_at_a_time.image), np.asarray(resident.image))
    np.testing.assert_array_equal(one_at_a_time.latents, resident.latents)


def test_one_at_a_time_holds_only_the_unet_while_denoising_and_the_decoder_after():
    seen: list[set[str]] = []
    backend, _ = generate(resident=False, seen=seen)
    assert seen == [{"unet"}, {"unet"}]
    assert set(backend.components.opened) == {"decoder"}


def test_resident_backend_holds_every_component_throughout():
    seen: list[set[str]] = []
    generate(resident=True, seen=seen)
    assert seen == [{"text_encoder", "unet", "decoder"}] * 2


def run_generate(*args: str):
    from typer.testing import CliRunner

    from sfmobile.cli import app
    from sfmobile.cli.app import _register_commands

    _register_commands()
    return CliRunner().invoke(app, ["generate", *args])


def test_generate_loads_a_bundle_one_component_at_a_time(monkeypatch, tmp_path):
    import sfmobile.cli.generate_cmd as generate_cmd

    opened = []

    def recording_open_backend(*args, **kwargs):
        backend = open_backend(*args, **kwargs)
        opened.append(backend)
        return backend

    monkeypatch.setattr(generate_cmd, "open_backend", recording_open_backend)
    out = tmp_path / "image.png"
    result = run_generate("--model", str(tiny_sources()[1]), "--prompt", "a cube", "--steps", "1",
                          "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.is_file()
    assert not opened[0].components.resident
    assert set(opened[0].components.opened) == {"decoder"}


def test_generate_tile_decoder_on_a_bundle_without_one_exits_2_before_generating(tmp_path):
    out = tmp_path / "image.png"
    result = run_generate("--model", str(tiny_sources()[1]), "--prompt", "a cube",
                          "--tile-decoder", "--out", str(out))  # fmt: skip
    assert result.exit_code == 2
    assert "--decoder-tile" in result.output
    assert not out.exists()

"""The synthetic captioned-scene generator: determinism, caption truthfulness, split, sharding.

Captions and pixels are checked against the ground truth with plain string and pixel tests,
independent of the analyser.
"""

import re

import numpy as np
import pytest
import torch

from sfmobile.errors import InputError
from sfmobile.train.scenes.generator import SceneGenerator, heldout_prompts, shard_indices
from sfmobile.train.scenes.render import background_pixels
from sfmobile.train.scenes.scene import (
    COLOURS,
    HELDOUT_RELATIONS,
    HELDOUT_SHAPE_COLOURS,
    SHAPES,
    Background,
)
from sfmobile.train.scenes.torch_data import SceneDataset, SceneStream

N_CHECK = 300
POSITION_WORDS = {
    "left": {"left"},
    "right": {"right"},
    "top": {"top"},
    "bottom": {"bottom"},
    "centre": {"centre", "middle"},
}
RELATION_WORDS = {
    "above": {"above"},
    "below": {"below", "under", "beneath"},
    "left of": {"left"},
    "right of": {"right"},
}


def words(caption: str) -> list[str]:
    return re.findall(r"[a-z]+", caption)


@pytest.fixture(scope="module")
def train_samples():
    generator = SceneGenerator(split="train", seed=0)
    return [generator[i] for i in range(N_CHECK)]


def test_same_seed_and_index_give_identical_scene():
    first, second = SceneGenerator("train", seed=7)[123], SceneGenerator("train", seed=7)[123]
    assert first.caption == second.caption
    assert first.scene == second.scene
    assert np.array_equal(first.image, second.image)


def test_scene_does_not_depend_on_access_order():
    generator = SceneGenerator("train", seed=3)
    late = generator[40]
    for i in range(40):
        generator[i]
    assert np.array_equal(generator[40].image, late.image) and generator[40].caption == late.caption


def test_different_indices_give_different_scenes(train_samples):
    assert len({s.image.tobytes() for s in train_samples}) == len(train_samples)


def test_different_seeds_give_different_streams():
    a, b = SceneGenerator("train", seed=0), SceneGenerator("train", seed=1)
    assert [a.scene(i).caption for i in range(20)] != [b.scene(i).caption for i in range(20)]


def test_image_is_uint8_rgb_of_the_requested_size():
    assert SceneGenerator(size=64)[0].image.shape == (64, 64, 3)
    big = SceneGenerator(size=128)[0]
    assert big.image.shape == (128, 128, 3) and big.image.dtype == np.uint8


def test_model_input_is_chw_in_minus_one_to_one(train_samples):
    sample = train_samples[0]
    x = sample.model_input()
    assert x.shape == (3, 64, 64) and x.dtype == np.float32
    np.testing.assert_allclose(x, sample.image.transpose(2, 0, 1) / 127.5 - 1.0, atol=1e-6)


def test_caption_names_exactly_the_scene_colours_and_shapes(train_samples):
    for s in train_samples:
        said = set(words(s.caption))
        colours = {o.colour for o in s.scene.objects} | set(s.scene.background.colours)
        assert said & set(COLOURS) == colours, s.caption
        assert said & set(SHAPES) == {o.shape for o in s.scene.objects}, s.caption


def test_captions_say_an_before_a_vowel(train_samples):
    for s in train_samples:
        assert not re.search(r"\ba [aeiou]", s.caption), s.caption


def test_caption_states_sizes_in_object_order_only_when_stated(train_samples):
    for s in train_samples:
        sizes = [w for w in words(s.caption) if w in ("small", "large")]
        expected = [o.size for o in s.scene.objects] if "size" in s.scene.stated else []
        assert sizes == expected, s.caption


def test_caption_states_position_or_relation_of_the_ground_truth(train_samples):
    for s in train_samples:
        if s.scene.background.kind != "plain":
            continue  # a gradient's "at the top" / "left to right" would muddle the word check
        said = set(words(s.caption))
        if s.scene.relation is None:
            expected = POSITION_WORDS[s.scene.objects[0].position]
            others = set().union(*POSITION_WORDS.values()) - expected
            assert said & expected and not said & others, s.caption
        else:
            expected = RELATION_WORDS[s.scene.relation]
            others = set().union(*RELATION_WORDS.values()) - expected
            assert said & expected and not said & others, s.caption


def test_object_centre_pixel_has_the_object_colour(train_samples):
    for s in train_samples:
        for obj in s.scene.objects:
            x, y = (int(c * 64) for c in obj.centre)
            np.testing.assert_allclose(s.image[y, x], COLOURS[obj.colour], atol=1)


def test_image_corners_have_the_background_end_colours(train_samples):
    for s in train_samples:
        np.testing.assert_allclose(s.image[0, 0], COLOURS[s.scene.background.colours[0]], atol=1)
        np.testing.assert_allclose(s.image[-1, -1], COLOURS[s.scene.background.colours[-1]], atol=1)


def test_objects_contrast_with_the_background_under_them(train_samples):
    for s in train_samples:
        backdrop = background_pixels(s.scene.background, 64)
        for obj in s.scene.objects:
            x0, y0, x1, y1 = (int(v * 64) for v in obj.bbox())
            under = backdrop[y0:y1, x0:x1].reshape(-1, 3)
            assert np.linalg.norm(under - COLOURS[obj.colour], axis=1).min() > 100, s.caption


def test_named_position_and_relation_match_the_layout(train_samples):
    for s in train_samples:
        objects = s.scene.objects
        if s.scene.relation is None:
            x, y = objects[0].centre
            region = {
                "left": x < 0.4,
                "right": x > 0.6,
                "top": y < 0.4,
                "bottom": y > 0.6,
                "centre": abs(x - 0.5) < 0.1 and abs(y - 0.5) < 0.1,
            }
            assert region[objects[0].position], s.caption
        else:
            (ax, ay), (bx, by) = objects[0].centre, objects[1].centre
            holds = {"above": ay < by, "below": ay > by, "left of": ax < bx, "right of": ax > bx}
            assert holds[s.scene.relation], s.caption


def test_objects_stay_inside_the_image_and_apart(train_samples):
    for s in train_samples:
        boxes = [o.bbox() for o in s.scene.objects]
        assert all(0.0 < v < 1.0 for box in boxes for v in box)
        if len(boxes) == 2:
            (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = boxes
            assert ax1 < bx0 or bx1 < ax0 or ay1 < by0 or by1 < ay0, s.caption


def test_training_split_never_shows_heldout_combinations():
    generator = SceneGenerator("train", seed=0)
    for i in range(3000):
        scene = generator.scene(i)
        for obj in scene.objects:
            assert (obj.shape, obj.colour) not in HELDOUT_SHAPE_COLOURS, scene.caption
        if scene.relation is not None:
            triple = (scene.objects[0].shape, scene.relation, scene.objects[1].shape)
            assert triple not in HELDOUT_RELATIONS, scene.caption


def test_heldout_relations_include_their_mirror_images():
    assert ("triangle", "above", "circle") in HELDOUT_RELATIONS
    assert ("circle", "below", "triangle") in HELDOUT_RELATIONS


def test_every_heldout_scene_shows_a_heldout_combination():
    for scene in heldout_prompts(n=300, seed=0):
        pairs = {(o.shape, o.colour) for o in scene.objects}
        triple = scene.relation and (scene.objects[0].shape, scene.relation, scene.objects[1].shape)
        assert pairs & HELDOUT_SHAPE_COLOURS or triple in HELDOUT_RELATIONS, scene.caption


def test_heldout_prompts_are_a_fixed_set():
    assert heldout_prompts(n=20, seed=0) == heldout_prompts(n=20, seed=0)
    assert heldout_prompts(n=20, seed=0) != heldout_prompts(n=20, seed=1)


def test_heldout_split_differs_from_train_for_the_same_seed_and_index():
    assert SceneGenerator("heldout", 0).scene(0) != SceneGenerator("train", 0).scene(0)


def test_shard_indices_give_rank_r_the_indices_r_plus_multiples_of_world():
    world, workers, per_worker = 3, 2, 10
    for rank in range(world):
        seen = []
        for worker in range(workers):
            stream = shard_indices(rank, world, worker, workers)
            seen += [next(stream) for _ in range(per_worker)]
        assert sorted(seen) == [rank + k * world for k in range(workers * per_worker)]


def test_shard_indices_resume_from_start():
    stream = shard_indices(rank=1, world_size=4, start=5)
    assert [next(stream) for _ in range(3)] == [21, 25, 29]


def test_scene_stream_in_a_dataloader_with_workers_covers_the_rank_indices():
    stream = SceneStream(split="train", seed=0, rank=1, world_size=2)
    loader = torch.utils.data.DataLoader(stream, batch_size=4, num_workers=2)
    batches = [batch for batch, _ in zip(loader, range(4), strict=False)]
    indices = sorted(int(i) for batch in batches for i in batch["index"])
    assert indices == [1 + 2 * k for k in range(16)]
    assert batches[0]["image"].shape == (4, 3, 64, 64) and len(batches[0]["caption"]) == 4


def test_scene_stream_item_matches_the_generator():
    item = next(iter(SceneStream(split="train", seed=5, rank=0, world_size=1)))
    sample = SceneGenerator("train", seed=5)[0]
    assert item["caption"] == sample.caption
    assert torch.equal(item["image"], torch.from_numpy(sample.model_input()))


def test_scene_dataset_is_finite_and_indexable():
    dataset = SceneDataset(split="heldout", seed=0, length=5)
    assert len(dataset) == 5
    assert dataset[4]["caption"] == SceneGenerator("heldout", 0)[4].caption
    with pytest.raises(IndexError):
        dataset[5]


@pytest.mark.parametrize(
    "kwargs", [{"split": "test"}, {"seed": -1}, {"size": 100}], ids=["split", "seed", "size"]
)
def test_bad_generator_arguments_raise_input_error_naming_them(kwargs):
    (name,) = kwargs
    with pytest.raises(InputError, match=name):
        SceneGenerator(**kwargs)


def test_gradient_background_runs_between_its_named_ends():
    ramp = background_pixels(Background("horizontal", ("red", "blue")), 64)
    np.testing.assert_allclose(ramp[10, 0], COLOURS["red"])
    np.testing.assert_allclose(ramp[10, -1], COLOURS["blue"])
    np.testing.assert_allclose(ramp[0], ramp[-1])

"""Quality regression for the shipped demo model: does it still follow its prompts?

On a fixed held-out prompt set (captions whose combinations training never showed), the shipped
8-step student at its own default steps and guidance must keep the adherence measured when it
was shipped (docs/training.md, "Evaluation"), less a margin for the analyser's noise on 100
pictures. Reference: the scene analyser reading each picture against its caption; and, so that
the test cannot pass on a model that ignores its text, the same pictures checked against each
other's captions, which must score clearly lower.
"""

import pytest
import torch

from sfmobile.train.evaluation.evaluate import generate, score_adherence
from sfmobile.train.scenes.generator import heldout_prompts
from sfmobile.weights import load_model

PROMPTS = 100
# Measured when shipped (100 prompts, heldout_prompts seed 0, noise seeds 0..99, 8 steps,
# guidance 4.5, the model's defaults); see docs/training.md. Only the attributes the model
# follows well above chance are held: its shapes (27%) are no better than against shifted
# captions (29%), and it finds the right objects, sizes, positions and relations rarely
# (5%, 4%, 9%, 0%).
MEASURED = {"background": 0.97, "colour": 0.53}
MARGIN = 0.08  # about two standard errors of a rate near 0.5 on 100 pictures


@pytest.fixture(scope="module")
def pictures():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: no oversubscription whatever else runs
    try:
        model = load_model(None)
        scenes = heldout_prompts(PROMPTS, seed=0)
        images, _ = generate(
            model,
            [scene.caption for scene in scenes],
            list(range(PROMPTS)),
            model.scheduler.default_steps,
            model.scheduler.default_guidance,
            image_size=64,
        )
    finally:
        torch.set_num_threads(threads)
    return images, scenes


@pytest.mark.parametrize("attribute", sorted(MEASURED))
def test_shipped_demo_keeps_its_measured_adherence(pictures, attribute):
    images, scenes = pictures
    rate = score_adherence(images, scenes).attributes[attribute]
    assert rate >= MEASURED[attribute] - MARGIN, f"{attribute}: {rate:.2f}"


def test_shipped_demo_pictures_match_their_own_captions_better_than_others(pictures):
    images, scenes = pictures
    shifted = scenes[1:] + scenes[:1]  # every picture against the next prompt's caption
    own, other = score_adherence(images, scenes), score_adherence(images, shifted)
    # measured when shipped: background 97% vs 1%, colour 53% vs 6%
    assert own.attributes["background"] >= other.attributes["background"] + 0.5
    assert own.attributes["colour"] >= other.attributes["colour"] + 0.3

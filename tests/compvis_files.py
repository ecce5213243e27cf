"""Our models' tensors as a CompVis single file names them, for tests that write such files."""

import torch

from sfmobile.weights.components import COMPONENTS


def compvis_state(model) -> dict[str, torch.Tensor]:
    """The model's tensors under CompVis names (inverting our maps), plus non-weight buffers a
    real CompVis file carries."""
    state = {}
    for component in COMPONENTS:
        ours_to_theirs = {
            ours: theirs
            for theirs, ours in component.compvis_key_map(component.config_of(model.config)).items()
        }
        for key, tensor in getattr(model, component.name).state_dict().items():
            state[ours_to_theirs[key]] = tensor.clone()
    state["alphas_cumprod"] = torch.linspace(1, 0, 1000)
    return state

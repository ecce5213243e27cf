"""Reading tensors from disk without ever running code from the file.

safetensors are preferred (read into memory of their own, safetensors_file.py); a
`.ckpt`/`.pt`/`.bin` is opened only through `torch.load(weights_only=True)`, which refuses any
pickle that would construct arbitrary objects.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError

from sfmobile.errors import CheckpointError, ConfigError
from sfmobile.weights.safetensors_file import load_owned

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors or (weights-only) pickle file, keyed by name."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        try:
            return load_owned(path)
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from error
    if path.suffix in PICKLE_SUFFIXES:
        return _read_pickle(path)
    raise CheckpointError(
        f"{path}: unknown checkpoint type {path.suffix!r}; expected .safetensors or "
        + ", ".join(PICKLE_SUFFIXES)
    )


# How a torch.save file starts: a zip archive (torch >= 1.6) or a pickle (protocol >= 2).
PICKLE_MAGICS = (b"PK\x03\x04", b"\x80")
# Lines of torch's refusal that advise unsafe loading or point elsewhere: never repeated.
ADVICE_WORDS = ("weights_only", "trusted source", "documentation", "file an issue")


def _refusal_detail(error: BaseException) -> str:
    """What torch found in a refused pickle (e.g. `GLOBAL posix.system`), without its advice to
    rerun with weights_only=False."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    facts = [line for line in lines if not any(word in line for word in ADVICE_WORDS)]
    detail = "; ".join(facts) or type(error).__name__
    return detail.removeprefix("WeightsUnpickler error: ")


def _read_pickle(path: Path) -> dict[str, torch.Tensor]:
    with open(path, "rb") as stream:
        head = stream.read(4)
    if not head.startswith(PICKLE_MAGICS):
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint (neither a torch zip archive nor a pickle)"
        )
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it then refuses
            warnings.simplefilter("ignore")
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError...
        raise CheckpointError(
            f"{path}: refused: sfmobile reads only plain tensors from a pickle and never runs "
            f"code from one ({_refusal_detail(error)})"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(data).__name__}")
    tensors = {key: value for key, value in data.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: holds no tensors")
    return tensors


# What parsing a config's values and building modules from them raises on nonsense values.
CONFIG_VALUE_ERRORS = (
    KeyError,
    TypeError,
    ValueError,
    AttributeError,
    IndexError,
    ZeroDivisionError,
    OverflowError,
    RuntimeError,
)


@contextmanager
def config_errors(source: Path) -> Iterator[None]:
    """Turn whatever a nonsense config value makes the parsing or module building raise into a
    ConfigError naming the config file."""
    try:
        yield
    except ConfigError as error:
        if str(source) in str(error):
            raise
        raise ConfigError(f"{source}: {error}") from None
    except CONFIG_VALUE_ERRORS as error:
        detail = (str(error).strip().splitlines() or [""])[0]
        raise ConfigError(
            f"{source}: not a usable config ({type(error).__name__}: {detail})"
        ) from None


def read_json(path: Path) -> dict:
    """A JSON config file, with an error that names it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise CheckpointError(f"{path}: missing config file") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data

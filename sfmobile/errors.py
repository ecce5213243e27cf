"""Exception types, one per layer, so callers (and the CLI) can tell user errors from bugs.

Every message names the offending file, tensor, key or argument.
"""


class SfmobileError(Exception):
    """Base of every error sfmobile raises on purpose (the CLI prints these as one line, exit 2)."""


class ConfigError(SfmobileError):
    """A model configuration (preset, dataclass, diffusers config) is invalid or unsupported."""


class CheckpointError(SfmobileError):
    """A checkpoint file is missing, unreadable, unsafe, or does not match the architecture."""


class TokenizerError(SfmobileError):
    """Tokenizer files are missing or malformed, or the prompt is not text."""


class InputError(SfmobileError):
    """A user-supplied argument (shape, step count, file) is not what was expected."""


class BundleError(SfmobileError):
    """An exported bundle is incomplete, tampered with, or does not match its manifest."""


class DeviceError(SfmobileError):
    """A phone driven over adb is missing, unauthorized, ambiguous, disconnected, out of storage,
    lacks the app, or the app refused the work (benchmarks/phone)."""


class GenerationError(SfmobileError):
    """A model produced values that are not finite (NaN or inf): no image is written."""

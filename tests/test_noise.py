"""Portable Gaussian noise (docs/noise.md): Philox against Random123's published answers, the
float path against an independent scalar implementation using Python's `math` (glibc), the
distribution against the standard normal CDF, and the committed golden vectors against a fresh
regeneration."""

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sfmobile.cli import app
from sfmobile.cli.app import _register_commands
from sfmobile.errors import InputError
from sfmobile.noise import gaussian_noise, philox4x32_10, seed_to_key

GOLDEN_DIR = Path(__file__).parent / "golden" / "noise"
MASK32 = 0xFFFFFFFF

# Random123 kat_vectors, philox4x32_10 lines: counter, key, expected output.
RANDOM123_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK32,) * 4, (MASK32,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


def scalar_philox(counter: tuple[int, ...], key: tuple[int, int]) -> tuple[int, ...]:
    """Philox4x32-10 one block at a time with Python ints: the paper's round, written plainly."""
    x0, x1, x2, x3 = counter
    k0, k1 = key
    for round_index in range(10):
        if round_index:
            k0, k1 = (k0 + 0x9E3779B9) & MASK32, (k1 + 0xBB67AE85) & MASK32
        p0, p1 = 0xD2511F53 * x0, 0xCD9E8D57 * x2
        x0, x1, x2, x3 = (p1 >> 32) ^ x1 ^ k0, p1 & MASK32, (p0 >> 32) ^ x3 ^ k1, p0 & MASK32
    return x0, x1, x2, x3


def scalar_noise(seed: int, count: int) -> np.ndarray:
    """The spec's float path element by element with `math` (libm), rounded once to float32."""
    key = (seed & MASK32, seed >> 32)
    values = []
    for block in range((count + 3) // 4):
        words = scalar_philox((block & MASK32, block >> 32, 0, 0), key)
        u0, u1, u2, u3 = ((w + 0.5) * 2.0**-32 for w in words)
        r, t = math.sqrt(-2.0 * math.log(u0)), 2.0 * math.pi * u1
        r2, t2 = math.sqrt(-2.0 * math.log(u2)), 2.0 * math.pi * u3
        values += [r * math.cos(t), r * math.sin(t), r2 * math.cos(t2), r2 * math.sin(t2)]
    return np.array(values[:count], dtype=np.float64).astype(np.float32)


def run_cli(*args: str):
    _register_commands()
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize(("counter", "key", "expected"), RANDOM123_KAT)
def test_philox_matches_random123_known_answers(counter, key, expected):
    out = philox4x32_10(np.array([counter], dtype=np.uint32), key)
    assert out.dtype == np.uint32
    assert tuple(int(w) for w in out[0]) == expected


def test_philox_processes_many_counters_independently():
    counters = np.array([kat[0] for kat in RANDOM123_KAT[1:]], dtype=np.uint32)
    out = philox4x32_10(counters, RANDOM123_KAT[1][1])
    assert tuple(int(w) for w in out[0]) == RANDOM123_KAT[1][2]
    assert tuple(int(w) for w in out[1]) == scalar_philox(RANDOM123_KAT[2][0], RANDOM123_KAT[1][1])


def test_seed_key_is_low_then_high_32_bits():
    assert seed_to_key(0x0123456789ABCDEF) == (0x89ABCDEF, 0x01234567)


@pytest.mark.parametrize(
    ("seed", "shape"), [(0, (1, 4, 8, 8)), (2**64 - 1, (2, 3, 5)), (0x1_0000_0007, (9,))]
)
def test_noise_matches_scalar_reference(seed, shape):
    expected = scalar_noise(seed, math.prod(shape)).reshape(shape)
    np.testing.assert_array_equal(gaussian_noise(seed, shape), expected)


def test_noise_float32_is_identical_to_libm_reference_on_full_latent():
    """numpy's log/sin/cos differ from glibc's in the last double bit; float32 hides it."""
    np.testing.assert_array_equal(
        gaussian_noise(42, (1, 4, 64, 64)).reshape(-1), scalar_noise(42, 4 * 64 * 64)
    )


def test_noise_is_float32_of_requested_shape():
    noise = gaussian_noise(3, (2, 4, 6, 5))
    assert noise.dtype == np.float32
    assert noise.shape == (2, 4, 6, 5)


def test_noise_is_standard_normal():
    sample = np.sort(gaussian_noise(7, (1 << 20,)).astype(np.float64))
    n = sample.size
    assert abs(sample.mean()) < 5 / math.sqrt(n)
    assert abs(sample.std() - 1.0) < 5 / math.sqrt(2 * n)
    cdf = 0.5 * (1.0 + np.vectorize(math.erf)(sample / math.sqrt(2.0)))
    ks = max((np.arange(1, n + 1) / n - cdf).max(), (cdf - np.arange(n) / n).max())
    assert ks < 1.95 / math.sqrt(n)  # Kolmogorov-Smirnov, 0.1 % level


def test_noise_pairs_from_one_block_are_uncorrelated():
    z = gaussian_noise(11, (1 << 18, 4)).astype(np.float64)
    correlation = np.corrcoef(z.T)
    off_diagonal = correlation[~np.eye(4, dtype=bool)]
    assert np.abs(off_diagonal).max() < 5 / math.sqrt(z.shape[0])


def test_smaller_shape_is_prefix_of_larger():
    small = gaussian_noise(5, (1, 4, 8, 8)).reshape(-1)
    large = gaussian_noise(5, (1, 4, 64, 64)).reshape(-1)
    odd = gaussian_noise(5, (3, 7)).reshape(-1)
    np.testing.assert_array_equal(large[: small.size], small)
    np.testing.assert_array_equal(large[: odd.size], odd)


def test_same_seed_repeats_and_each_seed_word_changes_output():
    base = gaussian_noise(1, (64,))
    np.testing.assert_array_equal(gaussian_noise(1, (64,)), base)
    for other_seed in (2, 1 + 2**32):  # low word, high word
        assert not np.array_equal(gaussian_noise(other_seed, (64,)), base)


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "3", True])
def test_bad_seed_raises_input_error_naming_seed(seed):
    with pytest.raises(InputError, match="seed"):
        gaussian_noise(seed, (4,))


@pytest.mark.parametrize("shape", [(), (0, 4), (2, -1), (2.0,), 4])
def test_bad_shape_raises_input_error_naming_shape(shape):
    with pytest.raises(InputError, match="shape"):
        gaussian_noise(0, shape)


def test_golden_index_describes_its_files():
    index = json.loads((GOLDEN_DIR / "index.json").read_text())
    assert index["dtype"] == "float32" and index["byte_order"] == "little"
    for case in index["cases"]:
        seed, shape = int(case["seed"]), tuple(case["shape"])
        data = (GOLDEN_DIR / case["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == case["sha256"]
        values = np.frombuffer(data, dtype="<f4")
        np.testing.assert_array_equal(values, scalar_noise(seed, math.prod(shape)))
        key = (seed & MASK32, seed >> 32)
        assert case["block0_words"] == [f"{w:08x}" for w in scalar_philox((0, 0, 0, 0), key)]


def test_cli_noise_writes_npy_of_gaussian_noise(tmp_path):
    out = tmp_path / "noise.npy"
    result = run_cli("noise", "--seed", "42", "--shape", "1,4,8,8", "--out", str(out))
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(out), gaussian_noise(42, (1, 4, 8, 8)))


@pytest.mark.parametrize("shape", ["1,x,3", "", "0,4", "1,,4", "-1,4"])
def test_cli_noise_bad_shape_is_one_line_error_exit_2(tmp_path, shape):
    result = run_cli("noise", "--seed", "1", "--shape", shape, "--out", str(tmp_path / "n.npy"))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "--shape" in result.stderr


def test_cli_noise_negative_seed_is_error_exit_2(tmp_path):
    result = run_cli("noise", "--seed", "-1", "--out", str(tmp_path / "n.npy"))
    assert result.exit_code == 2
    assert "seed" in result.stderr

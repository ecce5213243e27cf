"""`android_app/core/sfcore` (the Kotlin core on the JVM) against `sfmobile` on inputs neither was
tuned to: random prompts (Unicode, odd whitespace, special tokens, long ones), random seeds and
shapes, and bad input. Stdout must be byte for byte the same, .npy files identical, and errors
one line with exit code 2 on both sides. Skipped only where there is no java."""

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sfmobile.tokenizer import ClipTokenizer

SFCORE = Path(__file__).resolve().parents[1] / "android_app" / "core" / "sfcore"
SFMOBILE = [sys.executable, "-c", "import sys; from sfmobile.cli import main; main()"]

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="no java on this machine")

# Characters whose Unicode category is the same in Python 3.11 (Unicode 14) and Java 17
# (Unicode 13): every pool is old, assigned text.
POOLS = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789½²³٣Ⅻ０９",
    "!?.,;:'\"()[]{}<>|/\\@#$%^&*-_=+~`",
    " \t\n\r\x0b\x0c\xa0\u2003\u3000\u2028\x1c\x1f\u200b\x85",
    "éèêëàâäïîôöùûüçñÅåßØøæœÉÈİıﬁﬀ",
    "ΣσςΑαΒβΩωΟΦΙ",
    "МоскваПриветЖЁё",
    "東京タワーひらがなカタカナ漢字",
    "\u0301\u0308\u0327",
    "🐱🚀❤️👍🏽😀🎉",
)
WORDS = ("<|startoftext|>", "<|endoftext|>", "<|EndOfText|>", "'s", "'ll", "don't", "&amp;")


def random_prompt(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 12)):
        if rng.random() < 0.1:
            parts.append(rng.choice(WORDS))
        else:
            pool = rng.choice(POOLS)
            parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 8))))
        parts.append(rng.choice(["", " ", "  ", "\t"]))
    prompt = "".join(parts)
    return "x" + prompt if prompt.startswith("-") else prompt


def run(command: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*command, *args], capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def sfcore() -> list[str]:
    """The launcher, built once (the first call compiles the core when needed)."""
    built = run([str(SFCORE)], "tokenize", "warm up")
    assert built.returncode == 0, built.stderr.decode()
    return [str(SFCORE)]


def test_tokenize_prints_the_same_bytes_for_random_prompts(sfcore):
    rng = random.Random(20261201)
    prompts = [random_prompt(rng) for _ in range(300)]
    prompts += [" ".join(random_prompt(rng) for _ in range(12)) for _ in range(5)]  # > 75 tokens
    python, kotlin = run(SFMOBILE, "tokenize", *prompts), run(sfcore, "tokenize", *prompts)
    assert python.returncode == kotlin.returncode == 0, kotlin.stderr.decode()
    assert len(python.stdout.splitlines()) == len(prompts)
    for index, (ours, theirs) in enumerate(
        zip(kotlin.stdout.splitlines(), python.stdout.splitlines(), strict=True)
    ):
        assert ours == theirs, repr(prompts[index])


def test_tokenize_reads_a_tokenizer_folder_the_same_way(sfcore, tmp_path):
    ClipTokenizer.default().save(tmp_path)
    (tmp_path / "special_tokens_map.json").write_text(json.dumps({"pad_token": "!"}))
    prompts = ["a photo of a cat", "Straße ΣΟΦΙΑ\u3000東京 🐱"]
    python = run(SFMOBILE, "tokenize", "--tokenizer", str(tmp_path), *prompts)
    kotlin = run(sfcore, "tokenize", "--tokenizer", str(tmp_path), *prompts)
    assert python.returncode == kotlin.returncode == 0
    assert kotlin.stdout == python.stdout
    assert json.loads(kotlin.stdout.splitlines()[0])[-1] == 0  # SD-2 pad "!" is id 0


SEEDS = [0, 2**32, 2**63, 2**64 - 1]  # then random ones


@pytest.mark.parametrize("case", range(6))
def test_noise_writes_the_same_npy_for_random_seeds_and_shapes(sfcore, tmp_path, case):
    rng = random.Random(case)
    seed = SEEDS[case] if case < len(SEEDS) else rng.randrange(2**64)
    shape = ",".join(str(rng.randint(1, 9)) for _ in range(rng.randint(1, 4)))
    python = run(
        SFMOBILE, "noise", "--seed", str(seed), "--shape", shape, "--out", str(tmp_path / "p.npy")
    )
    kotlin = run(
        sfcore, "noise", "--seed", str(seed), "--shape", shape, "--out", str(tmp_path / "k.npy")
    )
    assert python.returncode == kotlin.returncode == 0, kotlin.stderr.decode()
    assert kotlin.stdout.replace(b"k.npy", b"p.npy") == python.stdout
    ours, theirs = np.load(tmp_path / "k.npy"), np.load(tmp_path / "p.npy")
    assert ours.dtype == theirs.dtype == np.float32 and ours.shape == theirs.shape
    assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))
    assert (tmp_path / "k.npy").read_bytes() == (tmp_path / "p.npy").read_bytes()


BAD_INPUT = [
    (["noise", "--seed", "-1", "--shape", "1,4"], "seed"),
    (["noise", "--seed", str(2**64), "--shape", "1,4"], "seed"),
    (["noise", "--seed", "3", "--shape", "2,0"], "--shape"),
    (["noise", "--seed", "3", "--shape", "a,b"], "--shape"),
    (["noise", "--seed", "3", "--shape", "1,4", "--out", "x.txt"], "--out"),
    (["noise", "--seed", "3", "--shape", "1,4", "--out", "/no/such/dir/x.npy"], "--out"),
    (["tokenize", "--tokenizer", "/no/such/tokenizer", "a cat"], "tokenizer folder"),
]


@pytest.mark.parametrize(("args", "names"), BAD_INPUT, ids=lambda v: str(v)[:40])
def test_bad_input_is_one_line_and_exit_2_on_both_sides(sfcore, tmp_path, args, names):
    if args[0] == "noise" and "--out" not in args:
        args = [*args, "--out", str(tmp_path / "n.npy")]
    python, kotlin = run(SFMOBILE, *args), run(sfcore, *args)
    assert python.returncode == kotlin.returncode == 2
    for result in (python, kotlin):
        lines = result.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and names in lines[0], lines
    assert kotlin.stderr == python.stderr
    assert not (tmp_path / "n.npy").exists()

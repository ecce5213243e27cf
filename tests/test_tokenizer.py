"""The CLIP tokenizer against transformers' CLIPTokenizer, which diffusers' SD pipelines use.

The reference reads the vocab.json / merges.txt our tokenizer writes, with SD-1.x settings: pad
token `<|endoftext|>`, 77 positions, padding to max_length with truncation.
"""

import json
import logging
import random
import unicodedata
from pathlib import Path

import pytest
from transformers import CLIPTokenizer
from typer.testing import CliRunner

from sfmobile.cli import app
from sfmobile.cli.app import _register_commands
from sfmobile.errors import TokenizerError
from sfmobile.tokenizer import WHITESPACE, ClipTokenizer

CORPUS = [
    "a photo of a cat",
    "A Photo Of A CAT, mIxEd CaSe",
    "Hello, world! How's it going?? (great) [yes] {no} <tag> a/b\\c @#$%^&*~`| ... --",
    "1234567890 3.14159 1,000,000 4k 8K 2024-01-01 v1.5 ½ ² Ⅻ",
    "it's don't they're we've i'm you'll he'd IT'S DON'T 'quoted' rock'n'roll ''s o'clock '",
    "it’s a “curly” ‘quote’",
    "café naïve résumé über straße mañana Ångström ÉCOLE",
    "cafe\u0301 n\u0303 A\u030a (combining marks, composed by NFC)",
    "Καλημέρα κόσμε, ΟΔΟΣ ΣΟΦΙΑΣ",
    "Привет, мир! ЁЖИК в тумане",
    "東京タワーの夜景 北京 서울의 밤",
    "مرحبا بالعالم ١٢٣",
    "नमस्ते दुनिया",
    "a cat 😺 with 👍🏽 and 👩‍👩‍👧 under 🇫🇷",
    "  lots   of\t\ttabs\nand\r\nnewlines \u00a0nbsp\u3000ideographic\u2028line  ",
    "",
    "   \t\n ",
    "Tom &amp; Jerry &lt;b&gt;bold&lt;/b&gt; &#39;quote&#39; &nbsp; &quot;",
    "İstanbul \u212a ﬁne ǅemal ẞ",
    "ctrl \x00\x1c\x1f\x7f\u200b\u180e chars",
    "a<|endoftext|>b <|startoftext|> <|ENDOFTEXT|>!! x<|StartOfText|> !!<|endoftext|>",
    "masterpiece, best quality, ultra-detailed, 8k, " * 20,
    "an astronaut riding a horse on mars " * 15,
    "supercalifragilisticexpialidocious" * 12,
]


@pytest.fixture(scope="module")
def clip() -> ClipTokenizer:
    return ClipTokenizer.default()


@pytest.fixture(scope="module")
def saved_folder(clip: ClipTokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tokenizer")
    clip.save(folder)
    return folder


@pytest.fixture(scope="module")
def reference(saved_folder: Path) -> CLIPTokenizer:
    return CLIPTokenizer(
        vocab=str(saved_folder / "vocab.json"),
        merges=str(saved_folder / "merges.txt"),
        pad_token="<|endoftext|>",
        model_max_length=77,
    )


def reference_ids(reference: CLIPTokenizer, texts: list[str]) -> list[list[int]]:
    encoded = reference(texts, padding="max_length", truncation=True, max_length=77)
    return encoded.input_ids


def test_vocabulary_has_49408_tokens_with_clip_special_ids(clip: ClipTokenizer) -> None:
    assert clip.vocab_size == 49408
    assert (clip.start_id, clip.end_id, clip.pad_id) == (49406, 49407, 49407)


def test_known_prompt_gives_the_ids_published_for_clip(clip: ClipTokenizer) -> None:
    # The ids SD-1.x's tokenizer gives "a photo of a cat" (as in the diffusers/transformers docs).
    assert clip.encode("a photo of a cat")[:8] == [49406, 320, 1125, 539, 320, 2368, 49407, 49407]


@pytest.mark.parametrize("text", CORPUS)
def test_ids_match_transformers_clip_tokenizer(
    clip: ClipTokenizer, reference: CLIPTokenizer, text: str
) -> None:
    assert clip.encode(text) == reference_ids(reference, [text])[0]


def test_ids_match_transformers_on_random_text(
    clip: ClipTokenizer, reference: CLIPTokenizer
) -> None:
    pool = [*"abcXYZ 'sStTrRvVmMlLdD!?.,;:-_<>|&#\t\n0123456789éüñΣσΓжЖ中語한م😀👍🏽\u0301\u0338"]
    pool += ["<|endoftext|>", "<|startoftext|>", "<|ENDOFTEXT|>", "&amp;", "it's", "'LL"]
    rng = random.Random(0)
    texts = ["".join(rng.choices(pool, k=rng.randint(0, 60))) for _ in range(2000)]
    assert clip.encode_batch(texts) == reference_ids(reference, texts)


def test_ids_match_transformers_across_unicode(
    clip: ClipTokenizer, reference: CLIPTokenizer
) -> None:
    # Every 61st code point this Python's Unicode tables assign, among letters, digits, spaces.
    chars = [chr(c) for c in range(0, 0x110000, 61) if unicodedata.category(chr(c)) != "Cn"]
    chars = [char for char in chars if unicodedata.category(char) != "Cs"]
    texts = [f"x{c}x {c}{c}1{c}'s{c}A{c.upper()}" for c in chars]
    assert clip.encode_batch(texts) == reference_ids(reference, texts)


@pytest.mark.parametrize("char", sorted(WHITESPACE | {"\x1c", "\x1d", "\x1e", "\x1f", "\u200b"}))
def test_word_separators_match_transformers(
    clip: ClipTokenizer, reference: CLIPTokenizer, char: str
) -> None:
    text = f"cat{char}dog{char}{char}!"
    assert clip.encode(text) == reference_ids(reference, [text])[0]


def test_saved_folder_gives_same_ids_in_transformers(
    clip: ClipTokenizer, saved_folder: Path
) -> None:
    loaded = CLIPTokenizer.from_pretrained(saved_folder)
    assert loaded.pad_token == "<|endoftext|>"
    assert clip.encode_batch(CORPUS) == reference_ids(loaded, CORPUS)


def test_truncated_prompt_keeps_end_token_and_logs_dropped_count(
    clip: ClipTokenizer, reference: CLIPTokenizer, caplog: pytest.LogCaptureFixture
) -> None:
    text = "an astronaut riding a horse on mars " * 15
    untruncated = reference(text).input_ids  # start + tokens + end
    dropped = len(untruncated) - 77
    with caplog.at_level(logging.WARNING, logger="sfmobile.tokenizer"):
        ids = clip.encode(text)
    assert ids == reference_ids(reference, [text])[0]
    assert ids[-1] == 49407
    ours = [record.getMessage() for record in caplog.records if record.name == "sfmobile.tokenizer"]
    assert len(ours) == 1
    assert f"dropped the last {dropped} tokens" in ours[0]


def test_prompt_of_exactly_75_tokens_is_kept_whole_without_warning(
    clip: ClipTokenizer, reference: CLIPTokenizer, caplog: pytest.LogCaptureFixture
) -> None:
    text = "cat " * 75
    with caplog.at_level(logging.WARNING, logger="sfmobile.tokenizer"):
        ids = clip.encode(text)
    assert ids == reference(text).input_ids
    assert [record for record in caplog.records if record.name == "sfmobile.tokenizer"] == []


def test_from_folder_reads_diffusers_sd15_layout(
    clip: ClipTokenizer, saved_folder: Path, tmp_path: Path
) -> None:
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / name).write_bytes((saved_folder / name).read_bytes())
    added = {"__type": "AddedToken", "content": "<|endoftext|>", "lstrip": False}
    config = {"eos_token": added, "model_max_length": 77, "pad_token": "<|endoftext|>"}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    (tmp_path / "special_tokens_map.json").write_text(json.dumps({"pad_token": added}))
    loaded = ClipTokenizer.from_folder(tmp_path)
    assert loaded.encode_batch(CORPUS) == clip.encode_batch(CORPUS)


def test_from_folder_takes_pad_token_from_folder_like_sd2(
    saved_folder: Path, tmp_path: Path
) -> None:
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / name).write_bytes((saved_folder / name).read_bytes())
    (tmp_path / "special_tokens_map.json").write_text(json.dumps({"pad_token": "!"}))
    sd2 = CLIPTokenizer.from_pretrained(tmp_path)
    assert sd2.pad_token == "!"
    ids = ClipTokenizer.from_folder(tmp_path).encode("a photo of a cat")
    assert ids == reference_ids(sd2, ["a photo of a cat"])[0]


def test_from_folder_without_config_files_pads_with_end_token(
    saved_folder: Path, tmp_path: Path
) -> None:
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / name).write_bytes((saved_folder / name).read_bytes())
    assert ClipTokenizer.from_folder(tmp_path).pad_id == 49407


@pytest.mark.parametrize("prompt", [None, 42, b"a cat", ["a cat"]])
def test_non_text_prompt_is_rejected_naming_prompt(clip: ClipTokenizer, prompt: object) -> None:
    with pytest.raises(TokenizerError, match="prompt must be a str"):
        clip.encode(prompt)  # type: ignore[arg-type]


def test_lone_surrogate_is_rejected_with_its_index(clip: ClipTokenizer) -> None:
    with pytest.raises(TokenizerError, match="U\\+D800 at index 1"):
        clip.encode("a\ud800b")


def test_batch_that_is_a_string_is_rejected_naming_prompts(clip: ClipTokenizer) -> None:
    with pytest.raises(TokenizerError, match="prompts must be a list"):
        clip.encode_batch("a cat")  # type: ignore[arg-type]


def test_batch_with_non_text_item_names_its_index(clip: ClipTokenizer) -> None:
    with pytest.raises(TokenizerError, match=r"prompts\[1\] must be a str"):
        clip.encode_batch(["a cat", 3])  # type: ignore[list-item]


def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="nowhere"):
        ClipTokenizer.from_folder(tmp_path / "nowhere")


@pytest.mark.parametrize("name", ["vocab.json", "merges.txt"])
def test_missing_tokenizer_file_is_named(saved_folder: Path, tmp_path: Path, name: str) -> None:
    for present in {"vocab.json", "merges.txt"} - {name}:
        (tmp_path / present).write_bytes((saved_folder / present).read_bytes())
    with pytest.raises(TokenizerError, match=f"{name} is missing"):
        ClipTokenizer.from_folder(tmp_path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("vocab.json", "{not json", "vocab.json is not readable JSON"),
        ("vocab.json", '["a", "b"]', "vocab.json must map tokens"),
        ("vocab.json", '{"a": "zero"}', "vocab.json must map tokens"),
        ("merges.txt", "#version: 0.2\ni n\nt h e\n", "merges.txt line 3"),
        ("special_tokens_map.json", "{oops", "special_tokens_map.json is not a readable"),
        ("special_tokens_map.json", '{"pad_token": 7}', "special_tokens_map.json has a pad"),
    ],
)
def test_corrupt_tokenizer_file_is_named(
    saved_folder: Path, tmp_path: Path, name: str, content: str, message: str
) -> None:
    for present in ("vocab.json", "merges.txt"):
        (tmp_path / present).write_bytes((saved_folder / present).read_bytes())
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(TokenizerError, match=message):
        ClipTokenizer.from_folder(tmp_path)


def test_vocabulary_missing_a_merge_result_is_rejected(saved_folder: Path, tmp_path: Path) -> None:
    vocab = json.loads((saved_folder / "vocab.json").read_text(encoding="utf-8"))
    del vocab["in"]  # the result of the first merge, `i n`
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_bytes((saved_folder / "merges.txt").read_bytes())
    with pytest.raises(TokenizerError, match=r"lacks 1 needed tokens, e.g. \['in'\]"):
        ClipTokenizer.from_folder(tmp_path)


def run_cli(*args: str) -> tuple[int, str, str]:
    _register_commands()
    result = CliRunner().invoke(app, ["tokenize", *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_prints_one_json_array_per_prompt(reference: CLIPTokenizer) -> None:
    prompts = ["a photo of a cat", "Привет, мир! 😺", ""]
    code, out, _ = run_cli(*prompts)
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == reference_ids(reference, prompts)


def test_cli_reads_tokenizer_folder(saved_folder: Path, tmp_path: Path) -> None:
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / name).write_bytes((saved_folder / name).read_bytes())
    (tmp_path / "special_tokens_map.json").write_text(json.dumps({"pad_token": "!"}))
    code, out, _ = run_cli("--tokenizer", str(tmp_path), "a cat")
    sd2 = CLIPTokenizer.from_pretrained(tmp_path)
    assert code == 0
    assert json.loads(out) == reference_ids(sd2, ["a cat"])[0]


def test_cli_bad_tokenizer_folder_exits_2_with_one_line(tmp_path: Path) -> None:
    code, out, err = run_cli("--tokenizer", str(tmp_path), "a cat")
    assert code == 2
    assert out == ""
    assert err.strip().splitlines() == [
        f"error: tokenizer file {tmp_path / 'vocab.json'} is missing"
    ]

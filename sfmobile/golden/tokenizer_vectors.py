"""Tokenizer golden vectors: prompts and the 77 ids the shipped CLIP vocabulary gives them."""

import json
from pathlib import Path

from sfmobile.tokenizer import ClipTokenizer

GOLDEN_FORMAT = "sfmobile-tokenizer-golden/1"

# Every path of docs/tokenizer.md: cleaning, contractions, numbers, non-ASCII, emoji, special
# tokens typed in the prompt, whitespace runs, the empty prompt, and truncation.
PROMPTS = (
    "",
    "a photo of a cat",
    "A Photo Of A CAT!!!",
    "a small red circle on the left of a blue background",
    "it's the dog's bone, isn't it? they'll say we'd've",
    "1234567890 3.14159 1,000,000 2nd 21st",
    "café naïve résumé Ångström Straße",
    "ΣΟΦΙΑ σοφία Москва 東京タワー القاهرة",
    "emoji 🐱🚀 and ❤️ and 👍🏽",
    "tabs\tand\nnewlines   and    runs of   spaces",
    "<|startoftext|>typed specials<|endoftext|> and <|EndOfText|>",
    "&amp; &lt;html&gt; don't unescape",
    "İstanbul KELVIN ﬁne ligature",
    " ".join(["a very long prompt"] * 30),
)


def write_tokenizer_vectors(out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = ClipTokenizer.default()
    index = {
        "format": GOLDEN_FORMAT,
        "spec": "docs/tokenizer.md",
        "vocabulary": "the shipped CLIP vocabulary (sfmobile/data/bpe_simple_vocab_16e6.txt.gz)",
        "cases": [{"text": text, "ids": tokenizer.encode(text)} for text in PROMPTS],
    }
    (out_dir / "cases.json").write_text(json.dumps(index, ensure_ascii=False, indent=1) + "\n")
    return index

"""CLIP's byte-level BPE tokenizer: prompt -> 77 token ids for the text encoder.

The reference is transformers' `CLIPTokenizer` (5.x, the `tokenizers`-backed class diffusers
uses); the ids match it except on the rare edges listed in docs/tokenizer.md, the spec this file
and the Kotlin core's `Tokenizer.kt` (android_app/core/) both follow step for step; the
tokenizer golden cases and tests/test_sfcore.py hold the two to the same ids. Hence no `regex`
module: the word pattern is a plain scanner over Unicode categories.

encode(text):
  1. split the raw text on exact occurrences of `<|startoftext|>` / `<|endoftext|>` (these become
     their special ids);
  2. clean every other segment: Unicode NFC, then lower-case code point by code point;
  3. cut it into words with CLIP's pattern (see `split_words`);
  4. map each word's UTF-8 bytes to printable characters and apply the BPE merges;
  5. keep at most 75 ids, wrap them in start/end ids, pad to 77 with the pad id.
"""

import gzip
import itertools
import json
import logging
import unicodedata
from functools import cache
from pathlib import Path

from sfmobile.errors import TokenizerError

logger = logging.getLogger("sfmobile.tokenizer")

MAX_LENGTH = 77  # the CLIP text encoder's position count: start + 75 tokens + end
START_TOKEN = "<|startoftext|>"  # id 49406 in the standard vocabulary
END_TOKEN = "<|endoftext|>"  # id 49407; also the pad token of SD-1.x tokenizer folders
END_OF_WORD = "</w>"  # suffix BPE puts on the last symbol of every word
CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")  # tried in this order

# Unicode's White_Space property (what `\s` means in the reference's regex engine). Not Python's
# str.isspace(), which also counts U+001C..U+001F.
WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

SHIPPED_MERGES = Path(__file__).parent / "data" / "bpe_simple_vocab_16e6.txt.gz"
SHIPPED_MERGE_COUNT = 49152 - 256 - 2  # CLIP keeps the first 48,894 merges of the file
MERGES_HEADER = "#version: 0.2"
BPE_CACHE_LIMIT = 10_000  # words; the cache is emptied when it grows past this


def bytes_to_unicode() -> dict[int, str]:
    """Byte -> printable character: printable Latin-1 bytes map to themselves, the other 68 bytes
    to U+0100.. in byte order. BPE runs on these characters so every byte has a token."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    byte_to_char = {byte: chr(byte) for byte in printable}
    shifted = 0
    for byte in range(256):
        if byte not in byte_to_char:
            byte_to_char[byte] = chr(256 + shifted)
            shifted += 1
    return byte_to_char  # insertion order (printable first) is the vocabulary's order


def clean_text(segment: str) -> str:
    """NFC, then lower-case each code point on its own (so 'Σ' is always 'σ', never final 'ς')."""
    return "".join(char.lower() for char in unicodedata.normalize("NFC", segment))


def is_letter(char: str) -> bool:
    return unicodedata.category(char).startswith("L")  # \p{L}: Lu Ll Lt Lm Lo


def is_number(char: str) -> bool:
    return unicodedata.category(char).startswith("N")  # \p{N}: Nd Nl No


def special_token_at(text: str, i: int) -> str | None:
    """The special token spelled exactly at text[i:], if any."""
    return next((token for token in (START_TOKEN, END_TOKEN) if text.startswith(token, i)), None)


def split_special_tokens(text: str) -> list[str]:
    """Raw text -> segments that are either exactly a special token or text without one."""
    segments: list[str] = []
    start = i = 0
    while i < len(text):
        special = special_token_at(text, i)
        if special is None:
            i += 1
        else:
            segments += [text[start:i], special]
            i = start = i + len(special)
    return [*segments, text[start:]]


def split_words(text: str) -> list[str]:
    r"""Cut cleaned text into words, as CLIP's pattern does, scanning left to right:

    <|startoftext|> | <|endoftext|> | 's|'t|'re|'ve|'m|'ll|'d | \p{L}+ | \p{N} | [^\s\p{L}\p{N}]+

    The first alternative that matches at a position wins; whitespace between matches is dropped.
    A special-token match is cut again into '<|', the name and '|>' (the reference's byte-level
    step does that), so a special token typed in another case never becomes a special id.
    """
    words: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        special = special_token_at(text, i)
        contraction = next((c for c in CONTRACTIONS if text.startswith(c, i)), None)
        if special is not None:
            words += ["<|", special[2:-2], "|>"]
            end = i + len(special)
        elif contraction is not None:
            words.append(contraction)
            end = i + len(contraction)
        elif is_letter(char):
            end = i + 1
            while end < len(text) and is_letter(text[end]):
                end += 1
            words.append(text[i:end])
        elif is_number(char):
            words.append(char)
            end = i + 1
        elif char in WHITESPACE:
            end = i + 1
        else:  # a run of symbols and punctuation: anything but whitespace, letters, numbers
            end = i + 1
            while end < len(text) and not (
                text[end] in WHITESPACE or is_letter(text[end]) or is_number(text[end])
            ):
                end += 1
            words.append(text[i:end])
        i = end
    return words


class ClipTokenizer:
    """CLIP BPE over a vocabulary (token -> id) and ranked merges; `encode` gives 77 ids."""

    def __init__(
        self, vocab: dict[str, int], merges: list[tuple[str, str]], pad_token: str, source: str
    ) -> None:
        """`source` names where the vocabulary came from, for error messages."""
        self.vocab = vocab
        self.merges = merges
        self.merge_ranks = {pair: rank for rank, pair in enumerate(merges)}
        self.byte_to_char = bytes_to_unicode()
        check_complete(vocab, merges, pad_token, source)
        self.start_id = vocab[START_TOKEN]
        self.end_id = vocab[END_TOKEN]
        self.pad_token = pad_token
        self.pad_id = vocab[pad_token]
        self.bpe_cache: dict[str, list[int]] = {}

    @classmethod
    def from_folder(cls, folder: str | Path) -> "ClipTokenizer":
        """Read a diffusers `tokenizer/` folder (or a bundle's): vocab.json + merges.txt, or the
        single tokenizer.json that transformers 5 writes; the pad token, if present, from
        special_tokens_map.json or tokenizer_config.json."""
        folder = Path(folder)
        if not folder.is_dir():
            raise TokenizerError(f"tokenizer folder {folder} does not exist or is not a folder")
        if not (folder / "vocab.json").exists() and (folder / "tokenizer.json").exists():
            vocab, merges = read_tokenizer_json(folder / "tokenizer.json")
        else:
            vocab = read_vocab(folder / "vocab.json")
            merges = read_merges(folder / "merges.txt")
        return cls(vocab, merges, read_pad_token(folder), source=str(folder))

    @classmethod
    def default(cls) -> "ClipTokenizer":
        """The standard 49,408-token CLIP vocabulary shipped with sfmobile (built once, cached)."""
        return shipped_tokenizer()

    @classmethod
    def of_model(cls, tokenizer_dir: str | Path | None) -> "ClipTokenizer":
        """A model's tokenizer: its own folder when it ships one (tokenizer_dir), else the
        shipped CLIP vocabulary. The one place that choice is made, for the runtime, export and
        training alike."""
        return cls.default() if tokenizer_dir is None else cls.from_folder(tokenizer_dir)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """Prompt -> MAX_LENGTH ids: start, up to 75 tokens, end, then pad ids."""
        if not isinstance(text, str):
            raise TokenizerError(f"prompt must be a str, got {type(text).__name__}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            bad = f"lone surrogate U+{ord(text[error.start]):04X} at index {error.start}"
            raise TokenizerError(f"prompt is not valid Unicode text: {bad}") from None
        ids = self.token_ids(text)
        room = MAX_LENGTH - 2
        if len(ids) > room:
            logger.warning(
                "prompt is %d tokens long; dropped the last %d tokens (CLIP keeps %d)",
                len(ids),
                len(ids) - room,
                room,
            )
            ids = ids[:room]
        ids = [self.start_id, *ids, self.end_id]
        return ids + [self.pad_id] * (MAX_LENGTH - len(ids))

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Each prompt -> MAX_LENGTH ids (see `encode`)."""
        if isinstance(texts, str) or not isinstance(texts, list | tuple):
            raise TokenizerError(f"prompts must be a list of str, got {type(texts).__name__}")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TokenizerError(f"prompts[{index}] must be a str, got {type(text).__name__}")
        return [self.encode(text) for text in texts]

    def token_ids(self, text: str) -> list[int]:
        """Prompt -> ids without start, end, padding or truncation."""
        ids: list[int] = []
        for segment in split_special_tokens(text):
            if segment in (START_TOKEN, END_TOKEN):
                ids.append(self.vocab[segment])
                continue
            for word in split_words(clean_text(segment)):
                ids += self.bpe(word)
        return ids

    def bpe(self, word: str) -> list[int]:
        """One word -> ids: its UTF-8 bytes as characters, `</w>` on the last one, then merge."""
        if word in self.bpe_cache:
            return self.bpe_cache[word]
        symbols = [self.byte_to_char[byte] for byte in word.encode("utf-8")]
        symbols[-1] += END_OF_WORD
        symbols = self.merge(symbols)
        ids = [self.vocab[symbol] for symbol in symbols]
        if len(self.bpe_cache) >= BPE_CACHE_LIMIT:
            self.bpe_cache.clear()
        self.bpe_cache[word] = ids
        return ids

    def merge(self, symbols: list[str]) -> list[str]:
        """Repeat: find the adjacent pair with the lowest merge rank; join every occurrence of it,
        left to right without overlap. Stop when no adjacent pair is a merge."""
        while len(symbols) > 1:
            pairs = itertools.pairwise(symbols)
            ranked = [(self.merge_ranks[pair], pair) for pair in pairs if pair in self.merge_ranks]
            if not ranked:
                break
            first, second = min(ranked)[1]
            merged: list[str] = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == first and symbols[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return symbols

    def save(self, folder: str | Path) -> list[Path]:
        """Write vocab.json, merges.txt, special_tokens_map.json and tokenizer_config.json (the
        diffusers layout, readable by `from_folder` and by transformers); returns the paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        by_id = dict(sorted(self.vocab.items(), key=lambda item: item[1]))
        special = {"bos_token": START_TOKEN, "eos_token": END_TOKEN, "unk_token": END_TOKEN}
        special["pad_token"] = self.pad_token
        config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": MAX_LENGTH, **special}
        contents = {
            "vocab.json": json.dumps(by_id, ensure_ascii=False),
            "merges.txt": "\n".join([MERGES_HEADER, *(" ".join(m) for m in self.merges)]) + "\n",
            "special_tokens_map.json": json.dumps(special, indent=2) + "\n",
            "tokenizer_config.json": json.dumps(config, indent=2) + "\n",
        }
        for name, text in contents.items():
            (folder / name).write_text(text, encoding="utf-8")
        return [folder / name for name in contents]


def check_complete(
    vocab: dict[str, int], merges: list[tuple[str, str]], pad_token: str, source: str
) -> None:
    """Every byte (with and without `</w>`), every merge result and the special tokens must have
    ids, so no word can ever fall outside the vocabulary."""
    needed = [*bytes_to_unicode().values()]
    needed += [char + END_OF_WORD for char in needed]
    needed += [first + second for first, second in merges]
    needed += [START_TOKEN, END_TOKEN, pad_token]
    missing = [token for token in needed if token not in vocab]
    if missing:
        raise TokenizerError(
            f"vocabulary from {source} lacks {len(missing)} needed tokens, e.g. {missing[:3]}"
        )


def read_vocab(path: Path) -> dict[str, int]:
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TokenizerError(f"tokenizer file {path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TokenizerError(f"tokenizer file {path} is not readable JSON: {error}") from None
    valid = isinstance(vocab, dict) and all(
        isinstance(id_, int) and not isinstance(id_, bool) and id_ >= 0 for id_ in vocab.values()
    )
    if not valid:
        raise TokenizerError(f"tokenizer file {path} must map tokens to non-negative int ids")
    return vocab


def read_merges(path: Path, limit: int | None = None) -> list[tuple[str, str]]:
    """merges.txt (or the shipped .txt.gz): an optional first line `#version...`, then one
    `left right` pair per line, highest priority first. `limit` keeps only the first pairs."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        lines = raw.decode("utf-8").split("\n")
    except FileNotFoundError:
        raise TokenizerError(f"tokenizer file {path} is missing") from None
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as error:
        raise TokenizerError(f"tokenizer file {path} is not readable: {error}") from None
    first_line = 1 if lines and "#version" in lines[0] else 0  # CLIP's file has junk before it
    merges: list[tuple[str, str]] = []
    for number, line in enumerate(lines[first_line:], start=first_line + 1):
        if limit is not None and len(merges) == limit:
            break
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise TokenizerError(f"tokenizer file {path} line {number} is not a `left right` pair")
        merges.append((parts[0], parts[1]))
    return merges


def read_tokenizer_json(path: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The BPE vocabulary and merges of a `tokenizers` tokenizer.json (merges stored either as
    "left right" strings or as [left, right] pairs)."""
    try:
        model = json.loads(path.read_text(encoding="utf-8"))["model"]
        vocab, raw_merges = model["vocab"], model["merges"]
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in raw_merges]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise TokenizerError(
            f"tokenizer file {path} is not a BPE tokenizer.json: {error}"
        ) from None
    if not isinstance(vocab, dict) or any(len(m) != 2 for m in merges):
        raise TokenizerError(f"tokenizer file {path} has a malformed vocab or merges")
    return vocab, merges


def read_pad_token(folder: Path) -> str:
    """The pad token named by special_tokens_map.json, else tokenizer_config.json, else END_TOKEN
    (what SD-1.x folders name; SD-2.x folders name '!')."""
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = folder / name
        if not path.exists():
            continue
        try:
            pad = json.loads(path.read_text(encoding="utf-8")).get("pad_token")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as error:
            raise TokenizerError(
                f"tokenizer file {path} is not a readable JSON object: {error}"
            ) from None
        pad = pad.get("content") if isinstance(pad, dict) else pad
        if isinstance(pad, str):
            return pad
        if pad is not None:
            raise TokenizerError(f"tokenizer file {path} has a pad_token that is not text")
    return END_TOKEN


@cache
def shipped_tokenizer() -> ClipTokenizer:
    """Build CLIP's vocabulary from the shipped merges, the way CLIP does: the 256 byte
    characters, the same with `</w>`, each merge's concatenation, then start and end."""
    merges = read_merges(SHIPPED_MERGES, limit=SHIPPED_MERGE_COUNT)
    chars = list(bytes_to_unicode().values())
    tokens = [*chars, *(char + END_OF_WORD for char in chars)]
    tokens += [first + second for first, second in merges]
    tokens += [START_TOKEN, END_TOKEN]
    vocab = {token: id_ for id_, token in enumerate(tokens)}
    return ClipTokenizer(vocab, merges, pad_token=END_TOKEN, source=str(SHIPPED_MERGES))

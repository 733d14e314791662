"""Real text for prompts: the words of a local file instead of filler words, at the same exact lengths.

A scenario's ``text = "corpus.txt"`` (relative to the scenario set) makes every prompt of it a
run of consecutive words from that file, starting at a place drawn from the run's seed (and
wrapping at the end). The builder still counts the templated prompt with the server's
tokenizer and fits it to the exact length: the text changes, the lengths do not. Real text
matters where the server's speed depends on it (speculative decoding, the tokenizer's work,
a model's attention to repeated words); filler words are the default because they are
one token each in the usual tokenizers and need no file.
"""

from __future__ import annotations

import functools

from bench.doors import files
from bench.errors import ConfigError

MIN_WORDS = 16
MAX_BYTES = 256 * 2**20  # a corpus is read whole: a quarter of a GiB of text is plenty


@functools.lru_cache(maxsize=8)
def corpus_words(path: str) -> tuple[str, ...]:
    """The file's words (split on white space), read once per run; a clear error if it cannot serve."""
    data = files.read_bytes(path, what="text corpus", max_bytes=MAX_BYTES)
    words = tuple(data.decode("utf-8", errors="replace").split())  # any text will do for filler words
    if len(words) < MIN_WORDS:
        raise ConfigError(f"{path}: a text corpus needs at least {MIN_WORDS} words; it has {len(words)}")
    return words

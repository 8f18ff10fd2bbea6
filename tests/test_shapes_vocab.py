"""The shapes model's compact tokenizer splits the world's words exactly as CLIP does, and any text without <unk>."""

import random
import re

from transformers import CLIPTokenizer

from workshop.runner.tiny import write_clip_tokenizer, write_tokenizer_files
from workshop.shapes.dataset import Scene, caption
from workshop.shapes.vocab import compact_vocab


def tokenizers(tmp_path, words):
    write_tokenizer_files(tmp_path / "compact", *compact_vocab(words))
    write_clip_tokenizer(tmp_path / "full")
    return [CLIPTokenizer(str(tmp_path / d / "vocab.json"), str(tmp_path / d / "merges.txt"), model_max_length=77)
            for d in ("compact", "full")]


def test_world_words_tokenize_as_clip_does_and_unknown_text_falls_into_known_pieces(tmp_path):
    rng = random.Random(0)
    captions = [caption(Scene.random(rng), rng) for _ in range(500)]
    compact, full = tokenizers(tmp_path, set(re.findall(r"[a-z]+", " ".join(captions))))
    assert len(compact) < 700 < 49000 < len(full)
    assert all(compact.tokenize(c) == full.tokenize(c) for c in captions)
    for text in ["trending on artstation, by Basquiat", "naïve 🎨 watercolour", "a red circle"]:
        ids = compact(text).input_ids
        assert compact.unk_token_id not in ids[1:-1]  # (CLIP's unknown token is <|endoftext|>)
        assert compact.decode(ids, skip_special_tokens=True) == full.decode(full(text).input_ids, skip_special_tokens=True)

"""Textual-inversion embeddings by A1111's rule (issue 26): a prompt's word that is an embedding file's name in the
install is that embedding — in the prompt and in the negative prompt — made for the tiny model here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.helpers import generated, images_of, run_cli
from workshop.compose.emphasis import parse
from workshop.runner.embeddings import expand, installed, load, named_in, vectors
from workshop.runner.emphasis_encoder import token_chunks
from workshop.runner.model_files import hashes
from workshop.runner.models import load_pipeline, resolve


@pytest.fixture
def webui(tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "webui"
    (folder / "embeddings").mkdir(parents=True)
    vectors = torch.randn(2, 32, generator=torch.Generator().manual_seed(3))  # two vectors of the tiny encoder's width
    save_file({"emb_params": vectors}, folder / "embeddings" / "tinystyle.safetensors")
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": vectors}, "name": "oldstyle", "step": 500},
               folder / "embeddings" / "oldstyle.pt")  # A1111's own .pt format
    Path(os.environ["PROMPTISM_CONFIG"]).write_text(f'a1111 = "{folder}"\n', encoding="utf-8")
    return folder


def test_a_word_that_is_an_embeddings_name_is_that_embedding_and_no_other_word(webui):
    files = installed()
    assert set(files) == {"tinystyle", "oldstyle"}
    assert [f.name for f in named_in(["a red circle, tinystyle"], files)] == ["tinystyle"]
    assert [f.name for f in named_in(["a red circle, TinyStyle"], files)] == ["tinystyle"]  # A1111: any case
    assert named_in(["a red circle, tinystyles", "my-tinystyle"], files) == []


def test_a_multi_vector_embedding_takes_its_places_in_the_window(webui):
    pipe = load_pipeline(resolve("tiny"), torch.device("cpu"))
    load(pipe, ["tinystyle"], installed())
    tokenizer = pipe.tokenizer
    ids = token_chunks(tokenizer, parse("a tinystyle circle"), lambda text: expand(pipe, tokenizer, text))[0][0]
    added = tokenizer.convert_tokens_to_ids(["tinystyle", "tinystyle_1"])
    assert ids[2:4] == added and ids[1] == tokenizer("a", add_special_tokens=False)["input_ids"][0]


def test_a_multi_vector_embedding_is_not_split_between_windows(webui):
    """A1111 starts the next window where an embedding's vectors would not fit in what is left of this one."""
    from safetensors.torch import save_file

    save_file({"emb_params": torch.randn(8, 32, generator=torch.Generator().manual_seed(4))},
              webui / "embeddings" / "bigstyle.safetensors")
    pipe = load_pipeline(resolve("tiny"), torch.device("cpu"))
    load(pipe, ["bigstyle"], installed())
    tokenizer = pipe.tokenizer
    own = tokenizer.convert_tokens_to_ids(["bigstyle", *(f"bigstyle_{k}" for k in range(1, 8))])
    pad, end = tokenizer.pad_token_id, tokenizer.eos_token_id
    for before, first_window in [(70, 70), (67, 75)]:  # 70 + 8 > 75: it moves on whole; 67 + 8 = 75: it fits
        windows = token_chunks(tokenizer, parse("cat " * before + "bigstyle dog"),
                               lambda text: expand(pipe, tokenizer, text), vectors(pipe, tokenizer))
        ids = [w[0] for w in windows]
        assert ids[0][1 : before + 1] == [tokenizer.convert_tokens_to_ids("cat</w>")] * before
        if first_window == 70:
            assert ids[0][71:] == [end, *[pad] * 5] and ids[1][1:9] == own  # padded; the embedding whole in the next
        else:
            assert ids[0][68:76] == own and len(ids) == 2 and ids[1][1] != own[0]


def test_an_embedding_changes_the_picture_in_the_prompt_and_the_negative(webui, tmp_path, capsys):
    j = tmp_path / "j"
    runs = {args: generated(capsys, j, *args)
            for args in (("a red circle, tinystyle",), ("a red circle", "--negative", "tinystyle"), ("a red circle",))}
    capital = generated(capsys, j, "a red circle, TinyStyle")  # the same embedding, as A1111 reads it
    Path(os.environ["PROMPTISM_CONFIG"]).write_text("", encoding="utf-8")  # no install: "tinystyle" is a word
    word = generated(capsys, j, "a red circle, tinystyle")
    assert images_of(capital) == images_of(runs[("a red circle, tinystyle",)])
    made = [images_of(r)[0] for r in (*runs.values(), word)]
    assert len(set(made)) == 4
    hashed = f"tinystyle: {hashes(webui / 'embeddings' / 'tinystyle.safetensors')[0][:12]}"
    assert runs[("a red circle, tinystyle",)].record.params.embeddings == [hashed]
    assert runs[("a red circle", "--negative", "tinystyle")].record.params.embeddings == [hashed]
    assert word.record.params.embeddings is None


def test_a_pickle_embedding_needs_allow_pickle(webui, tmp_path, capsys):
    code, _, err = run_cli(capsys, "generate", "a red circle, oldstyle", "--model", "tiny", "--steps", "1",
                           "--journal", str(tmp_path / "j"))
    assert code != 0 and "the embedding oldstyle (oldstyle.pt) is a pickle file" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "j").exists()
    code, _, err = run_cli(capsys, "generate", "a red circle, oldstyle", "--model", "tiny", "--steps", "1",
                           "--clip", "none", "--allow-pickle", "--journal", str(tmp_path / "j"))
    assert code == 0, err

"""Textual-inversion embeddings by A1111's rule: a word of a prompt or negative prompt that is the name of an
embedding file in the installs the settings name (``embeddings/``, ``models/embeddings``) is that embedding. Loaded
into a pipeline once with diffusers' textual-inversion loading (A1111's ``.safetensors`` — ``emb_params``, or SDXL's
``clip_l`` + ``clip_g`` — and ``.pt`` where pickle is allowed), which adds the name to the tokenizer(s); a
multi-vector embedding's name stands for its vectors in the text the encoder reads (``expand``)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import RunError, option
from ..settings import load_settings
from .model_files import ModelFile, model_files


def installed() -> dict[str, ModelFile]:
    """The installs' embeddings by name (the file's name less its suffix, as A1111 names them)."""
    return {f.name.rpartition("/")[2]: f for f in model_files(load_settings(), "embedding")}


def named_in(texts: Iterable[str], embeddings: dict[str, ModelFile]) -> list[ModelFile]:
    """The embeddings whose names are words of ``texts`` (a name between word boundaries), each once."""
    joined = "\n".join(texts)
    return [f for name, f in embeddings.items() if _word(name).search(joined)]


def _word(name: str) -> re.Pattern:
    """``name`` as a word, in any case (A1111 matches names through CLIP's lowercased tokens: EasyNegative is
    easynegative)."""
    return re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])", re.IGNORECASE)


def check(texts: Iterable[str], *, allow_pickle: bool) -> list[ModelFile]:
    """The embeddings ``texts`` use; RunError for a pickle one where pickle is not allowed."""
    used = named_in(texts, installed())
    for file in used:
        if file.pickled and not allow_pickle:
            raise RunError(f"the embedding {file.name} ({file.path.name}) is a pickle file, which can run code when "
                           f"loaded: use its .safetensors, or pass {option('allow-pickle')} if you trust it")
    return used


def load(pipe, texts: Iterable[str], files: dict[str, ModelFile]) -> None:
    """Load into ``pipe`` the embeddings of ``files`` (``installed()``, listed once a run) that ``texts`` name and it
    has not yet (checked before the run: ``check``), and unload those it has that are no longer what the installs
    hold under their names (a file gone or changed: the word is a word again, or the new file's embedding) — a warm
    model outlives the settings of one run."""
    tokenizer = getattr(pipe, "tokenizer", None)
    if tokenizer is None or not hasattr(pipe, "load_textual_inversion"):
        return
    loaded: dict[str, tuple] = tokenizer.__dict__.setdefault("promptism_embeddings", {})  # name → the file's key
    for name in [n for n, key in loaded.items() if n not in files or _key(files[n]) != key]:
        _unload(pipe, name)
        del loaded[name]
    for file in named_in(texts, files):
        name = file.name.rpartition("/")[2]
        if name in loaded:
            continue
        try:
            _load(pipe, file, name)
            loaded[name] = _key(file)
        except Exception as exc:  # noqa: BLE001 - another model family's embedding, a broken file: one line
            detail = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            raise RunError(f"the embedding {name} ({file.path.name}) does not fit this model: {detail[:200]}") from None


def _key(file: ModelFile) -> tuple:
    stat = file.path.stat()
    return (str(file.path), stat.st_size, stat.st_mtime_ns)


def _unload(pipe, name: str) -> None:
    """Take the embedding ``name`` — all its tokens: a multi-vector one is NAME, NAME_1 … — out of ``pipe``."""
    for tokenizer, text_encoder in ((pipe.tokenizer, pipe.text_encoder),
                                    (getattr(pipe, "tokenizer_2", None), getattr(pipe, "text_encoder_2", None))):
        if tokenizer is not None and text_encoder is not None:
            tokens = [t for t in tokenizer.get_vocab() if t == name or re.fullmatch(rf"{re.escape(name)}_\d+", t)]
            pipe.unload_textual_inversion(tokens, tokenizer=tokenizer, text_encoder=text_encoder)


def _load(pipe, file: ModelFile, name: str) -> None:
    if getattr(pipe, "text_encoder_2", None) is None:
        pipe.load_textual_inversion(str(file.path), token=name)
        return
    from safetensors.torch import load_file

    state = load_file(str(file.path)) if not file.pickled else _pickled(file)
    if "clip_l" not in state or "clip_g" not in state:
        raise RunError(f"the embedding {name} is not an SDXL one (it has no clip_l and clip_g vectors)")
    pipe.load_textual_inversion(state["clip_l"], token=name, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer)
    pipe.load_textual_inversion(state["clip_g"], token=name, text_encoder=pipe.text_encoder_2,
                                tokenizer=pipe.tokenizer_2)


def _pickled(file: ModelFile) -> dict:
    import torch

    return torch.load(file.path, map_location="cpu", weights_only=True)


def vectors(pipe, tokenizer) -> dict[int, tuple[int, ...]]:
    """Each loaded multi-vector embedding's token ids in ``tokenizer``, by its first: A1111 keeps an embedding's
    vectors in one window (``compose.tokens.a1111_windows``)."""
    vocab, runs = tokenizer.get_vocab(), {}
    for name in getattr(pipe.tokenizer, "__dict__", {}).get("promptism_embeddings", {}):
        ids = [vocab[name]] if name in vocab else []
        while ids and f"{name}_{len(ids)}" in vocab:
            ids.append(vocab[f"{name}_{len(ids)}"])
        if len(ids) > 1:
            runs[ids[0]] = tuple(ids)
    return runs


def expand(pipe, tokenizer, text: str) -> str:
    """``text`` with each loaded embedding's name as it was loaded (in whatever case the prompt writes it) and a
    multi-vector one's written as its tokens (diffusers' own conversion)."""
    for name in getattr(pipe.tokenizer, "__dict__", {}).get("promptism_embeddings", {}):
        text = _word(name).sub(lambda match: name, text)
    convert = getattr(pipe, "maybe_convert_prompt", None)
    return convert(text, tokenizer) if convert is not None else text

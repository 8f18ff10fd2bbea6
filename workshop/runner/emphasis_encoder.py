"""Prompts as AUTOMATIC1111 encodes them, for the models whose text encoders it knows — Stable Diffusion 1.x/2.x
(one CLIP) and SDXL (two CLIPs: penultimate hidden states not normalised, the second's pooled output).

``A1111Encoder`` (runs recorded with ``emphasis = "a1111"``: the models A1111 users bring): a prompt's words in
75-token chunks, each encoded as a window of its own (start token, 75 tokens padded with the end token and then the
tokenizer's pad, end token) and joined along the tokens — a chunk that fills up breaks after its last comma when that comma is within
20 tokens of the end (the rest moves to the next chunk), and ``BREAK`` starts a new chunk — then each token's vectors
multiplied by its weight and the chunk's mean restored (A1111's "Original" emphasis; its "No norm" leaves the mean as the
weights make it, its "Ignore" applies no weight). Clip skip N (SD 1.x/2.x; A1111
leaves SDXL's alone) takes the Nth layer from the end, layer-normed. A prompt without weights that fits one window is
the pipeline's own encoding, bit for bit.

``WeightedEncoder`` (compel) encodes the runs recorded with ``emphasis = "compel"`` (the built-in shapes model,
trained on short prompts whose keyword weights say how much of it there is) and those recorded before A1111's
(no ``emphasis``), so they rerun to their bytes: compel scales a word's embedding away from the empty prompt's, and
below 1 blends towards the prompt with the words masked out (0: the words left out); its prompts are truncated to
one window.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..compose.emphasis import Chunk, chunk_text, parse
from ..compose.tokens import CHUNK, Piece, a1111_windows
from .embeddings import expand, vectors

SUPPORTED = "Stable Diffusion 1.x/2.x and SDXL"


def family(pipe) -> str | None:
    """``"sd"`` (one CLIP text encoder), ``"sdxl"`` (two, the second with a projection), or None: a model whose text
    encoding compel does not do the way its pipeline does (SD3, Flux, T5- or other-encoder models, no UNet)."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer, CLIPTokenizerFast

    if getattr(pipe, "unet", None) is None or hasattr(pipe, "text_encoder_3"):
        return None
    tokenizers = (CLIPTokenizer, CLIPTokenizerFast)
    if hasattr(pipe, "text_encoder_2"):
        pairs = [(pipe.tokenizer, pipe.text_encoder, CLIPTextModel), (pipe.tokenizer_2, pipe.text_encoder_2, CLIPTextModelWithProjection)]
        present = [(t, e, kind) for t, e, kind in pairs if e is not None]
        ok = present and present[-1][1] is pipe.text_encoder_2 and all(isinstance(t, tokenizers) and isinstance(e, kind) for t, e, kind in present)
        return "sdxl" if ok else None
    ok = isinstance(getattr(pipe, "tokenizer", None), tokenizers) and isinstance(getattr(pipe, "text_encoder", None), CLIPTextModel)
    return "sd" if ok else None


def token_chunks(tokenizer, chunks: tuple[Chunk, ...], expand: Callable[[str], str] = lambda text: text,
                 whole: dict[int, tuple[int, ...]] | None = None) -> list[tuple[list[int], list[float]]]:
    """A parsed prompt's windows as A1111 makes them (``compose.tokens.a1111_windows``): each the token ids of 77
    places (start, 75, end; padded with the tokenizer's pad after the first end token) and each place's weight.
    ``expand``: the words as the tokenizer is to read them (a multi-vector embedding's name as its tokens); ``whole``:
    those embeddings' token ids by their first (``embeddings.vectors``), each kept in one window."""
    start, end = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = end if tokenizer.pad_token_id is None else tokenizer.pad_token_id
    pieces: list[Piece] = []
    for n, chunk in enumerate(chunks):
        pieces += [None] if n else []  # BREAK
        pieces += [(_grouped(tokenizer(expand(s.text), add_special_tokens=False, truncation=False)["input_ids"],
                             whole or {}), s.weight) for s in chunk]
    return [([start, *ids, end, *[pad] * (CHUNK - len(ids))], [1.0, *weights, *[1.0] * (CHUNK - len(ids) + 1)])
            for ids, weights in a1111_windows(pieces, tokenizer.get_vocab().get(",</w>"))]


def _grouped(ids: list[int], whole: dict[int, tuple[int, ...]]) -> list:
    """``ids`` with each run of a multi-vector embedding's ids as one tuple."""
    out, at = [], 0
    while at < len(ids):
        run = whole.get(ids[at])
        if run is not None and len(run) <= CHUNK and tuple(ids[at : at + len(run)]) == run:
            out.append(run)
            at += len(run)
        else:
            out.append(ids[at])
            at += 1
    return out


class A1111Encoder:
    """Encodes prompts as A1111 does for one pipeline (SD or SDXL: see ``family``)."""

    def __init__(self, pipe, clip_skip: int = 1, mode: str | None = None):
        self.sdxl = family(pipe) == "sdxl"
        self.clip_skip = clip_skip  # SD only: the last layer's output (1), or the Nth from the end, layer-normed
        self.mode = mode  # A1111's Emphasis mode: None (Original), "No norm" or "Ignore"
        pairs = [(pipe.tokenizer, pipe.text_encoder)]
        if self.sdxl:
            pairs = [(t, e) for t, e in (*pairs, (pipe.tokenizer_2, pipe.text_encoder_2)) if e is not None]
        self.pairs = pairs
        self.pipe = pipe
        self.device = pipe.device

    def encode(self, chunks: tuple[Chunk, ...]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The prompt's conditioning ``[1, 77 × windows, features]`` (SDXL: both encoders' features side by side)
        and, for SDXL, its pooled embedding (of the first window, as A1111 takes it)."""
        parts, pooled = [], None
        for tokenizer, text_encoder in self.pairs:
            zs = []
            for ids, weights in token_chunks(tokenizer, chunks, lambda text: expand(self.pipe, tokenizer, text),
                                             vectors(self.pipe, tokenizer)):
                skip = not self.sdxl and self.clip_skip > 1
                out = text_encoder(torch.tensor([ids], device=self.device), output_hidden_states=self.sdxl or skip)
                if self.sdxl:
                    z = out.hidden_states[-2]
                elif skip:
                    norm = getattr(text_encoder, "text_model", text_encoder).final_layer_norm  # (transformers 4 / 5)
                    z = norm(out.hidden_states[-self.clip_skip])
                else:
                    z = out[0]
                if any(w != 1 for w in weights) and self.mode != "Ignore":  # "Original": multiply, restore the mean
                    mean = z.mean()
                    z = z * torch.tensor(weights, device=z.device, dtype=z.dtype)[None, :, None]
                    if self.mode is None and torch.isfinite(ratio := mean / z.mean()):  # ("No norm": not restored;
                        z = z * ratio  # a mean of 0 — an untrained encoder's — has no ratio)
                zs.append(z)
                if self.sdxl and text_encoder is self.pairs[-1][1] and pooled is None:
                    pooled = out[0]
            parts.append(torch.cat(zs, dim=1))
        return torch.cat(parts, dim=-1), pooled


def a1111_encode(encoder: A1111Encoder, prompt: str, negative: str) -> tuple:
    """``(embeds, negative)`` or, for SDXL, ``(embeds, negative, pooled, negative pooled)`` of ``prompt`` and
    ``negative`` in A1111's way, the shorter side padded with the empty prompt's window to the other's length."""
    with torch.inference_mode():
        sides = [encoder.encode(parse(text, "the negative prompt" if n else "the prompt"))
                 for n, text in enumerate((prompt, negative))]
        longest = max(z.shape[1] for z, _ in sides)
        # (the empty prompt's window is encoded only where a side is shorter, and each time: a LoRA changes it)
        embeds = [z if z.shape[1] == longest else
                  torch.cat([z, *[encoder.encode(parse(""))[0]] * ((longest - z.shape[1]) // (CHUNK + 2))], dim=1)
                  for z, _ in sides]
    return (*embeds, *(p for _, p in sides)) if encoder.sdxl else tuple(embeds)


def needs_weights(chunks: tuple[Chunk, ...]) -> bool:
    """Whether a parsed prompt asks for more than its words: a weight other than 1, or more than one chunk."""
    return len(chunks) > 1 or any(s.weight != 1 for s in chunks[0])


class WeightedEncoder:
    """Encodes prompts with their weights for one pipeline (SD or SDXL: see ``family``)."""

    def __init__(self, pipe):
        from compel import Compel, DownweightMode, ReturnedEmbeddingsType

        self.sdxl = family(pipe) == "sdxl"
        if self.sdxl:
            pairs = [(t, e) for t, e in ((pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)) if e is not None]
            returned = ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED
        else:
            pairs = [(pipe.tokenizer, pipe.text_encoder)]
            returned = ReturnedEmbeddingsType.LAST_HIDDEN_STATES_NORMALIZED
        self.compels = [Compel(tokenizer=t, text_encoder=e, returned_embeddings_type=returned, truncate_long_prompts=True,
                               downweight_mode=DownweightMode.MASK, device=pipe.device) for t, e in pairs]

    def embeds(self, chunks: tuple[Chunk, ...]) -> torch.Tensor:
        """The prompt's conditioning, ``[1, 77 × chunks, features]`` (SDXL: both encoders' features side by side)."""
        conjunction = _conjunction(chunks)
        parts = [c.build_conditioning_tensor_for_conjunction(conjunction)[0] for c in self.compels]
        return torch.cat(parts, dim=-1)

    def pooled(self, chunks: tuple[Chunk, ...]) -> torch.Tensor:
        """SDXL's pooled prompt embedding, of the first chunk's words (a CLIP's pooled output is its end token, which
        A1111's weights, applied after the encoder, do not change)."""
        return self.compels[-1].conditioning_provider.get_pooled_embeddings([chunk_text(chunks[0])])

    def empty(self) -> torch.Tensor:
        """The empty prompt's conditioning: what a shorter prompt is padded with, one window at a time."""
        return torch.cat([c.conditioning_provider.empty_z for c in self.compels], dim=-1)


def encode(encoder: WeightedEncoder, prompt: str, negative: str, plain: tuple) -> tuple:
    """``plain`` (the pipeline's own ``encode_prompt`` output for the words alone: ``(embeds, negative)`` or, for
    SDXL, ``(embeds, negative, pooled, negative pooled)``) with each side that has weights or BREAK encoded again by
    compel, and both sides padded to the same length with the empty prompt's windows."""
    out = list(plain)
    with torch.inference_mode():
        for side, text in enumerate((prompt, negative)):
            chunks = parse(text, "the negative prompt" if side else "the prompt")
            if needs_weights(chunks):
                out[side] = encoder.embeds(chunks).to(plain[side].dtype)
                if encoder.sdxl:
                    out[2 + side] = encoder.pooled(chunks).to(plain[2 + side].dtype)
        out[0], out[1] = encoder.compels[0].pad_conditioning_tensors_to_same_length(
            [out[0], out[1]], precomputed_padding=encoder.empty().to(out[0].dtype))
    return tuple(out)


def _conjunction(chunks: tuple[Chunk, ...]):
    """Compel's prompt objects for parsed chunks. Each Fragment's text is set after it is made: compel's constructor
    would take ``\\(`` in the words for an escape, and the words are already unescaped."""
    from compel.prompt_parser import Conjunction, FlattenedPrompt, Fragment

    prompts = []
    for chunk in chunks:
        fragments = []
        for segment in chunk:
            fragment = Fragment(segment.text, segment.weight)
            fragment.text = segment.text
            fragments.append(fragment)
        prompts.append(FlattenedPrompt(fragments))
    return Conjunction(prompts)

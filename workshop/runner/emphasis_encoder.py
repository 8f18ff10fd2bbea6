"""Prompt weights at the embedding level: a prompt written in AUTOMATIC1111's emphasis syntax (``compose.emphasis``)
encoded with compel for the models whose text encoders it handles — Stable Diffusion 1.x/2.x (one CLIP) and SDXL
(two CLIPs, penultimate hidden states not normalised, the second's pooled output).

Compel gets the parsed segments as its own prompt objects (``Fragment``/``FlattenedPrompt``/``Conjunction``), never a
string to parse again, so no text can mean one thing to promptism and another to compel. BREAK's chunks are a
conjunction: each is encoded as a prompt of its own and they are joined along the tokens, as A1111 joins its
75-token chunks. Prompts are truncated to CLIP's window as the pipeline truncates them (the token budget warns).

Weights: compel scales a word's embedding away from the empty prompt's (``empty + (z - empty) * w``); below 1 it
also blends towards the prompt with the words masked out of the encoder's attention (``DownweightMode.MASK``), so at
weight 0 the words are gone from what the other words see and their places hold the empty prompt's vectors, while
every token keeps its position. A1111 instead multiplies the vectors by ``w`` and restores their mean: that keeps
the positions too, but at 0 its zeroed words still shape their neighbours through the encoder, so a weight sweep
could not start from "without the keyword". REMOVE mode would drop the words but shift every later token.
"""

from __future__ import annotations

import torch

from ..compose.emphasis import Chunk, chunk_text, parse

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

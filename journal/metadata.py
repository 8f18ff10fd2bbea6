"""Generation metadata other tools embed in images, read with sd-parsers: AUTOMATIC1111 (PNG text, JPEG/WebP EXIF
UserComment, stealth PNG info in the alpha channel), ComfyUI, Fooocus, InvokeAI (2.x ``Dream`` and ``sd-metadata``,
3+ ``invokeai_metadata``) and NovelAI.

The split: promptism finds where the metadata lives and bounds it (text chunks, EXIF, the alpha channel's low bits),
sd-parsers says what it means (its five parsers), and promptism turns the result into a ``GenerationInfo``. Its own
code covers only what sd-parsers 0.6 lacks or gets wrong:

- extraction: sd-parsers' ParserManager refuses an already-decoded image (no ``format``), reads stealth info in pure
  Python over every pixel with an unbounded gunzip, and caches extracted metadata by ``id(image)`` (an id CPython
  reuses for the next image); here each source is read once, bounded, and stealth info also in its uncompressed form;
- ComfyUI: the library is given only the part of the graph that made the saved image (walked back from the save
  node; the library lists every sampler in graph order, and its work grows with samplers times chain length), with
  links taken from that graph itself (the library needs the UI ``workflow`` and fails without one); the nearest
  sampler is the one that produced the image, and checkpoints are found through LoRA loaders (the library credits a
  LoRA's link);
- InvokeAI 4+ (``model.name``) and refiner models, Fooocus' refiner and resolution, A1111's ``Size``;
- sampler names, in AUTOMATIC1111's naming through ``samplers``' tables (the library keeps each tool's own).

Parsing is best effort: a file whose metadata cannot be read says why (``problem``) and imports with what flags give.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from PIL import Image
from sd_parsers.data import Generators, PromptInfo, Sampler
from sd_parsers.exceptions import ParserError
from sd_parsers.parsers import MANAGED_PARSERS

from .limits import pixel_limit
from .model import SEED_LIMIT, ModelInfo
from .samplers import a1111_sampler, comfyui_sampler, invokeai_sampler

MAX_METADATA = 256 * 1024  # characters of one JSON metadata value read at most; real ones are a few kilobytes
MAX_SAMPLERS = 16  # ComfyUI samplers read, nearest the saved image first (real workflows have a handful)
#: smaller bounds where sd-parsers' patterns are quadratic on hostile text (A1111's hashes, InvokeAI 2's Dream line):
#: each reads in about 0.1 s at its bound, far above what a real image carries
_LIMITS = {"parameters": 32 * 1024, "Dream": 4 * 1024}
_EXIF_USER_COMMENT = 0x9286
_EXIF_IFD = 0x8769
_STEALTH = {b"stealth_pngcomp": True, b"stealth_pnginfo": False}  # signature → gzip-compressed (A1111's extension)
_SIGNATURE_BITS = 15 * 8
#: text keys a generator writes; one present but unreadable is a ``problem``, not "no metadata"
_KNOWN_KEYS = ("parameters", "prompt", "invokeai_metadata", "sd-metadata", "Dream")
_SOURCES = {Generators.AUTOMATIC1111: "automatic1111", Generators.COMFYUI: "comfyui", Generators.FOOOCUS: "fooocus",
            Generators.INVOKEAI: "invokeai", Generators.NOVELAI: "novelai"}
_PARSERS = [parser() for parser in MANAGED_PARSERS]  # Fooocus first: its JSON would otherwise read as A1111 text
_SIZE = re.compile(r"^\(?\s*(\d+)\s*[x,]\s*(\d+)\s*\)?$")
_SAVE_NODE = re.compile(r"save", re.IGNORECASE)
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass
class GenerationInfo:
    source: str | None = None  # the generator: automatic1111, comfyui, fooocus, invokeai, novelai
    prompt: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    params: dict = field(default_factory=dict)  # steps, guidance, sampler (A1111's name), width, height, strength
    models: tuple[ModelInfo, ...] = ()  # every model credited, the one that made the final image first
    in_pixels: bool = False  # stealth info was found in the alpha channel: the journal's copy must lose it
    problem: str | None = None  # metadata is there but could not be read (why, without its content)
    left_out: tuple[str, ...] = ()  # values read but not kept, and why (``Size 0x0 is no size``), never the prompt
    networks: tuple[str, ...] = ()  # the ``<lora:…>`` tags written at the prompt's end for a ComfyUI graph's LoRA loaders


def read_generation_info(im: Image.Image, name: str = "") -> GenerationInfo:
    """What the image says about how it was made. ``name`` (the file's) picks ComfyUI's save node when a graph has
    several. Never raises for what a file holds: metadata is a convenience, never a reason for an import to fail."""
    stealth = _stealth_text(im)
    sources = []
    if text := {k: v for k, v in im.info.items() if isinstance(k, str) and isinstance(v, str)}:
        sources.append(text)
    if comment := _exif_user_comment(im):
        sources.append({"parameters": comment})
    if stealth:
        decoded = _json(stealth)
        sources.append({"parameters": stealth, **(decoded if isinstance(decoded, dict) else {})})
    problem = None
    for chunks in sources:
        info, why = _parse(chunks, name)
        if info is not None:
            info.in_pixels = stealth is not None
            return info
        problem = problem or why
    return GenerationInfo(in_pixels=stealth is not None, problem=problem)


def a1111_infotext(im: Image.Image) -> str | None:
    """The text an A1111-style image carries as its infotext, where ``read_generation_info`` looks for it (the
    ``parameters`` text chunk, EXIF UserComment, stealth info), bounded as there; None where it has none."""
    text = im.info.get("parameters")
    for found in (text if isinstance(text, str) else None, _exif_user_comment(im), _stealth_text(im)):
        if found and len(found) <= _LIMITS["parameters"]:
            return found
    return None


def _parse(chunks: dict[str, str], name: str) -> tuple[GenerationInfo | None, str | None]:
    """The first parser that reads ``chunks``, as a GenerationInfo; else None and why (None: nothing to read)."""
    too_long = [k for k in chunks if len(chunks[k]) > _LIMITS.get(k, MAX_METADATA)]
    if known_too_long := [k for k in too_long if k in _KNOWN_KEYS]:
        return None, f"its {known_too_long[0]} metadata is too large to be real ({len(chunks[known_too_long[0]]) // 1024} KB)"
    given = {k: v for k, v in chunks.items() if k not in too_long}
    raw = _json(chunks["prompt"]) if "prompt" in chunks else None
    graph = _upstream(raw, name) if isinstance(raw, dict) else None
    if graph is not None:  # ComfyUI: the part that made the saved image, its links from the graph itself
        given["prompt"], given["workflow"] = graph, {"links": _links(graph)}
    for parser in _PARSERS:
        try:
            found = parser.parse(given)
        except (ParserError, ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError):
            continue  # not this generator's, or malformed for it
        try:
            return _convert(found, chunks, graph, name), None
        except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError):
            continue
    known = [k for k in (*_KNOWN_KEYS, *(["Comment"] if chunks.get("Software") == "NovelAI" else [])) if k in chunks]
    if not known:
        return None, None
    key = known[0]
    if key not in ("parameters", "Dream") and not isinstance(_json(chunks[key]), (dict, list)):
        return None, f"its {key} metadata is not valid JSON"
    if key == "prompt" and graph is not None:
        return None, "its ComfyUI graph has no sampler"
    return None, f"its {key} metadata is in no format promptism reads"


def _convert(found: PromptInfo, chunks: dict[str, str], graph: dict | None, name: str) -> GenerationInfo:
    source = _SOURCES[found.generator]
    samplers = sorted(found.samplers, key=lambda s: list(graph).index(s.sampler_id)) if graph else list(found.samplers)
    if not samplers:
        raise ValueError("no sampler")
    final = samplers[0]
    meta = found.metadata

    def first(pick):  # the final sampler's value, else the nearest sampler upstream that has one
        return next((v for v in map(pick, samplers) if v not in (None, "")), None)

    params = {"steps": _int(first(lambda s: s.parameters.get("steps")) or meta.get("steps")),
              "guidance": _float(first(lambda s: s.parameters.get("cfg_scale")))}
    width, height = _size(meta, source)
    left_out = ()
    if (width is None) != (height is None):
        left_out = ("a width without a height (or a height without a width) is no size: left out",)
        width = height = None
    elif width is not None and not (0 < width and 0 < height and width * height <= pixel_limit()):
        left_out = (f"Size {width}x{height} is no size a model makes (at most {pixel_limit() / 2**20:g} megapixels): left out",)
        width = height = None
    params |= {"width": width, "height": height}
    if source == "automatic1111":
        fields = a1111_fields(chunks.get("parameters", ""))
        if other := sorted(k for k in fields if k not in _A1111_READ
                           and not (k == "Seed resize from" and _no_resize(fields[k]))):
            params["not_applied"] = other  # (names only: an extension's field may hold a prompt)
        params["strength"] = _float(meta.get("Denoising strength"))
        params["clip_skip"] = _int(meta.get("Clip skip"))
        params["emphasis_mode"] = _text(fields.get("Emphasis") or None)  # A1111's Emphasis mode (Original its default)
        params["hires_upscale"] = _float(meta.get("Hires upscale"))  # A1111's hires fix: a second, img2img pass
        params["hires_steps"] = _int(meta.get("Hires steps"))
        params["hires_upscaler"] = _text(_str(meta.get("Hires upscaler")))
        params["hires_resize"] = _hires_resize(fields.get("Hires resize"))  # a size asked for instead of a scale
        params["sd_upscale_overlap"] = _int(fields.get("SD upscale overlap"))  # A1111's SD upscale script (its
        params["sd_upscale_upscaler"] = _text(fields.get("SD upscale upscaler") or None)  # scale is not written)
        for key, field_name in (("loras", "Lora hashes"), ("embeddings", "TI hashes")):
            if field_name in fields:
                params[key], note = _hashes(fields[field_name], field_name)
                left_out += (note,) if note else ()
        if "ENSD" in fields:  # (rerun names it where the sampler draws noise at each step: runner/imported.py)
            params["ensd"] = _int(fields["ENSD"])
            if params["ensd"] is None:
                left_out += ("ENSD is no whole number: left out",)
        params["vae"] = _text(fields.get("VAE") or None)  # A1111's sd_vae: its file name, and its sha256[:10]
        params["vae_hash"] = _text(fields.get("VAE hash") or None)
        params["tiling"] = True if fields.get("Tiling") == "True" else None
        params |= _a1111_mask(fields)
        if (strength := _float(fields.get("Variation seed strength"))) and fields.get("Variation seed") is not None:
            params["variation_seed"] = _int(fields.get("Variation seed"))  # (A1111 writes them where strength > 0)
            params["variation_strength"] = strength
    params["sampler"] = _sampler(source, _text(_str(final.name)), _text(_str(final.parameters.get("scheduler"))), meta)
    prompt = _text(first(lambda s: _joined(s.prompts)) or "")
    models = _models(found, samplers, chunks, graph, source)
    tags: tuple[str, ...] = ()
    if graph is not None and source == "comfyui":
        tags, params["loras"], notes = _comfy_loras(graph, [s.sampler_id for s in samplers],
                                                    models[0].id if models else None)
        prompt = " ".join(filter(None, (prompt, *tags)))  # (the encoder reads the text alone: runner's networks)
        left_out += notes
    return GenerationInfo(
        source=source,
        prompt=prompt,
        negative_prompt=_text(first(lambda s: _joined(s.negative_prompts)) or ""),
        seed=_int(first(_seed)),
        params={k: v for k, v in params.items() if v is not None and v != []},
        models=models,
        left_out=left_out,
        networks=tags,
    )


#: A1111's inpainting fields, as its img2img writes them (Mask blur where it blurs, Mask mode where it inverts, Inpaint
#: area and Masked area padding for "only masked", Masked content for all but "original"), read as promptism's run
#: parameters (runner/masks.py) under the names its runs record them by
_MASK_FIELDS = {"Mask blur", "Mask mode", "Inpaint area", "Masked area padding", "Masked content"}
#: A1111's `Key: value` fields on its infotext's settings line: a value may be quoted ("…", with \" inside), as
#: extensions write theirs (ControlNet's holds `Model: …` of its own)
_FIELD = re.compile(r'\s*(\w[\w \-/]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
#: the fields import reads (or that cannot change what promptism makes: its noise source is its own, so RNG is moot);
#: the hires fix's scale or size, steps and upscaler are read, and its other fields (Hires sampler, Hires prompt,
#: Hires checkpoint, Hires CFG Scale …) kept as not applied (workshop/runner/imported.py says them)
_A1111_READ = {"Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Model", "Model hash", "Clip skip",
               "Denoising strength", "Version", "Lora hashes", "TI hashes", "ENSD", "RNG", "VAE", "VAE hash", "Tiling",
               "Variation seed", "Variation seed strength", "Emphasis", "Hires upscale", "Hires steps",
               "Hires upscaler", "Hires resize", "SD upscale overlap", "SD upscale upscaler", *_MASK_FIELDS}
_MASKED_CONTENT = {"fill": "fill", "original": "original", "latent noise": "latent-noise",
                   "latent nothing": "latent-nothing"}


def _a1111_mask(fields: dict[str, str]) -> dict:
    """An A1111 infotext's inpainting settings (none where it names none): mask_blur, mask_invert, mask_area,
    mask_padding, mask_fill (another Masked content than A1111's four kept as written, for rerun to name)."""
    if not _MASK_FIELDS & fields.keys():
        return {}
    masked = (fields.get("Inpaint area") or "").strip() == "Only masked"
    return {"mask_blur": _int(fields.get("Mask blur")),
            "mask_invert": True if (fields.get("Mask mode") or "").strip() == "Inpaint not masked" else None,
            "mask_area": "masked" if masked else None,
            "mask_padding": _int(fields.get("Masked area padding")) if masked else None,
            "mask_fill": _MASKED_CONTENT.get(content := (fields.get("Masked content") or "original").strip().lower(),
                                             _text(content))}


def _no_resize(value: str) -> bool:
    """A1111's ``Seed resize from``, where it resizes nothing (-1x-1, its "off", written by some versions)."""
    width, _, height = value.partition("x")
    return all(_int(side) is None or _int(side) == 0 for side in (width, height))


def _hires_resize(value: str | None) -> list[int] | None:
    """A1111's ``Hires resize: WxH`` (the hires fix's target size, 0 for a side it derives from the other)."""
    match = re.fullmatch(r"\s*(\d{1,6})\s*x\s*(\d{1,6})\s*", value or "")
    return [int(match[1]), int(match[2])] if match and (match[1] != "0" or match[2] != "0") else None


_HASH = re.compile(r"[0-9a-f]{8,64}")


def _hashes(value: str, what: str) -> tuple[list[str], str | None]:
    """A1111's ``Lora hashes`` / ``TI hashes`` value (``name: 12 hex digits, name2: …``; A1111 takes ``:`` and ``,``
    out of the names) as promptism's runs record theirs, "NAME: HASH"; and a note for entries that are not that."""
    entries, bad = [], 0
    for part in value.split(","):
        name, sep, short = part.rpartition(":")
        if sep and name.strip() and _HASH.fullmatch(short.strip().lower()):
            entries.append(f"{_text(name.strip())}: {short.strip().lower()}")
        elif part.strip():
            bad += 1
    note = (f"{what}: {bad} {'entry is' if bad == 1 else 'entries are'} no 'NAME: HASH' (A1111 writes a name and "
            "hex digits): left out") if bad else None
    return list(dict.fromkeys(entries)), note


def a1111_fields(text: str) -> dict[str, str]:
    """The fields of an A1111 infotext's settings line (the one that starts ``Steps:``), quotes honoured."""
    line = next((l for l in reversed(text.splitlines()) if l.startswith("Steps: ")), "")
    fields = {}
    for match in _FIELD.finditer(line):
        value = match[2].strip()
        unquoted = _json(value) if value.startswith('"') else None
        fields[match[1].strip()] = unquoted if isinstance(unquoted, str) else value
    return fields


def _sampler(source: str, name: str | None, scheduler: str | None, meta: dict) -> str | None:
    """The sampler by its AUTOMATIC1111 name, the one promptism's samplers go by (``journal.samplers``' tables; a
    name they do not know stays as the generator wrote it)."""
    if not name or name == "unknown":  # sd-parsers' name for a sampler node without one
        return None
    if source == "automatic1111":
        return a1111_sampler(name, scheduler)
    if source == "invokeai":
        return invokeai_sampler(name)
    if source == "novelai":  # k_euler_ancestral; its noise schedule, where it is not the sampler's own
        schedule = meta.get("noise_schedule")
        return comfyui_sampler(name.removeprefix("k_"), schedule if schedule in ("karras", "exponential") else None)
    return comfyui_sampler(name, scheduler)  # ComfyUI's names, which Fooocus uses too


def _seed(sampler: Sampler):
    """A sampler's seed; none for one that adds no noise (a refiner pass: its seed is not used)."""
    if sampler.parameters.get("add_noise") == "disable":
        return None
    return sampler.parameters.get("seed", sampler.parameters.get("noise_seed"))


def _joined(prompts) -> str:
    return ", ".join(dict.fromkeys(p.value.strip() for p in prompts if isinstance(p.value, str) and p.value.strip()))


def _size(meta: dict, source: str) -> tuple[int | None, int | None]:
    if source in ("automatic1111", "fooocus"):
        value = meta.get("Size" if source == "automatic1111" else "resolution")
        match = _SIZE.match(str(value).strip()) if value is not None else None
        return (int(match.group(1)), int(match.group(2))) if match else (None, None)
    return _int(meta.get("width")), _int(meta.get("height"))


def _models(found: PromptInfo, samplers: list[Sampler], chunks: dict[str, str], graph: dict | None, source: str) -> tuple[ModelInfo, ...]:
    """Every model credited, in the order they worked (a base before its refiner); names that are not text dropped."""
    if graph is not None:
        credits = [m for s in reversed(samplers) if (m := _checkpoint(graph, s.sampler_id))]
    elif source == "automatic1111" and (fields := a1111_fields(chunks.get("parameters", ""))):
        credits = [ModelInfo(id=fields.get("Model", ""), hash=fields.get("Model hash"))] \
            if fields.get("Model") or fields.get("Model hash") else []  # (sd-parsers takes a quoted field's Model:)
    else:
        credits = [ModelInfo(id=_str(s.model.name) or "", hash=_str(s.model.hash)) for s in samplers
                   if s.model is not None and (_str(s.model.name) or _str(s.model.hash))]  # (a hash alone: named later)
    meta = found.metadata
    if source == "fooocus" and _str(meta.get("refiner_model")) not in (None, "", "None"):
        credits.append(ModelInfo(id=meta["refiner_model"], hash=_str(meta.get("refiner_model_hash"))))
    if source == "invokeai" and "invokeai_metadata" in chunks and isinstance(raw := _json(chunks["invokeai_metadata"]), dict):
        for key in ("model", "refiner_model"):  # 3.x names it model_name, 4+ name (with a hash)
            if isinstance(m := raw.get(key), dict) and (named := _str(m.get("name") or m.get("model_name"))):
                credits.append(ModelInfo(id=named, hash=_str(m.get("hash"))))
    unique: dict[str, ModelInfo] = {}
    for credit in credits:
        if credit.id.strip() or (credit.hash or "").strip():
            unique.setdefault(_text(credit.id) or "", ModelInfo(id=_text(credit.id) or "", hash=_text(credit.hash)))
    return tuple(unique.values())


# ---------------------------------------------------------------------------------------------------- ComfyUI graphs

def _links(graph: dict) -> list[list]:
    """The graph's links in the UI workflow's shape (id, from, slot, to, slot, type), the input's name as its type
    (so ``clip`` links are the ``CLIP`` links sd-parsers skips when it looks for prompts)."""
    links = []
    for target, node in graph.items():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        for key, value in (inputs.items() if isinstance(inputs, dict) else ()):
            if _is_link(value):
                links.append([len(links), str(value[0]), value[1], str(target), 0, str(key).upper()])
    return links


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int)) and not isinstance(value[0], bool)


def _upstream(graph: dict, name: str) -> dict[str, dict]:
    """The nodes that made the saved image, nearest first, at most ``MAX_SAMPLERS`` samplers among them: walked back
    from the save node whose filename prefix starts the file's name (ComfyUI names files ``prefix_00001_.png``),
    else from any save node, else from any node taking images — else the whole graph, in its order. sd-parsers' work
    grows with samplers times the length of their chains: a hostile graph of a thousand of each took minutes."""
    nodes = {str(k): v for k, v in graph.items() if isinstance(v, dict)}
    saves = [k for k, n in nodes.items() if _SAVE_NODE.search(str(n.get("class_type", "")))]
    named = [k for k in saves if _prefix_of(nodes[k], name)]
    takers = [k for k, n in nodes.items() if isinstance(n.get("inputs"), dict) and _is_link(n["inputs"].get("images"))]
    start = (named or saves or takers)[:1]
    order, seen, queue = [], set(start), deque(start)
    while queue:
        node_id = queue.popleft()
        if node_id in nodes:
            order.append(node_id)
        inputs = nodes.get(node_id, {}).get("inputs")
        for value in (inputs.values() if isinstance(inputs, dict) else ()):
            if _is_link(value) and str(value[0]) not in seen:
                seen.add(str(value[0]))
                queue.append(str(value[0]))
    samplers = [k for k in (order or nodes) if _is_sampler(nodes[k])]
    dropped = set(samplers[MAX_SAMPLERS:])
    return {k: nodes[k] for k in (order or nodes) if k not in dropped}


def _is_sampler(node: dict) -> bool:
    """What sd-parsers takes for a sampler: a node with a sampler name, steps and CFG."""
    inputs = node.get("inputs")
    return isinstance(inputs, dict) and {"sampler_name", "steps", "cfg"} <= inputs.keys()


def _prefix_of(node: dict, name: str) -> bool:
    prefix = node.get("inputs", {}).get("filename_prefix") if isinstance(node.get("inputs"), dict) else None
    return isinstance(prefix, str) and bool(name) and name.startswith(prefix.replace("\\", "/").rsplit("/", 1)[-1] + "_")


def _checkpoint(graph: dict, sampler_id: str | None) -> ModelInfo | None:
    """The checkpoint a sampler's ``model`` input comes from, through LoRA loaders and other model patches."""
    node = graph.get(str(sampler_id)) if sampler_id is not None else None
    for _ in range(64):  # a chain of patches, never a cycle
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict):
            return None
        for key in ("ckpt_name", "unet_name"):
            if isinstance(inputs.get(key), str) and inputs[key].strip():
                return ModelInfo(id=inputs[key])
        link = inputs.get("model")
        if not _is_link(link):
            return None
        node = graph.get(str(link[0]))
    return None


#: ComfyUI's LoRA loaders: class → whether it patches the text encoder too (LoraLoaderModelOnly: the model alone)
_LORA_LOADERS = {"LoraLoader": True, "LoraLoaderModelOnly": False}
_LORA_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


def _comfy_loras(graph: dict, sampler_ids: list, credited: str | None) -> tuple[tuple[str, ...], list[str], tuple[str, ...]]:
    """A ComfyUI graph's LoRA loaders as A1111's ``<lora:NAME:TE:UNET>`` tags (``<lora:NAME:W>`` where both are W):
    the loaders on the way from the credited checkpoint to its sampler's ``model`` (their ``strength_model``: the
    UNet's) and to the text encoder of that sampler's prompt (their ``strength_clip``), a LoRA loaded twice on one
    way at the sum of its strengths; NAME is ``lora_name`` as A1111 and ``model_files`` name it (its path under the
    LoRA folder, ``/``-separated, without its suffix). Also every LoRA named (what the experiment records: a graph
    holds no hash, so the name alone) and a note for each that is not applied: off the way (another sampler's, a
    refiner's), a strength that is no number, a name no tag can hold. A LoRA at strength 0 changes nothing: left out."""
    nodes = [graph.get(str(i)) for i in sampler_ids]
    chosen = next((n for i, n in zip(sampler_ids, nodes) if credited is not None and
                   (c := _checkpoint(graph, i)) is not None and c.id == credited), nodes[0] if nodes else None)
    inputs = chosen.get("inputs") if isinstance(chosen, dict) else None
    inputs = inputs if isinstance(inputs, dict) else {}
    on_model = _chain(graph, inputs.get("model"), "model")
    on_clip = [n for e in _encoders(graph, inputs.get("positive")) for n in _chain(graph, graph[e]["inputs"]["clip"], "clip")]
    negative = [n for e in _encoders(graph, inputs.get("negative")) for n in _chain(graph, graph[e]["inputs"]["clip"], "clip")]
    loaders = [k for k in dict.fromkeys([*reversed(on_model), *reversed(on_clip), *graph])
               if isinstance(graph.get(k), dict) and graph[k].get("class_type") in _LORA_LOADERS
               and isinstance(graph[k].get("inputs"), dict)]
    strengths: dict[str, list[float]] = {}
    named, unapplied, notes = [], set(), []
    for node_id in loaders:
        node = graph[node_id]
        given = node["inputs"]
        file = _str(given.get("lora_name"))
        name = _text(_lora_name(file)) if file else None
        if not name:
            notes.append(f"a ComfyUI {node['class_type']} (node {node_id}) names no LoRA file: left out")
            continue
        wanted = (["strength_model"] if node_id in on_model else []) + \
                 (["strength_clip"] if node_id in on_clip and _LORA_LOADERS[node["class_type"]] else [])
        values = {k: _float(given.get(k)) for k in ("strength_model", "strength_clip")}
        if all(values[k] == 0 for k in ("strength_model", "strength_clip")[:1 + _LORA_LOADERS[node["class_type"]]]):
            continue  # at strength 0 a LoRA changes nothing
        if any(c in name for c in ":<>"):
            notes.append(f"ComfyUI LoRA {name}: a name with ':', '<' or '>' cannot be written as a <lora:…> tag: "
                         "not applied")
            continue
        named.append(name)
        if not wanted:
            unapplied.add(name)
            notes.append(f"ComfyUI LoRA {name} (node {node_id}) is not on the way from {credited or 'the checkpoint'} "
                         "to its sampler and prompt (another pass's): not applied")
            continue
        if bad := [k for k in wanted if values[k] is None]:
            unapplied.add(name)
            notes.append(f"ComfyUI LoRA {name} (node {node_id}): its {bad[0]} is no number (another node's output?): "
                         "not applied")
            continue
        total = strengths.setdefault(name, [0.0, 0.0])
        total[0] += values["strength_clip"] if "strength_clip" in wanted else 0.0
        total[1] += values["strength_model"] if "strength_model" in wanted else 0.0
    if {n for n in negative if n in loaders} != {n for n in on_clip if n in loaders}:
        notes.append("the negative prompt's text encoder has other ComfyUI LoRAs than the prompt's: the prompt's are "
                     "applied to both")
    tags = tuple(f"<lora:{name}:{_strength(te)}>" if te == unet else f"<lora:{name}:{_strength(te)}:{_strength(unet)}>"
                 for name, (te, unet) in strengths.items() if te or unet)
    recorded = [n for n in dict.fromkeys(named) if n in unapplied or any(strengths.get(n, ()))]
    return tags, recorded, tuple(notes)


def _lora_name(file: str) -> str:
    """ComfyUI's ``lora_name`` (``sub\\name.safetensors`` on Windows) as A1111 names the file: ``sub/name``."""
    name = "/".join(part.strip() for part in file.replace("\\", "/").split("/") if part.strip())
    return name[: -len(suffix)] if (suffix := PurePosixPath(name).suffix.lower()) in _LORA_SUFFIXES else name


def _strength(value: float) -> str:
    """A strength as short as it reads back exactly (0.8, 1, 0.123456789)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


def _chain(graph: dict, link: Any, key: str) -> list[str]:
    """The nodes from ``link`` back along their ``key`` input (``model``, ``clip``) to where it starts, nearest first."""
    chain: list[str] = []
    for _ in range(64):  # a chain of patches, never a cycle
        node_id = str(link[0]) if _is_link(link) else None
        node = graph.get(node_id) if node_id is not None else None
        if not isinstance(node, dict) or node_id in chain:
            break
        chain.append(node_id)
        link = node.get("inputs", {}).get(key) if isinstance(node.get("inputs"), dict) else None
    return chain


def _encoders(graph: dict, link: Any) -> list[str]:
    """The text encoders (nodes with a ``clip`` input) that a sampler's conditioning ``link`` comes from, through
    combines, areas and other conditioning nodes."""
    found, seen, queue = [], set(), deque([link])
    while queue:
        link = queue.popleft()
        node_id = str(link[0]) if _is_link(link) else None
        if node_id is None or node_id in seen:
            continue
        seen.add(node_id)
        inputs = graph.get(node_id, {}).get("inputs") if isinstance(graph.get(node_id), dict) else None
        if not isinstance(inputs, dict):
            continue
        if _is_link(inputs.get("clip")):
            found.append(node_id)
        else:
            queue.extend(v for v in inputs.values() if _is_link(v))
    return found


# ---------------------------------------------------------------------------------------------------- extraction

def _exif_user_comment(im: Image.Image) -> str | None:
    """A1111 writes infotext to EXIF UserComment in JPEG and WebP (8-byte charset header, then the text)."""
    try:
        raw = im.getexif().get_ifd(_EXIF_IFD).get(_EXIF_USER_COMMENT)
    except Exception:  # noqa: BLE001 - malformed EXIF means "no metadata", never a failed import
        return None
    if isinstance(raw, bytes):
        header, body = raw[:8], raw[8:]
        codec = "utf-16-be" if header.startswith(b"UNICODE") else "utf-8"
        raw = body.decode(codec, "ignore")
    return raw.strip("\x00 ") or None if isinstance(raw, str) else None


def _stealth_text(im: Image.Image) -> str | None:
    """Stealth PNG info: a signature, a 32-bit bit count and the text (gzipped or not) in the lowest bit of the alpha
    channel, column by column (A1111's stealth-pnginfo extension, NovelAI). Read bounded; None when absent."""
    if im.mode != "RGBA" or im.width * im.height < _SIGNATURE_BITS + 32:
        return None
    bits = np.asarray(im.getchannel("A")).T.reshape(-1) & 1  # column-major: x outer, y inner
    compressed = _STEALTH.get(np.packbits(bits[:_SIGNATURE_BITS]).tobytes())
    if compressed is None:
        return None
    count = int.from_bytes(np.packbits(bits[_SIGNATURE_BITS:_SIGNATURE_BITS + 32]).tobytes(), "big")
    data = np.packbits(bits[_SIGNATURE_BITS + 32:_SIGNATURE_BITS + 32 + min(count, MAX_METADATA * 8)]).tobytes()
    try:
        if compressed:
            inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip, never inflated past the limit
            data = inflate.decompress(data, MAX_METADATA * 4)
        return data.decode("utf-8")
    except (zlib.error, UnicodeDecodeError):
        return ""  # the signature is there (the pixels must still lose it), the text is not readable


def without_stealth(im: Image.Image) -> Image.Image:
    """``im`` with stealth info wiped: an opaque image loses its alpha channel, any other the alpha's lowest bit."""
    alpha = np.asarray(im.getchannel("A"))
    if alpha.min() >= 254:
        return im.convert("RGB")
    wiped = im.copy()
    wiped.putalpha(Image.fromarray(alpha | 1))
    return wiped


# ---------------------------------------------------------------------------------------------------- values

def _json(text: str) -> Any:
    try:
        return json.loads(text) if len(text) <= MAX_METADATA else None
    except (ValueError, RecursionError):
        return None


def _int(v) -> int | None:
    """A whole number the journal can hold (seeds are unsigned 64-bit; steps and sizes far less), else None."""
    try:
        number = int(str(v).strip())
    except (TypeError, ValueError):
        return None
    return number if 0 <= number < SEED_LIMIT else None


def _text(v: str | None) -> str | None:
    """Text the journal can store: a lone surrogate (JSON's ``\\ud800``) becomes U+FFFD."""
    return _SURROGATE.sub("\ufffd", v) if v is not None else None


def _float(v) -> float | None:
    try:
        number = float(str(v).strip())
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _str(v) -> str | None:
    return v if isinstance(v, str) else None

"""Generation metadata other tools embed in images: AUTOMATIC1111 infotext, ComfyUI graphs, InvokeAI JSON.

Used by ``promptism import`` to recover prompt, negative prompt, seed, steps, guidance, size, sampler and model. The
sampler is recorded by its AUTOMATIC1111 name, whichever tool wrote it (see ``samplers``). Parsing is best effort:
anything unrecognised is simply absent from the result.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

from PIL import Image

from .samplers import a1111_sampler, comfyui_sampler, invokeai_sampler

_KEY = re.compile(r"\w[\w \-/]*")  # a key of A1111's last infotext line ("Steps", "CFG scale", "Model hash")
MAX_METADATA = 256 * 1024  # characters of generation metadata read at most; real ones are a few kilobytes
_SIZE = re.compile(r"^(\d+)x(\d+)$")
_EXIF_USER_COMMENT = 0x9286
_EXIF_IFD = 0x8769


@dataclass
class GenerationInfo:
    source: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    params: dict = field(default_factory=dict)
    model: str | None = None
    model_hash: str | None = None


def read_generation_info(im: Image.Image) -> GenerationInfo:
    """What the image says about how it was made (an empty GenerationInfo if nothing, or if what it says is too
    large or malformed to read: metadata is a convenience, never a reason for an import to fail)."""
    info = im.info
    try:
        if isinstance(text := info.get("parameters"), str):
            return parse_a1111(text) if len(text) <= MAX_METADATA else GenerationInfo()
        if isinstance(text := info.get("invokeai_metadata"), str):
            return _parse_invokeai(text) if len(text) <= MAX_METADATA else GenerationInfo()
        if isinstance(text := info.get("prompt"), str):
            return _parse_comfyui(text) if len(text) <= MAX_METADATA else GenerationInfo()
        comment = _exif_user_comment(im)
        if comment and len(comment) <= MAX_METADATA:
            return parse_a1111(comment)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError):  # best effort, as promised
        pass
    return GenerationInfo()


def parse_a1111(text: str) -> GenerationInfo:
    """Parse AUTOMATIC1111 infotext: prompt line(s), optional ``Negative prompt: …`` line(s), then ``Steps: …``."""
    *lines, last = text.strip().split("\n")
    params = _params(last)
    if len(params) < 3:
        lines.append(last)
        params = []
    prompt, negative, in_negative = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:") :].strip()
        (negative if in_negative else prompt).append(line)
    result = GenerationInfo(source="automatic1111", prompt="\n".join(prompt).strip(), negative_prompt="\n".join(negative).strip())
    schedule = None
    for key, value in params:
        if len(value) > 1 and value.startswith('"') and value.endswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        if key == "Schedule type":  # A1111 1.9+: "Sampler: DPM++ 2M, Schedule type: Karras"
            schedule = value
        else:
            _set_a1111_param(result, key, value)
    if "sampler" in result.params:
        result.params["sampler"] = a1111_sampler(result.params["sampler"], schedule)
    return result


def _params(line: str) -> list[tuple[str, str]]:
    """The ``Key: value`` pairs of an infotext line, split at commas outside quoted values — in one pass, however long
    or hostile the line (a regular expression here backtracks quadratically on a long line without a colon)."""
    pieces, current, quoted, escaped = [], [], False, False
    for ch in line:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            pieces.append("".join(current))
            current = []
            continue
        current.append(ch)
    pieces.append("".join(current))
    pairs = []
    for piece in pieces:
        key, sep, value = piece.partition(":")
        key = key.strip()
        if sep and _KEY.fullmatch(key):
            pairs.append((key, value.strip()))
    return pairs


def _set_a1111_param(result: GenerationInfo, key: str, value: str) -> None:
    """One ``Key: value`` of the infotext into ``result`` (a value that does not read as its kind is left out)."""
    if key == "Seed":
        result.seed = _int(value)
    elif key == "Model":
        result.model = value
    elif key == "Model hash":
        result.model_hash = value
    elif key == "Size" and (m := _SIZE.match(value)):
        result.params["width"], result.params["height"] = int(m.group(1)), int(m.group(2))
    elif (param := _A1111_PARAMS.get(key)) and (read := param[1](value)) is not None:
        result.params[param[0]] = read


_A1111_PARAMS = {"Steps": ("steps", lambda v: _int(v)), "CFG scale": ("guidance", lambda v: _float(v)),
                 "Sampler": ("sampler", lambda v: v), "Denoising strength": ("strength", lambda v: _float(v))}


def _parse_invokeai(text: str) -> GenerationInfo:
    try:
        meta = json.loads(text)
    except ValueError:
        return GenerationInfo()
    if not isinstance(meta, dict):
        return GenerationInfo()
    model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
    params = {"steps": _int(meta.get("steps")), "guidance": _float(meta.get("cfg_scale")),
              "width": _int(meta.get("width")), "height": _int(meta.get("height")),
              "sampler": invokeai_sampler(meta["scheduler"]) if isinstance(meta.get("scheduler"), str) else None}
    return GenerationInfo(
        source="invokeai",
        prompt=_str(meta.get("positive_prompt")),
        negative_prompt=_str(meta.get("negative_prompt")),
        seed=_int(meta.get("seed")),
        params={k: v for k, v in params.items() if v is not None},
        model=_str(model.get("name") or model.get("model_name")),
        model_hash=_str(model.get("hash")),
    )


def _parse_comfyui(text: str) -> GenerationInfo:
    """Best effort over ComfyUI's API graph: the first sampler node, its linked text encoders and checkpoint."""
    try:
        graph = json.loads(text)
    except ValueError:
        return GenerationInfo()
    if not isinstance(graph, dict):
        return GenerationInfo()
    nodes = {k: v for k, v in graph.items() if isinstance(v, dict)}
    samplers = [n for n in nodes.values() if "KSampler" in str(n.get("class_type", ""))]
    if not samplers:
        return GenerationInfo()
    inputs = samplers[0].get("inputs", {})

    def linked_text(ref) -> str | None:
        node = nodes.get(str(ref[0])) if isinstance(ref, list) and ref else None
        return _str(node.get("inputs", {}).get("text")) if node else None

    checkpoint = next((n.get("inputs", {}).get("ckpt_name") for n in nodes.values()
                       if "CheckpointLoader" in str(n.get("class_type", ""))), None)
    sampler, scheduler = inputs.get("sampler_name"), inputs.get("scheduler")
    params = {"steps": _int(inputs.get("steps")), "guidance": _float(inputs.get("cfg")),
              "sampler": comfyui_sampler(sampler, _str(scheduler)) if isinstance(sampler, str) else None}
    return GenerationInfo(
        source="comfyui",
        prompt=linked_text(inputs.get("positive")),
        negative_prompt=linked_text(inputs.get("negative")),
        seed=_int(inputs.get("seed", inputs.get("noise_seed"))),
        params={k: v for k, v in params.items() if v is not None},
        model=_str(checkpoint),
    )


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


def _int(v) -> int | None:
    try:
        return int(str(v).strip())
    except (TypeError, ValueError):
        return None


def _float(v) -> float | None:
    try:
        number = float(str(v).strip())
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _str(v) -> str | None:
    return v if isinstance(v, str) else None

"""How many real AUTOMATIC1111 infotexts can promptism make again as written? A measurement over the corpus in
``tests/bench/infotexts/`` (public infotexts, byte for byte as published; ``SOURCES.md`` says where each is from).

    PYTHONPATH=$PWD .venv/bin/python tests/bench/infotext_coverage.py [--only 012] [--no-smoke] [--keep]
                                                                       [--list] [--json-out FILE]

A measurement, not a test: nothing is asserted. No real model is needed (none is here): every infotext is taken
through promptism's own code paths, in this process, with the built-in ``tiny`` model standing in for the checkpoint
it names:

1. its text goes into a PNG's ``parameters`` chunk (the PNG as large as its ``Size``), which is imported as
   ``promptism import PNG --title T`` imports it (``journal.importing``: read_source, experiment_from_sources,
   Journal.accept) — what the import leaves out is noted;
2. ``runner.imported.remake(exp, settings, model="tiny")`` builds the job ``promptism rerun N --model tiny`` sends
   (RunError: refused), with what it says it leaves out;
3. the service's submit check (``service.executor.request_problem``: the spec, the prompt syntax, models, LoRA files,
   embeddings), then ``runner.execution.prepare`` (loads tiny, the backend's own checks, the steps);
4. unless ``--no-smoke``: the job is run for real on tiny, on the CPU, with its steps cut to at most 4 and its size
   to 64x64 (everything else as recorded), so that the prompt encoder (A1111 emphasis, 75-token chunks, BREAK), the
   LoRAs and the embeddings are applied once — an error there is a FAILS_AT_RUN (a bug: the checks let it through).

Everything happens in a throwaway sandbox under /tmp (HOME, the XDG folders, PROMPTISM_CONFIG / _CACHE / _STATE /
_RUNTIME, a journal) as ``bad_input_tally.py`` makes it: the user's own journal, config and service are never
touched. The sandbox holds an A1111 install (``config.toml``: ``a1111 = "…"``) with a tiny stand-in for every LoRA
(``models/Lora/NAME.safetensors``: kohya keys for tiny's UNet and text encoder, as tests/test_loras.py makes them)
and every embedding (``embeddings/NAME.safetensors``: ``emb_params`` of tiny's width, as tests/test_embeddings.py
makes them) that the corpus names, spelled as each infotext spells it. A stand-in is not the file an infotext's ``Lora hashes:``
names, and rerun says so (a said drop). ``tiny`` is shaped like SD 1.x: what
promptism does differently for SDXL (Clip skip left out, as A1111 leaves it) is not exercised.

Outcomes per infotext:

  RUNS_AS_WRITTEN   nothing refused, nothing left out, and no feature it uses that promptism does not apply
  RUNS_WITH_DROPPED it runs, but some of what it records is not applied (each named: hires fix, ADetailer, VAE, …;
                    "said" where promptism's import or rerun says so, "silent" where it does not), or is read
                    otherwise than A1111 reads it ("misread": the import's prompt, seed, steps, CFG, size, sampler
                    and Clip skip are compared with the infotext's; a misread model name is listed, not counted —
                    tiny stands in for the model anyway)
  REFUSED           import, remake, the submit check or the model's checks refuse it (the one-line reason)
  FAILS_AT_RUN      accepted by every check, then the 4-step run on tiny failed (the error)

Features are detected from the infotext itself (its prompt, negative prompt and ``key: value`` fields, split as
A1111's ``parse_generation_parameters`` splits them) and each is given promptism's status, read from its code:
applied, dropped (said / silent), refused, or moot (no effect on what promptism makes: ENSD and A1111's noise
source, hashes, version — promptism never reproduces A1111's pixels, its noise is its own). Embeddings are found by
the infotext's ``TI hashes:`` field and a list of well-known names; LoRAs by A1111's ``<lora:…>`` / ``<lyco:…>`` tag.
A prompt "over 75 tokens" has a BREAK-free part of more than 75 CLIP tokens (promptism's ``clip_bpe``, the
words without A1111's syntax).

It prints the outcome counts, a table of features (how many infotexts use each, promptism's status), every
infotext's outcome, the reasons of the refused and what the import read otherwise than A1111 reads it;
``--json-out FILE`` writes all of it as JSON. About 30 s with the smoke runs on two busy cores (tiny is built first),
15 s without.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # torch's idle threads asleep: a busy machine slows 100× without
REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "infotexts"
ORDER = ["RUNS_AS_WRITTEN", "RUNS_WITH_DROPPED", "REFUSED", "FAILS_AT_RUN"]

# ------------------------------------------------------------------ the infotext, as A1111 splits it

# A1111's modules/infotext_utils.py: a field is `Key: value` up to a comma, a value in quotes may hold commas
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_NETWORK = re.compile(r"<(\w+):([^>]+)>")  # A1111's extra-network tag
#: textual-inversion embeddings that real infotexts name (A1111 1.4+ also lists those it used in `TI hashes:`)
KNOWN_EMBEDDINGS = ("EasyNegative", "EasyNegativeV2", "easynegative", "ng_deepnegative_v1_75t", "badhandv4",
                    "bad-hands-5", "bad_prompt", "bad_prompt_version2", "bad-artist", "bad-artist-anime",
                    "bad-picture-chill-75v", "verybadimagenegative_v1.3", "FastNegativeV2", "negative_hand-neg",
                    "BadDream", "UnrealisticDream", "NG_DeepNegative_V1_75T", "MajicNegative_V2")


@dataclass
class Infotext:
    name: str
    raw: str
    prompt: str
    negative: str
    fields: dict[str, str]


def split_infotext(name: str, raw: str) -> Infotext:
    """Prompt, negative prompt and fields. The fields are the last line that starts with ``Steps: `` (A1111 takes
    the last line when it holds three fields or more; a line after it, as an X/Y/Z plot's ``Template:``, is kept out
    of the prompt here)."""
    lines = raw.strip().split("\n")
    at = max((i for i, line in enumerate(lines) if line.startswith("Steps: ")), default=None)
    fields: dict[str, str] = {}
    if at is not None:
        for key, value in _PARAM.findall(lines[at]):
            fields[key.strip()] = value.strip()
        for line in lines[at + 1:]:
            for key, value in _PARAM.findall(line):
                fields.setdefault(key.strip(), value.strip())
        lines = lines[:at]
    prompt, negative, in_negative = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative if in_negative else prompt).append(line)
    return Infotext(name, raw, "\n".join(prompt).strip(), "\n".join(negative).strip(), fields)


def unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def loras_named(text: str) -> list[str]:
    return [m[2].split(":")[0].strip() for m in _NETWORK.finditer(text) if m[1] in ("lora", "lyco")]


def embeddings_named(info: Infotext) -> list[str]:
    """The embedding names the infotext uses, spelled as it spells them."""
    found = []
    if ti := info.fields.get("TI hashes"):
        found += [part.split(":")[0].strip() for part in unquote(ti).split(",") if ":" in part]
    text = info.prompt + "\n" + info.negative
    for name in KNOWN_EMBEDDINGS:
        for m in re.finditer(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, re.IGNORECASE):
            found.append(m[0])
    return list(dict.fromkeys(n for n in found if n))


def plain_words(text: str) -> list[str]:
    """The BREAK-separated parts of ``text`` as the text encoder reads them (no weights, brackets, escapes or
    extra-network tags): promptism's own ``emphasis.plain`` where it parses the text, else a rough strip."""
    from workshop.compose.emphasis import chunk_text, parse
    from workshop.compose.errors import SpecError
    from workshop.compose.networks import without_networks

    try:
        return [chunk_text(c) for c in parse(without_networks(text))]
    except SpecError:
        text = _NETWORK.sub("", text)
        text = re.sub(r":\s*[+-]?[\d.]+\s*\)", ")", text)
        return [re.sub(r"[()\[\]\\]", "", part) for part in re.split(r"\bBREAK\b", text)]


# ------------------------------------------------------------------ features and promptism's status for each

APPLIED, DROPPED, REFUSED_F, MOOT = "applied", "dropped", "refused", "moot"


@dataclass(frozen=True)
class Feature:
    key: str
    label: str
    status: str  # what promptism does with it (APPLIED, DROPPED, REFUSED_F, MOOT)
    note: str  # how, in a few words (from its code)
    said: str | None = None  # a regex over promptism's notes (import + rerun) that shows it says so


FEATURES = {f.key: f for f in (
    Feature("emphasis", "emphasis (x:1.2) / (x) / [x]", APPLIED, "A1111's weights and 'Original' emphasis (SD 1.x/2.x/SDXL)"),
    Feature("clip_skip", "Clip skip > 1", APPLIED, "read and made again on SD 1.x/2.x (SDXL: left out, as A1111 does)",
            said=r"Clip skip"),
    Feature("long_prompt", "a prompt part over 75 CLIP tokens", APPLIED, "A1111's 75-token chunks"),
    Feature("break", "BREAK", APPLIED, "a new 75-token chunk, as A1111"),
    Feature("lora", "LoRA <lora:…> / <lyco:…>", APPLIED, "loaded from the a1111 install, at the tag's strengths"),
    Feature("embedding", "embeddings (EasyNegative, …)", APPLIED, "a word that names a file in embeddings/"),
    Feature("prompt_editing", "prompt editing [a:b:N]", APPLIED, "A1111's schedule: the conditioning switched per step"),
    Feature("alternation", "alternation [a|b]", APPLIED, "A1111's schedule: the words switched every step"),
    Feature("hypernet", "hypernetwork <hypernet:…>", REFUSED_F, "one line: an extra network promptism does not apply"),
    Feature("and", "AND (composable diffusion)", REFUSED_F, "one line naming the character"),
    Feature("hires", "hires fix (Hires upscale/steps/upscaler, First pass size)", APPLIED,
            "made again, both passes (runner/hires.py): Hires upscale, or a Hires resize that keeps the proportions; "
            "Latent*, Lanczos, Nearest, None; a network upscaler (R-ESRGAN …) as Lanczos, said; its other fields named",
            said=r"hires fix|Hires upscaler|Hires sampler|Hires prompt|Hires checkpoint"),
    Feature("img2img", "img2img / inpaint (Denoising strength without hires, Mask blur)", DROPPED,
            "not applied: no init image is recorded", said=r"denoising strength"),
    Feature("vae", "VAE (VAE: / VAE hash:)", DROPPED, "applied where the install has the file (by name, else hash); "
            "this sandbox has none, so rerun names it and uses the model's own"),
    Feature("ensd", "ENSD (eta noise seed delta)", MOOT, "changes only an ancestral sampler's step noise (A1111 seeds "
            "it with seed + ENSD), where rerun names it: counted among that infotext's said drops"),
    Feature("rng", "RNG: CPU", MOOT, "ignored; promptism's noise is its own"),
    Feature("variation_seed", "variation seed", DROPPED, "not applied, named by rerun"),
    Feature("seed_resize", "Seed resize from (not -1x-1)", DROPPED, "not applied, named by rerun"),
    Feature("eta", "Eta (sampler noise)", DROPPED, "not applied, named by rerun"),
    Feature("face_restoration", "Face restoration", DROPPED, "not applied, named by rerun"),
    Feature("adetailer", "ADetailer", DROPPED, "extension: not applied, named by rerun"),
    Feature("controlnet", "ControlNet", DROPPED, "extension: not applied, named by rerun (no control image)"),
    Feature("addnet", "Additional Networks LoRA (AddNet …)", DROPPED, "extension: its LoRAs are not applied"),
    Feature("regional", "Regional Prompter (RP …)", DROPPED, "extension: not applied, named by rerun; its BREAKs become plain chunk breaks"),
    Feature("extension", "other extension / script fields", DROPPED, "not applied, named by rerun"),
    Feature("emphasis_mode", "Emphasis: No norm (not 'Original')", APPLIED, "A1111's No norm: the weights, the mean not restored"),
    Feature("xyz", "X/Y/Z plot script (the infotext of a grid)", DROPPED, "not applied, named by rerun: one image is made"),
    Feature("sampler", "sampler (Sampler [+ Schedule type])", APPLIED, "by A1111's name, where promptism has it",
            said=r"sampler"),
    Feature("schedule_type", "Schedule type (A1111 1.9+)", APPLIED, "joined to the sampler's name (Karras …)"),
    Feature("no_model", "no Model: name (only Model hash)", MOOT,
            "credited as 'unknown model' (or the local checkpoint with that hash); rerun needs --model"),
    Feature("size_not_8", "Size not a multiple of 8", APPLIED,
            "made as A1111 made it: rounded down to a multiple of 8 (its latents are an eighth of the size), said"),
)}

#: fields that change nothing promptism could make (or that other features account for)
META = {"Steps", "Sampler", "CFG scale", "Seed", "Size", "Model hash", "Model", "Version", "Clip skip", "ENSD", "RNG",
        "Lora hashes", "TI hashes", "Hashes", "Schedule type", "Denoising strength", "Batch size", "Batch pos",
        "Score", "Template", "Seed resize from", "Emphasis", "VAE", "VAE hash", "Eta", "Face restoration",
        "Variation seed", "Variation seed strength", "Mask blur", "Hires upscale", "Hires steps", "Hires upscaler",
        "Hires resize", "First pass size", "Hires prompt", "Hires negative prompt", "Hires sampler", "Hires CFG Scale",
        "Hires checkpoint", "Hires schedule type", "Denoising strength change factor", "Conditional mask weight"}
#: field prefixes of extensions and scripts, and what to call them
EXTENSIONS = (("ADetailer", "adetailer"), ("ControlNet", "controlnet"), ("AddNet", "addnet"), ("RP ", "regional"),
              ("Script", "xyz"), ("X Type", "xyz"), ("X Values", "xyz"), ("Y Type", "xyz"), ("Y Values", "xyz"))


def features_of(info: Infotext) -> tuple[dict[str, str], list[str]]:
    """{feature key: detail} that ``info`` uses, and the names of the fields no feature accounts for."""
    from workshop.compose.tokens import clip_bpe

    f, p, text = info.fields, info.prompt, info.prompt + "\n" + info.negative
    found: dict[str, str] = {}
    if re.search(r"(?<!\\)[(\[]", _NETWORK.sub("", text)):
        found["emphasis"] = ""
    if (cs := f.get("Clip skip")) and cs.strip() not in ("1", ""):
        found["clip_skip"] = cs
    encode = clip_bpe()
    longest = max((len(encode(part)) for t in (info.prompt, info.negative) for part in plain_words(t)), default=0)
    if longest > 75:
        found["long_prompt"] = f"{longest} tokens"
    if re.search(r"\bBREAK\b", p):
        found["break"] = str(len(re.findall(r"\bBREAK\b", p)))
    kinds = [m[1] for m in _NETWORK.finditer(text)]
    if loras := loras_named(text):
        found["lora"] = ", ".join(loras)
    if "hypernet" in kinds:
        found["hypernet"] = ""
    if emb := embeddings_named(info):
        found["embedding"] = ", ".join(emb)
    if re.search(r"\[[^\[\]]*:[^\[\]]*\]", text) and re.search(r"\[[^\]]*:", _NETWORK.sub("", text)):
        found["prompt_editing"] = ""
    if re.search(r"\[[^\[\]]*\|[^\[\]]*\]", text):
        found["alternation"] = ""
    if re.search(r"\bAND\b", text):
        found["and"] = ""
    hires = [k for k in f if k.startswith("Hires") or k == "First pass size"]
    if hires:
        found["hires"] = ", ".join(hires)
    elif f.get("Denoising strength", "0") not in ("0", "0.0") or "Mask blur" in f or "Conditional mask weight" in f:
        found["img2img"] = f.get("Denoising strength", "")
    if "VAE" in f or "VAE hash" in f:
        found["vae"] = f.get("VAE", f.get("VAE hash", ""))
    for name, key in (("ENSD", "ensd"), ("RNG", "rng"), ("Variation seed", "variation_seed"), ("Eta", "eta"),
                      ("Face restoration", "face_restoration")):
        if name in f:
            found[key] = f[name]
    if f.get("Seed resize from", "-1x-1") != "-1x-1":
        found["seed_resize"] = f["Seed resize from"]
    if f.get("Emphasis", "Original") != "Original":
        found["emphasis_mode"] = f["Emphasis"]
    other = []
    for key in f:
        ext = next((k for prefix, k in EXTENSIONS if key.startswith(prefix)), None)
        if ext == "xyz":
            found[ext] = f.get("X Type", "")
        elif ext:
            n = int(found.get(ext, "0").split()[0]) + 1
            found[ext] = f"{n} field{'s' if n > 1 else ''}"
        elif key not in META:
            other.append(key)
    if other:
        found["extension"] = ", ".join(other[:4]) + (f" … ({len(other)} fields)" if len(other) > 4 else "")
    if "Sampler" in f:
        found["sampler"] = f["Sampler"] + (f" + {f['Schedule type']}" if "Schedule type" in f else "")
    if "Schedule type" in f:
        found["schedule_type"] = f["Schedule type"]
    if "Model" not in f:
        found["no_model"] = f.get("Model hash", "(no hash)")
    if m := re.fullmatch(r"(\d+)x(\d+)", f.get("Size", "")):
        if int(m[1]) % 8 or int(m[2]) % 8:
            found["size_not_8"] = f["Size"]
    return found, other


# ------------------------------------------------------------------ the sandbox


def sandbox_env(root: Path) -> None:
    """This process's environment, pointed into ``root`` (before promptism reads any of it)."""
    home = root / "home"
    for sub in ("config", "data", "cache", "state", "hf", "run"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    for key in [k for k in os.environ if k.startswith(("PROMPTISM_", "XDG_", "HF_", "RAY_"))]:
        del os.environ[key]
    os.environ.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_DATA_HOME=str(home / "data"),
                      XDG_CACHE_HOME=str(home / "cache"), XDG_STATE_HOME=str(home / "state"),
                      PROMPTISM_CONFIG=str(home / "config.toml"), PROMPTISM_CACHE=str(root / "cache"),
                      PROMPTISM_STATE=str(home / "state" / "p"), PROMPTISM_RUNTIME=str(home / "run"),
                      PROMPTISM_SERVICE="off", HF_HOME=str(home / "hf"), HF_HUB_OFFLINE="1",
                      GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=str(home / "gitconfig"))
    (home / "config.toml").write_text("", encoding="utf-8")


def build_install(folder: Path, loras: list[str], embeddings: list[str]) -> None:
    """An A1111 install with a stand-in for tiny of each LoRA (kohya keys, rank 4) and each embedding (one vector)."""
    import torch
    from safetensors.torch import save_file

    from workshop.runner.models import load_pipeline, resolve

    pipe = load_pipeline(resolve("tiny"), torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    parts = [("lora_unet_", pipe.unet, lambda n: "attn" in n and n.rsplit(".", 1)[-1] in ("to_q", "to_k", "to_v")),
             ("lora_te_text_model_", pipe.text_encoder, lambda n: "self_attn" in n)]
    (folder / "models" / "Lora").mkdir(parents=True, exist_ok=True)
    (folder / "embeddings").mkdir(parents=True, exist_ok=True)
    for name in loras:  # as tests/test_loras.py's kohya_lora
        weights = {}
        for prefix, module, wanted in parts:
            for layer_name, layer in module.named_modules():
                if isinstance(layer, torch.nn.Linear) and wanted(layer_name):
                    key = prefix + layer_name.removeprefix("text_model.").replace(".", "_")
                    weights[key + ".lora_down.weight"] = torch.randn(4, layer.in_features, generator=generator) * 0.5
                    weights[key + ".lora_up.weight"] = torch.randn(layer.out_features, 4, generator=generator) * 0.5
                    weights[key + ".alpha"] = torch.tensor(4.0)
        save_file(weights, folder / "models" / "Lora" / f"{name}.safetensors")
    width = pipe.text_encoder.config.hidden_size
    for name in embeddings:  # as tests/test_embeddings.py's webui
        save_file({"emb_params": torch.randn(1, width, generator=generator)}, folder / "embeddings" / f"{name}.safetensors")


def png_with(text: str, size: tuple[int, int]) -> bytes:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 110, 130)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def one_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
    return " ".join(str(text).split())[:300]


# ------------------------------------------------------------------ one infotext


@dataclass
class Result:
    name: str
    outcome: str = ""
    features: dict[str, str] = field(default_factory=dict)
    unknown_fields: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # "LABEL (said|silent)"
    notes: list[str] = field(default_factory=list)  # what promptism's import and rerun say they leave out
    reason: str = ""  # REFUSED / FAILS_AT_RUN: where, and why
    misread: list[str] = field(default_factory=list)  # fields the import read otherwise than the infotext says
    imported: dict = field(default_factory=dict)  # what the import read (never printed: --json-out only)
    seconds: float = 0.0


def measure(info: Infotext, journal, work: Path, smoke: bool) -> Result:
    from journal import JournalError
    from journal.importing import experiment_from_sources, left_out, read_source

    from workshop.compose.grid import build_grid
    from workshop.compose.spec import spec_from
    from workshop.errors import PromptismError
    from workshop.runner.imported import remake
    from workshop.runner.options import resolve
    from workshop.service.api import JobRequest
    from workshop.service.executor import request_problem
    from workshop.settings import load_settings

    started = time.perf_counter()
    result = Result(info.name)
    result.features, result.unknown_fields = features_of(info)

    def done(outcome: str, reason: str = "") -> Result:
        result.outcome, result.reason, result.seconds = outcome, reason, round(time.perf_counter() - started, 2)
        return result

    size = (512, 512)
    if m := re.fullmatch(r"(\d+)x(\d+)", info.fields.get("Size", "")):
        if 0 < int(m[1]) * int(m[2]) <= 4096 * 4096:
            size = (int(m[1]), int(m[2]))
    png = work / f"{info.name}.png"
    png.write_bytes(png_with(info.raw, size))
    # 1. import (as `promptism import PNG --title T`)
    try:
        source = read_source(png)
        exp = journal.accept(experiment_from_sources([source], f"Infotext {info.name}"), allow_title_overlap=True)
    except (JournalError, PromptismError) as exc:
        return done("REFUSED", f"import: {one_line(exc)}")
    if note := left_out(source):
        result.notes.append(f"import: {note}")
    result.imported = {"source": source.info.source, "model": exp.model.id, "hash": exp.model.hash,
                       "seed": exp.images[0].seed, "params": {k: v for k, v in exp.params.items()}}
    result.misread = misread(info, exp)
    settings = load_settings()
    # 2. the job `promptism rerun N --model tiny` sends
    try:
        job = remake(exp, settings, model="tiny")
    except PromptismError as exc:
        return done("REFUSED", f"rerun: {one_line(exc)}")
    result.notes += [f"rerun: not applied: {n}" for n in job.left_out]
    # 3. the submit check, then the model's own checks
    request = JobRequest(kind="grid", journal=str(journal.path.absolute()), spec=job.spec, options=job.options)
    if problem := request_problem(request):
        return done("REFUSED", f"submit: {one_line(problem)}")
    from workshop.runner.execution import execute, prepare

    try:
        options = resolve(job.spec, job.options, settings)
        grid = build_grid(spec_from(job.spec))
        prepare(grid, options, journal)
    except PromptismError as exc:
        return done("REFUSED", f"model check: {one_line(exc)}")
    except Exception as exc:  # noqa: BLE001 - a check that crashes is a bug: said as such
        return done("FAILS_AT_RUN", f"prepare crashed: {exc.__class__.__name__}: {one_line(exc)}")
    # 4. a short real run on tiny: the encoder, LoRAs and embeddings applied once
    if smoke:
        small = options.model_copy(update={"steps": min(options.steps or 4, 4), "size": (64, 64), "clip": "none"})
        try:
            execute(grid, small, journal)
        except PromptismError as exc:
            return done("FAILS_AT_RUN", f"run (4 steps, 64x64, tiny): {one_line(exc)}")
        except Exception as exc:  # noqa: BLE001
            last = traceback.extract_tb(exc.__traceback__)[-1]
            return done("FAILS_AT_RUN", f"run crashed: {exc.__class__.__name__}: {one_line(exc)} "
                                        f"({Path(last.filename).name}:{last.lineno})")
    said = " ".join(result.notes)
    for key in result.features:
        feature = FEATURES[key]
        if feature.status == DROPPED:
            loud = bool(feature.said and re.search(feature.said, said, re.IGNORECASE)) or (
                key not in ("hires", "img2img") and "fields promptism does not apply" in said)  # rerun's one note
            # naming every field it does not apply (the first 8, then how many more)
            detail = result.features[key]
            result.dropped.append(f"{feature.label}{f' [{detail}]' if detail else ''} ({'said' if loud else 'silent'})")
    for wrong in result.misread:  # read otherwise than A1111 reads it: made otherwise (the model: tiny stands in)
        if not wrong.startswith(("Model:", "Model hash:")):
            result.dropped.append(f"misread {wrong} (silent)")
    for note in job.left_out:  # what rerun says it leaves out that no feature above accounts for
        if not re.search(r"denoising strength|Clip skip|fields promptism does not apply|as asked: A1111 made it",
                         note, re.IGNORECASE):  # (a size A1111 rounded down is made as it made it: no drop; a hires
            # fix made otherwise — another upscaler, no crop — is one)
            result.dropped.append(f"{note} (said)")
    return done("RUNS_WITH_DROPPED" if result.dropped else "RUNS_AS_WRITTEN")


#: A1111 1.9+'s default schedule of a sampler, which "Schedule type: Automatic" means (its samplers_k_diffusion
#: options). A1111 writes the resolved label ("Karras") into a PNG, but params.txt is written before sampling and keeps
#: "Automatic" — and A1111 reads "Automatic" back as this schedule.
DEFAULT_SCHEDULE = {"DPM++ 2M": "Karras", "DPM++ SDE": "Karras", "DPM++ 2M SDE": "Exponential",
                    "DPM++ 2M SDE Heun": "Exponential", "DPM++ 2S a": "Karras", "DPM++ 3M SDE": "Exponential",
                    "DPM2": "Karras", "DPM2 a": "Karras", "Restart": "Karras"}


def misread(info: Infotext, exp) -> list[str]:
    """The fields promptism's import read otherwise than the infotext says (by A1111's own splitting): each named
    with what was expected and what was read — prompts by their length only (they are never printed)."""
    from journal.samplers import a1111_sampler

    f, params, out = info.fields, exp.params, []

    def differs(what: str, expected, got, private: bool = False) -> None:
        if expected != got:
            out.append(f"{what}: {len(expected)} characters expected, {len(got or '')} read" if private else
                       f"{what}: {expected!r} expected, {got!r} read")

    differs("prompt", info.prompt, (exp.prompt or "").strip(), private=True)
    differs("negative prompt", info.negative, (exp.negative_prompt or "").strip(), private=True)
    number = lambda v, kind: kind(v) if v is not None and re.fullmatch(r"-?[\d.]+", v) else None  # noqa: E731
    differs("Seed", number(f.get("Seed"), int), exp.images[0].seed)
    differs("Steps", number(f.get("Steps"), int), params.get("steps"))
    differs("CFG scale", number(f.get("CFG scale"), float), params.get("guidance"))
    if m := re.fullmatch(r"(\d+)x(\d+)", f.get("Size", "")):
        differs("Size", (int(m[1]), int(m[2])), (params.get("width"), params.get("height")))
    if "Sampler" in f:
        schedule = f.get("Schedule type")
        if (schedule or "").lower() == "automatic":
            schedule = DEFAULT_SCHEDULE.get(f["Sampler"], schedule)
        differs("Sampler", a1111_sampler(f["Sampler"], schedule), params.get("sampler"))
    differs("Clip skip", number(f.get("Clip skip"), int), params.get("clip_skip"))
    if "Model" in f:
        differs("Model", f["Model"], exp.model.id)
    if "Model hash" in f:
        differs("Model hash", f["Model hash"], exp.model.hash)
    return out


# ------------------------------------------------------------------ the report


def report(results: list[Result], infos: dict[str, Infotext], case_probe: dict) -> dict:
    counts = Counter(r.outcome for r in results)
    print(f"\n{len(results)} real AUTOMATIC1111 infotexts (tests/bench/infotexts/), made again on tiny:\n")
    for outcome in ORDER:
        print(f"  {outcome:18} {counts.get(outcome, 0):3}")
    uses = Counter(key for r in results for key in r.features)
    print("\nfeature                                                       used  promptism")
    for key, feature in FEATURES.items():
        if not uses.get(key):
            continue
        status = feature.status
        if status == DROPPED:
            loud = sum(1 for r in results if any(d.startswith(feature.label) and d.endswith("(said)") for d in r.dropped))
            quiet = sum(1 for r in results if any(d.startswith(feature.label) and d.endswith("(silent)") for d in r.dropped))
            status += f" (said {loud}, silent {quiet}; the rest refused first)" if loud + quiet < uses[key] else \
                f" (said {loud}, silent {quiet})"
        print(f"  {feature.label[:58]:58} {uses[key]:5}  {status}: {feature.note}")
    samplers = Counter(r.features.get("sampler", "(none)") for r in results)
    print("\nsamplers: " + "; ".join(f"{s} ×{n}" for s, n in samplers.most_common()))
    unknown = Counter(k for r in results for k in r.unknown_fields)
    if unknown:
        print("other fields (extensions, scripts, options): " + ", ".join(f"{k} ×{n}" for k, n in unknown.most_common()))
    print("\nper infotext:")
    for r in results:
        what = r.reason if r.outcome in ("REFUSED", "FAILS_AT_RUN") else "; ".join(r.dropped)
        print(f"  {r.name}  {r.outcome:17} {what}")
    refused = [r for r in results if r.outcome == "REFUSED"]
    if refused:
        print("\nrefused, why:")
        for reason, n in Counter(re.sub(r'"[^"]*"|\d+x\d+|#\d+', "…", r.reason) for r in refused).most_common():
            print(f"  {n:3}  {reason}")
    failing = [r for r in results if r.outcome == "FAILS_AT_RUN"]
    if failing:
        print("\nfailed at run (accepted by every check):")
        for r in failing:
            print(f"  {r.name}  {r.reason}")
    misreads = [r for r in results if r.misread]
    if misreads:
        print("\nread by the import otherwise than A1111 reads the infotext:")
        for r in misreads:
            print(f"  {r.name}  " + "; ".join(r.misread))
    if case_probe["mismatched"]:
        print(f"\nembedding names written in more than one case across the corpus: {case_probe['spellings']}; "
              f"with one file per embedding, promptism finds {case_probe['found']} (A1111 matches names through "
              "CLIP's lowercased tokens, so one file serves every spelling)")
    return {"infotexts": len(results), "outcomes": {o: counts.get(o, 0) for o in ORDER},
            "misread": {r.name: r.misread for r in misreads},
            "features": {key: {"label": FEATURES[key].label, "used": uses[key], "status": FEATURES[key].status,
                               "note": FEATURES[key].note} for key in FEATURES if uses.get(key)},
            "samplers": dict(samplers), "other_fields": dict(unknown), "embedding_case_probe": case_probe,
            "results": [r.__dict__ for r in results]}


def embedding_case_probe(names: list[str]) -> dict:
    """Embedding names the corpus spells in more than one case, and which spellings promptism's own lookup finds
    when the install has one file per embedding (named as its first spelling)."""
    from workshop.runner.embeddings import named_in

    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(name.casefold(), []).append(name)
    mixed = {k: v for k, v in groups.items() if len(set(v)) > 1}
    found = {}
    for spellings in mixed.values():
        files = {spellings[0]: object()}  # one file, named as the first spelling
        for spelling in dict.fromkeys(spellings):
            found[spelling] = bool(named_in([f"worst quality, {spelling}, lowres"], files))
    return {"mismatched": bool(mixed), "spellings": {k: sorted(set(v)) for k, v in mixed.items()},
            "found": found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="the infotexts whose file name contains this (e.g. 012)")
    parser.add_argument("--no-smoke", action="store_true", help="skip the 4-step runs on tiny (checks only)")
    parser.add_argument("--keep", action="store_true", help="keep the sandbox (its path is printed)")
    parser.add_argument("--list", action="store_true", help="print each infotext's features and stop (no sandbox)")
    parser.add_argument("--json-out", type=Path, help="write everything as JSON here (it holds the prompts' "
                        "imported fields, not the prompts)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    files = sorted(p for p in CORPUS.glob("*.txt") if not args.only or args.only in p.name)
    infos = {p.stem: split_infotext(p.stem, p.read_text(encoding="utf-8")) for p in files}
    if args.list:
        for name, info in infos.items():
            feats, other = features_of(info)
            print(name, json.dumps(feats, ensure_ascii=False), other or "")
        return
    root = Path(tempfile.mkdtemp(prefix="promptism-infotexts-"))
    sandbox_env(root)
    started = time.perf_counter()
    try:
        loras = sorted({n for i in infos.values() for n in loras_named(i.prompt + "\n" + i.negative)})
        embeddings = sorted({n for i in infos.values() for n in embeddings_named(i)})
        install = root / "webui"
        build_install(install, loras, embeddings)
        Path(os.environ["PROMPTISM_CONFIG"]).write_text(f'a1111 = "{install}"\n', encoding="utf-8")
        print(f"sandbox {root}: an A1111 install with {len(loras)} LoRA and {len(embeddings)} embedding stand-ins",
              file=sys.stderr)
        from journal import Journal

        journal = Journal.open(root / "journal", create=True)
        work = root / "png"
        work.mkdir()
        results = []
        for info in infos.values():
            result = measure(info, journal, work, smoke=not args.no_smoke)
            print(f"{info.name}: {result.outcome} ({result.seconds} s)", file=sys.stderr)
            results.append(result)
        out = report(results, infos, embedding_case_probe([n for i in infos.values() for n in embeddings_named(i)]))
        out["seconds"] = round(time.perf_counter() - started, 1)
        out["smoke"] = not args.no_smoke
        print(f"\n{out['seconds']} s")
        if args.json_out:
            args.json_out.write_text(json.dumps(out, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    finally:
        if args.keep:
            print(f"sandbox kept: {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

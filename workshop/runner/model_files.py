"""The model files an AUTOMATIC1111 or ComfyUI install keeps — single-file checkpoints, LoRAs, textual-inversion
embeddings, VAEs — found in their usual subfolders of the folders the ``a1111`` and ``comfyui`` settings name, and
told apart by A1111's names: a file's name without its suffix, its path under its kind's folder, its checkpoint
title ``name.safetensors [shorthash]``, or its hash as an infotext writes it (``Model hash:``: the first 10 hex
digits of the file's sha256; 8 of them for the old hash of pre-2023 images).

Hashing a checkpoint reads gigabytes, so a file's hashes are kept in the cache folder by path, size and modification
time (A1111 does the same), and listings show only hashes already known. Torch-free."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from journal.text import quoted

from ..errors import RunError
from ..paths import cache_dir, write_private
from ..settings import Settings, config_file

KINDS = ("checkpoint", "lora", "embedding", "vae")
# each install's folders for each kind, under the folder its setting names
FOLDERS = {
    "a1111": {"checkpoint": ("models/Stable-diffusion",), "lora": ("models/Lora", "models/LyCORIS"),
              "embedding": ("embeddings",), "vae": ("models/VAE",)},
    "comfyui": {"checkpoint": ("models/checkpoints",), "lora": ("models/loras",), "embedding": ("models/embeddings",),
                "vae": ("models/vae",)},
}
SUFFIXES = {"checkpoint": (".safetensors", ".ckpt"), "lora": (".safetensors", ".ckpt", ".pt"),
            "embedding": (".safetensors", ".pt", ".bin"), "vae": (".safetensors", ".ckpt", ".pt")}
PICKLED = (".ckpt", ".pt", ".bin", ".pth")  # unpickling runs code: loaded only with allow_pickle
_HASH_TEXT = re.compile(r"^(?:[0-9a-f]{8}|[0-9a-f]{10}|[0-9a-f]{64})$")
_TITLE = re.compile(r"^(?P<name>.+?)\s*\[(?P<hash>[0-9a-fA-F]{8,64})\]$")
OLD_HASH_AT, OLD_HASH_LENGTH = 0x100000, 0x10000  # A1111's old model hash: sha256 of 64 KiB at 1 MiB, 8 hex digits


@dataclass(frozen=True)
class ModelFile:
    """One file of an install: its kind, the name A1111 shows (its path under its kind's folder, less the suffix),
    the file, and which install (setting) it came from."""

    kind: str
    name: str
    path: Path
    install: str

    @property
    def pickled(self) -> bool:
        return self.path.suffix.lower() in PICKLED

    def title(self) -> str:
        """A1111's checkpoint title: the file's name under its folder, and its short hash where it is known."""
        known = cached_hashes(self.path)
        return f"{self.name}{self.path.suffix} [{known[0][:10]}]" if known else f"{self.name}{self.path.suffix}"


def installs(settings: Settings) -> tuple[dict[str, Path], list[str]]:
    """The installs the settings name that are there, and a line for each that is not (left out, not an error: a
    disk not mounted just now)."""
    found, unusable = {}, []
    for install in FOLDERS:
        named = getattr(settings, install)
        if named is None:
            continue
        folder = Path(named).expanduser()
        if folder.is_dir():
            found[install] = folder
        else:
            why = "is not a folder" if folder.exists() else "does not exist (a disk not mounted?)"
            unusable.append(f"{install}: {folder} {why}; it is left out (fix or remove it in {config_file()})")
    return found, unusable


def model_files(settings: Settings, kind: str | None = None) -> list[ModelFile]:
    """Every file of ``kind`` (every kind: None) in the installs the settings name, by install, kind and name."""
    found = []
    for install, root in installs(settings)[0].items():
        for each in KINDS if kind is None else (kind,):
            for sub in FOLDERS[install][each]:
                folder = root / sub
                if not folder.is_dir():
                    continue
                for path in sorted(folder.rglob("*")):
                    if path.suffix.lower() in SUFFIXES[each] and path.is_file() and not path.name.startswith("."):
                        name = path.relative_to(folder).with_suffix("").as_posix()
                        found.append(ModelFile(each, name, path, install))
    return found


def find(settings: Settings, kind: str, name: str) -> ModelFile:
    """The file of ``kind`` that ``name`` means (``find_all``); RunError naming what there is where it means none or
    several."""
    matches = find_all(settings, kind, name)
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise RunError(f"{kind} {quoted(name)} names {len(matches)} files ({', '.join(str(m.path) for m in matches[:3])}): "
                       "give its path under its folder")
    files = model_files(settings, kind)
    where = ", ".join(sorted(f.name for f in files)[:12]) or f"none (the {kind} folders of the a1111 / comfyui settings)"
    raise RunError(f"no {kind} {quoted(name)} here; found: {where} (see `promptism models`)")


def find_all(settings: Settings, kind: str, name: str) -> list[ModelFile]:
    """The files of ``kind`` that ``name`` may mean: its name (``detail/foo``), its file name (``foo.safetensors``),
    its bare name (``foo`` for ``detail/foo``), A1111's title (``foo.safetensors [abcdef1234]``) or its hash alone."""
    files = model_files(settings, kind)
    if not files:
        return []
    wanted = name.strip()
    title = _TITLE.match(wanted)
    if title:
        wanted = title["name"].strip()
    stem = wanted[: -len(suffix)] if (suffix := Path(wanted).suffix.lower()) in SUFFIXES[kind] else wanted
    matches = ([f for f in files if f.name == stem]
               or [f for f in files if "/" not in stem and f.name.rpartition("/")[2] == stem])
    if not matches and (short := (title["hash"] if title else wanted).lower()) and _HASH_TEXT.match(short):
        matches = [f for f in files if _hash_matches(f, short)]
    return matches


def _hash_matches(file: ModelFile, short: str) -> bool:
    """Whether ``short`` (10 or 64 hex digits: sha256; 8: A1111's old hash) is the file's; hashes the file if need be."""
    sha256, old = hashes(file.path)
    return old == short if len(short) == 8 else sha256.startswith(short)


def short_hash(path: Path) -> str:
    """A1111's model hash of a file: the first 10 hex digits of its sha256."""
    return hashes(path)[0][:10]


def hashes(path: Path) -> tuple[str, str]:
    """The file's sha256 (hex) and A1111's old 8-digit hash, from the cache while its size and time are unchanged."""
    if known := cached_hashes(path):
        return known
    digest, old = hashlib.sha256(), hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(OLD_HASH_AT)
        old.update(handle.read(OLD_HASH_LENGTH))
        handle.seek(0)
        while block := handle.read(1 << 20):
            digest.update(block)
    found = (digest.hexdigest(), old.hexdigest()[:8])
    _remember(path, found)
    return found


def addnet_hash(path: Path) -> str:
    """A1111's hash of a safetensors LoRA (kohya's, as the Additional Networks extension made it): the sha256 of what
    follows the file's header, the tensors alone; its ``Lora hashes:`` writes the first 12 hex digits (its other
    files, and embeddings, are hashed whole: ``hashes``). Cached like the others."""
    key = "addnet\0" + _key(path)
    if isinstance(known := _read_cache().get(key), str):
        return known
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(8 + int.from_bytes(handle.read(8), "little"))
        while block := handle.read(1 << 20):
            digest.update(block)
    _store(key, digest.hexdigest())
    return digest.hexdigest()


def same_file(path: Path, short: str) -> bool:
    """Whether ``short`` (hex digits an infotext or a run recorded) is the start of the file's sha256 or, for a
    safetensors file, of A1111's LoRA hash (``addnet_hash``)."""
    short = short.lower()
    return hashes(path)[0].startswith(short) or (path.suffix.lower() == ".safetensors" and addnet_hash(path).startswith(short))


def _cache_file() -> Path:
    return cache_dir() / "hashes.json"


def _key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"


def _read_cache() -> dict:
    try:
        doc = json.loads(_cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or unreadable: hashed again
        return {}
    return doc if isinstance(doc, dict) else {}


def cached_hashes(path: Path) -> tuple[str, str] | None:
    value = _read_cache().get(_key(path))
    ok = isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)
    return (value[0], value[1]) if ok else None


def _remember(path: Path, found: tuple[str, str]) -> None:
    _store(_key(path), list(found))


def _store(key: str, value) -> None:
    doc = _read_cache()
    doc[key] = value
    try:
        os.makedirs(_cache_file().parent, exist_ok=True)
        write_private(_cache_file(), json.dumps(doc).encode("utf-8"))
    except OSError:  # a cache that cannot be written costs a hash next time, nothing else
        pass

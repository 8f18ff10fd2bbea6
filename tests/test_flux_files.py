"""FLUX.1 single-file checkpoints (issue 26), loaded offline: a small Flux written as ComfyUI's all-in-one checkpoint
and as a models/unet file of the transformer alone (tests/flux_export.py) makes the pictures of its diffusers folder,
the rest read from a config folder beside it or the local Hugging Face cache; dev is told from schnell and each gets
its defaults; Fill and Depth, a truncated file and a transformer with nothing to complete it are one line each.

diffusers' Flux conversion takes every Flux to be 3072 wide, so the model is 530M parameters (2 GB): built once for
the module, its runs are the slow tests (tests/conftest.py SLOW)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from helpers import run_cli
from journal import Journal
from workshop.runner.runs import list_runs

COMMON = ("a red circle", "--steps", "2", "--size", "64x64", "--guidance", "3.5", "--seeds", "1", "--clip", "none")


def _linked(source: Path, target: Path, *ignore: str) -> None:
    """``source``'s tree at ``target``, its files hard links (2 GB of weights, not copied)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*ignore), copy_function=os.link)


@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    """The small FLUX.1 dev as a diffusers folder, and in an A1111 install's models/Stable-diffusion as ComfyUI's
    all-in-one checkpoint (its config, no weights, beside it as NAME.config/ with T5's tokenizer) and as a models/unet
    file (the transformer alone, bare keys)."""
    from safetensors.torch import save_file

    from flux_export import pipeline_to_flux, tiny_flux

    root = tmp_path_factory.mktemp("flux")
    pipe = tiny_flux(root / "folder")
    models = root / "webui" / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    save_file(pipeline_to_flux(pipe), models / "tinyflux.safetensors")
    _linked(root / "folder", models / "tinyflux.config", "*.safetensors", "_*")
    unet = root / "unet" / "tinyflux-unet.safetensors"
    unet.parent.mkdir()
    save_file(pipeline_to_flux(pipe, vae=False, clip=False, t5=False, prefix=""), unet)
    del pipe
    return {"folder": root / "folder", "file": models / "tinyflux.safetensors", "unet": unet}


def images(journal: Path) -> dict[str, bytes]:
    """Each run's image, by the model it credits."""
    return {r.record.model.info.id: r.image(r.record.cells[0]).read_bytes() for r in list_runs(Journal.open(journal))}


def test_a_flux_checkpoint_makes_the_pictures_of_its_diffusers_folder_and_reruns_byte_for_byte(flux, tmp_path, capsys):
    from workshop.runner.models import resolve

    for model in (flux["file"], flux["folder"]):  # (FLUX.1 dev's defaults, file and folder alike)
        assert (resolve(str(model)).steps, resolve(str(model)).guidance) == (28, 3.5)
    Path(os.environ["PROMPTISM_CONFIG"]).write_text(f'a1111 = "{flux["file"].parents[2]}"\n', encoding="utf-8")
    j = str(tmp_path / "j")
    code, out, err = run_cli(capsys, "generate", *COMMON, "--model", "tinyflux", "--accept", "--title", "Flux",
                             "--journal", j)
    assert code == 0 and "tinyflux" in err and str(flux["file"]) not in out + err, out + err
    assert run_cli(capsys, "generate", *COMMON, "--journal", j, "--model", str(flux["folder"]))[0] == 0
    made = images(Path(j))
    assert made["tinyflux"] == made["folder"]
    run = next(r for r in list_runs(Journal.open(Path(j))) if r.record.model.kind == "file")
    assert run.record.model.info.pipeline == "FluxPipeline"
    code, out, err = run_cli(capsys, "rerun", "1", "--verify", "--journal", j)
    assert code == 0 and "identical" in out + err, out + err


def test_a_flux_transformer_alone_takes_the_rest_from_its_config_folder_or_the_hugging_face_cache(flux, tmp_path, capsys):
    """A models/unet file: with a diffusers folder beside it as NAME.config/ (its transformer's weights left out), and
    with nothing beside it where the cached FLUX.1-dev repo has the VAE and text encoders; refused in one line where
    neither is there."""
    j = tmp_path / "j"
    beside = tmp_path / "beside.safetensors"
    os.link(flux["unet"], beside)
    _linked(flux["folder"], tmp_path / "beside.config", "_*")
    for weights in (tmp_path / "beside.config" / "transformer").glob("*.safetensors"):
        weights.unlink()  # (the transformer is the file's)
    lone = tmp_path / "lone.safetensors"
    os.link(flux["unet"], lone)
    code, _, err = run_cli(capsys, "generate", *COMMON, "--journal", str(j), "--model", str(lone))
    assert code == 1 and err.strip() == (
        "promptism: lone.safetensors holds FLUX.1 dev's transformer alone (a models/unet file) without its VAE, CLIP-L "
        "and T5: put the model's diffusers folder (with their weights) beside it as lone.config/, or have "
        "black-forest-labs/FLUX.1-dev in the Hugging Face cache"), err
    repo = Path(os.environ["HF_HUB_CACHE"]) / "models--black-forest-labs--FLUX.1-dev"
    _linked(flux["folder"], repo / "snapshots" / "0123456789abcdef", "_*")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123456789abcdef")
    for model in (beside, lone, flux["folder"]):
        code, out, err = run_cli(capsys, "generate", *COMMON, "--journal", str(j), "--model", str(model))
        assert code == 0, out + err
    made = images(j)
    assert made["beside"] == made["lone"] == made["folder"]


def test_a_flux_file_that_cannot_load_is_one_line_saying_why(flux, tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.torch import save_file

    truncated = tmp_path / "cut.safetensors"
    with open(flux["file"], "rb") as handle:
        truncated.write_bytes(handle.read(300_000))
    no_tokenizer = tmp_path / "t5.safetensors"  # a config beside it without T5's tokenizer
    os.link(flux["file"], no_tokenizer)
    _linked(flux["file"].with_name("tinyflux.config"), tmp_path / "t5.config", "tokenizer_2")
    incomplete = tmp_path / "part.safetensors"
    with safe_open(str(flux["file"]), "pt") as handle:
        state = {k: handle.get_tensor(k) for k in handle.keys() if k != "model.diffusion_model.final_layer.linear.weight"}
    save_file(state, incomplete)
    del state
    _linked(flux["file"].with_name("tinyflux.config"), tmp_path / "part.config")
    for path, said in (
        (truncated, "cut.safetensors is a damaged safetensors file ("),
        (no_tokenizer, "t5.safetensors is FLUX.1 dev, whose T5 tokenizer is not here: put T5's tokenizer "
                       "(tokenizer.json or spiece.model, as in black-forest-labs/FLUX.1-dev's tokenizer_2/) in "
                       "t5.config/tokenizer_2/ beside it"),
        (incomplete, "part.safetensors is an incomplete checkpoint (its weight "
                     "'model.diffusion_model.final_layer.linear.weight' is missing): copy it again"),
    ):
        code, _, err = run_cli(capsys, "generate", *COMMON, "--journal", str(tmp_path / "j"), "--model", str(path))
        assert code == 1 and said in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "j").exists()


def _header_file(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    """A safetensors file of FLUX.1's tensor names at ``shapes`` (zeros: what a header tells is what is tested)."""
    import torch
    from safetensors.torch import save_file

    save_file({key: torch.zeros(shape) for key, shape in shapes.items()}, path)
    return path


FLUX_KEY = "model.diffusion_model.double_blocks.0.img_attn.norm.key_norm.scale"


def test_flux_fill_and_depth_are_refused_in_one_line_and_dev_and_schnell_get_their_defaults(tmp_path, capsys):
    from workshop.runner.models import resolve

    guided = {FLUX_KEY: (128,), "model.diffusion_model.guidance_in.in_layer.bias": (8,)}
    fill = _header_file(tmp_path / "flux1-fill-dev.safetensors", {**guided, "model.diffusion_model.img_in.weight": (8, 384)})
    depth = _header_file(tmp_path / "flux1-depth-dev.safetensors", {**guided, "model.diffusion_model.img_in.weight": (8, 128)})
    for path, said in ((fill, "flux1-fill-dev.safetensors is FLUX.1 Fill (it paints into a masked image), which takes a "
                              "control image with its prompt: promptism draws from a prompt alone; pass a FLUX.1 dev or "
                              "schnell file"),
                       (depth, "flux1-depth-dev.safetensors is FLUX.1 Depth (it follows a depth map), which takes a "
                               "control image")):
        code, _, err = run_cli(capsys, "generate", "x", "--journal", str(tmp_path / "j"), "--model", str(path))
        assert code == 1 and said in err and len(err.strip().splitlines()) == 1, err
    dev = _header_file(tmp_path / "flux1-dev.safetensors", {**guided, "model.diffusion_model.img_in.weight": (8, 64)})
    schnell = _header_file(tmp_path / "flux1-schnell.safetensors", {FLUX_KEY.removeprefix("model.diffusion_model."): (128,),
                                                                    "img_in.weight": (8, 64)})
    assert (resolve(str(dev)).steps, resolve(str(dev)).guidance) == (28, 3.5)
    assert (resolve(str(schnell)).steps, resolve(str(schnell)).guidance) == (4, 0.0)


def test_the_shipped_flux_configs_are_the_sizes_diffusers_knows_each_type_by():
    """Each shipped Flux transformer config, built full size on the meta device and written in the files' layout, is
    the type diffusers detects from a file's tensors (dev, schnell) at FLUX.1's 11.9B parameters."""
    from accelerate import init_empty_weights
    from diffusers import FluxTransformer2DModel
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    from flux_export import transformer_to_flux
    from workshop.runner.single_file_configs import TYPES

    for kind in ("flux-dev", "flux-schnell"):
        config = {k: v for k, v in TYPES[kind]["transformer/config.json"].items() if not k.startswith("_")}
        with init_empty_weights():
            model = FluxTransformer2DModel(**config)
        assert infer_diffusers_model_type(transformer_to_flux(model.state_dict())) == kind
        assert round(sum(p.numel() for p in model.parameters()) / 1e9, 1) == 11.9, kind

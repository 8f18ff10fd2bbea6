"""SD 3 single-file checkpoints (issue 26), loaded offline: a tiny SD 3 written as Stability's and ComfyUI's files are
(tests/sd3_export.py) makes the pictures of its diffusers folder, with its config beside it or in the local Hugging
Face cache; without T5 it says so; a file missing what it needs is one line."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from helpers import run_cli
from journal import Journal
from workshop.runner.model_files import short_hash
from workshop.runner.runs import list_runs

COMMON = ("a red circle", "--steps", "2", "--size", "64x64", "--clip", "none")


@pytest.fixture(scope="module")
def sd3(tmp_path_factory):
    """The tiny SD 3 as a diffusers folder (with T5, and a copy without it) and as single files in an A1111 install's
    models/Stable-diffusion, each with its config (no weights) beside it as NAME.config/."""
    from diffusers import StableDiffusion3Pipeline
    from safetensors.torch import save_file

    from sd3_export import pipeline_to_sd3, tiny_sd3

    root = tmp_path_factory.mktemp("sd3")
    pipe = tiny_sd3(root / "folder")
    StableDiffusion3Pipeline(**{**pipe.components, "text_encoder_3": None, "tokenizer_3": None}).save_pretrained(
        str(root / "folder-without-t5"))
    models = root / "webui" / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    configs = shutil.ignore_patterns("*.safetensors", "_*")
    for name, parts in (("tinysd3", {}), ("tinysd3_incl_clips", {"t5": False}), ("tinysd3_alone", {"clips": False, "t5": False})):
        save_file(pipeline_to_sd3(pipe, **parts), models / f"{name}.safetensors")
        shutil.copytree(root / "folder", models / f"{name}.config", ignore=configs)
    return {"folder": root / "folder", "without": root / "folder-without-t5", "file": models / "tinysd3.safetensors",
            "clips": models / "tinysd3_incl_clips.safetensors", "alone": models / "tinysd3_alone.safetensors"}


def images(journal: Path) -> dict[str, list[bytes]]:
    """Each run's images, by the model it credits (``pipeline`` too)."""
    return {f"{r.record.model.info.id} {r.record.model.info.pipeline}": [r.image(c).read_bytes() for c in r.record.cells]
            for r in list_runs(Journal.open(journal))}


def test_an_sd3_single_file_makes_the_pictures_of_its_diffusers_folder(sd3, tmp_path, capsys):
    j = tmp_path / "j"
    code, out, err = run_cli(capsys, "generate", *COMMON, "--seeds", "1-2", "--journal", str(j), "--model", str(sd3["file"]))
    assert code == 0 and "tinysd3" in err and str(sd3["file"]) not in out + err and "note:" not in err, out + err
    assert run_cli(capsys, "generate", *COMMON, "--seeds", "1-2", "--journal", str(j), "--model", str(sd3["folder"]))[0] == 0
    made = images(j)
    assert made["tinysd3 StableDiffusion3Pipeline"] == made["folder StableDiffusion3Pipeline"]
    assert len(set(made["folder StableDiffusion3Pipeline"])) == 2  # (two seeds, two pictures)
    run = next(r for r in list_runs(Journal.open(j)) if r.record.model.kind == "file")
    assert (run.record.model.info.id, run.record.model.info.hash) == ("tinysd3", short_hash(sd3["file"]))


def test_an_installs_sd3_file_loads_by_its_name_and_reruns_byte_for_byte(sd3, tmp_path, capsys):
    Path(os.environ["PROMPTISM_CONFIG"]).write_text(f'a1111 = "{sd3["file"].parents[2]}"\n', encoding="utf-8")
    j = str(tmp_path / "j")
    code, _, err = run_cli(capsys, "generate", *COMMON, "--model", "tinysd3", "--accept", "--title", "SD3", "--journal", j)
    assert code == 0, err
    code, out, err = run_cli(capsys, "rerun", "1", "--verify", "--journal", j)
    assert code == 0 and "identical" in out + err, out + err


def test_an_sd3_file_without_t5_loads_without_it_and_says_so(sd3, tmp_path, capsys):
    j = tmp_path / "j"
    code, out, err = run_cli(capsys, "generate", *COMMON, "--journal", str(j), "--model", str(sd3["clips"]))
    assert code == 0, out + err
    assert "note: tinysd3_incl_clips has no T5 text encoder: its prompts are read by its two CLIPs alone" in err
    for model in (sd3["without"], sd3["folder"]):
        assert run_cli(capsys, "generate", *COMMON, "--journal", str(j), "--model", str(model))[0] == 0
    made = images(j)  # the folder saved without T5 makes its pictures; T5 changes them
    assert made["tinysd3_incl_clips StableDiffusion3Pipeline (without T5)"] == \
        made["folder-without-t5 StableDiffusion3Pipeline (without T5)"] != made["folder StableDiffusion3Pipeline"]


def test_an_sd3_file_reads_its_config_and_missing_text_encoders_from_the_hugging_face_cache(sd3, tmp_path, capsys):
    """A file of the transformer and VAE alone (Stability's sd3_medium.safetensors) with no config beside it: the
    cached copy of the repo diffusers maps SD 3 to gives the configs, the CLIPs and T5 (the tiny SD 3's blocks are
    SD 3 medium's kind)."""
    lone = tmp_path / "lone.safetensors"
    shutil.copy(sd3["alone"], lone)
    j = tmp_path / "j"
    code, _, err = run_cli(capsys, "generate", *COMMON, "--journal", str(j), "--model", str(lone))
    assert code == 1 and err.strip() == (
        "promptism: lone.safetensors holds SD 3's transformer and VAE without its CLIP text encoders: pass the file that "
        "includes them (e.g. sd3_medium_incl_clips.safetensors), or put the model's diffusers folder beside it as "
        "lone.config/"), err
    repo = Path(os.environ["HF_HUB_CACHE"]) / "models--stabilityai--stable-diffusion-3-medium-diffusers"
    shutil.copytree(sd3["folder"], repo / "snapshots" / "0123456789abcdef", ignore=shutil.ignore_patterns("_*"))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123456789abcdef")
    assert run_cli(capsys, "generate", *COMMON, "--journal", str(j), "--model", str(lone))[0] == 0
    assert run_cli(capsys, "generate", *COMMON, "--journal", str(j), "--model", str(sd3["folder"]))[0] == 0
    made = images(j)
    assert made["lone StableDiffusion3Pipeline"] == made["folder StableDiffusion3Pipeline"]


def test_an_sd3_file_that_cannot_load_is_one_line_saying_why(sd3, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(sd3["file"].read_bytes()[:200_000])
    no_tokenizer = tmp_path / "t5.safetensors"  # T5's weights, and a config beside it without T5's tokenizer
    shutil.copy(sd3["file"], no_tokenizer)
    shutil.copytree(sd3["file"].with_name("tinysd3.config"), tmp_path / "t5.config")
    shutil.rmtree(tmp_path / "t5.config" / "tokenizer_3")
    transformer = tmp_path / "mmdit.safetensors"  # a models/unet file: the MMDiT alone
    save_file({k: v for k, v in load_file(sd3["file"]).items() if k.startswith("model.diffusion_model.")}, transformer)
    incomplete = tmp_path / "part.safetensors"
    state = load_file(sd3["file"])
    del state["model.diffusion_model.final_layer.linear.weight"]
    save_file(state, incomplete)
    shutil.copytree(sd3["file"].with_name("tinysd3.config"), tmp_path / "part.config")
    for path, said in (
        (truncated, "cut.safetensors is a damaged safetensors file ("),
        (no_tokenizer, "t5.safetensors has SD 3's T5 text encoder, whose tokenizer is not here: put T5's tokenizer "
                       "(tokenizer.json or spiece.model, as in stabilityai/stable-diffusion-3-medium-diffusers's "
                       "tokenizer_3/) in t5.config/tokenizer_3/ beside it"),
        (transformer, "mmdit.safetensors is an SD 3 transformer alone (no VAE), not a checkpoint: pass the checkpoint "
                      "it came with"),
        (incomplete, "part.safetensors is an incomplete checkpoint (its weight "
                     "'model.diffusion_model.final_layer.linear.weight' is missing): copy it again"),
    ):
        code, _, err = run_cli(capsys, "generate", *COMMON, "--journal", str(tmp_path / "j"), "--model", str(path))
        assert code == 1 and said in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "j").exists()
    shutil.copytree(sd3["file"].with_name("tinysd3.config") / "tokenizer_3", tmp_path / "t5.config" / "tokenizer_3")
    # the tokenizer back, it loads
    assert run_cli(capsys, "generate", *COMMON, "--journal", str(tmp_path / "j"), "--model", str(no_tokenizer))[0] == 0


def test_the_shipped_sd3_configs_are_the_sizes_diffusers_knows_each_type_by(tmp_path):
    """Each shipped SD 3 transformer config, built full size on the meta device and written in the files' layout, is
    the type diffusers detects from a file's tensors (SD 3 medium, 3.5 medium, 3.5 large), at its published size."""
    from accelerate import init_empty_weights
    from diffusers import SD3Transformer2DModel
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    from sd3_export import transformer_to_sd3
    from workshop.runner.single_file_configs import TYPES

    for kind, billions in (("sd3", 2.0), ("sd35_medium", 2.5), ("sd35_large", 8.1)):
        config = {k: v for k, v in TYPES[kind]["transformer/config.json"].items() if not k.startswith("_")}
        with init_empty_weights():
            model = SD3Transformer2DModel(**config)
        assert infer_diffusers_model_type(transformer_to_sd3(model.state_dict(), model.config)) == kind
        counted = (sum(p.numel() for p in model.parameters()), sum(t.numel() for t in model.state_dict().values()))
        assert billions in [round(n / 1e9, 1) for n in counted], (kind, counted)  # (with or without the position
        # embedding, a buffer: Stability's counts for 3.5 have it)

"""An AUTOMATIC1111 or ComfyUI install's model files (issue 26): found in their usual folders, named as A1111 names
them (name, file name, title with its short hash, the hash an infotext writes), hashed once."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from helpers import run_cli
from workshop.errors import RunError
from workshop.runner import model_files
from journal import Journal
from workshop.runner.model_files import find, hashes, model_files as files_of, short_hash
from workshop.runner.runs import list_runs
from workshop.settings import load_settings


def a_file(path: Path, size: int = 0x100000 + 0x10000 + 77, seed: int = 1) -> Path:
    """A file with distinct bytes everywhere, so both of A1111's hashes depend on it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = hashlib.sha256(str(seed).encode()).digest()
    path.write_bytes((block * (size // len(block) + 1))[:size])
    return path


@pytest.fixture
def installs(tmp_path):
    a1111, comfy = tmp_path / "stable-diffusion-webui", tmp_path / "ComfyUI"
    made = {
        "dreamy": a_file(a1111 / "models/Stable-diffusion/dreamy.safetensors", seed=1),
        "old": a_file(a1111 / "models/Stable-diffusion/sub/old.ckpt", seed=2),
        "detail": a_file(a1111 / "models/Lora/detail.safetensors", size=300, seed=3),
        "lyco": a_file(a1111 / "models/LyCORIS/lyco.safetensors", size=300, seed=4),
        "easyneg": a_file(a1111 / "embeddings/easyneg.pt", size=300, seed=5),
        "vae": a_file(a1111 / "models/VAE/mse.safetensors", size=300, seed=6),
        "comfy": a_file(comfy / "models/checkpoints/dreamy.safetensors", seed=7),
        "comfy_lora": a_file(comfy / "models/loras/detail2.safetensors", size=300, seed=8),
    }
    a_file(a1111 / "models/Stable-diffusion/notes.txt", size=10)  # not a model file
    Path(os.environ["PROMPTISM_CONFIG"]).write_text(f'a1111 = "{a1111}"\ncomfyui = "{comfy}"\n', encoding="utf-8")
    return made


def test_files_are_found_by_kind_in_both_installs(installs):
    found = {(f.kind, f.name, f.install) for f in files_of(load_settings())}
    assert found == {("checkpoint", "dreamy", "a1111"), ("checkpoint", "sub/old", "a1111"), ("lora", "detail", "a1111"),
                     ("lora", "lyco", "a1111"), ("embedding", "easyneg", "a1111"), ("vae", "mse", "a1111"),
                     ("checkpoint", "dreamy", "comfyui"), ("lora", "detail2", "comfyui")}


def test_a1111s_hashes_are_the_sha256_prefix_and_the_old_64_kib_one(installs):
    path = installs["dreamy"]
    data = path.read_bytes()
    assert short_hash(path) == hashlib.sha256(data).hexdigest()[:10]
    assert hashes(path)[1] == hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]


def test_a_name_finds_its_file_as_a1111_writes_it(installs):
    settings = load_settings()
    lora = find(settings, "lora", "detail")
    assert lora.path == installs["detail"]
    assert find(settings, "lora", "detail.safetensors").path == installs["detail"]
    assert find(settings, "checkpoint", "sub/old").path == installs["old"]
    assert find(settings, "checkpoint", "old.ckpt").path == installs["old"]  # its bare name: one file has it
    old = hashes(installs["old"])
    assert find(settings, "checkpoint", f"sub/old.ckpt [{old[0][:10]}]").path == installs["old"]
    assert find(settings, "checkpoint", old[0][:10]).path == installs["old"]  # `Model hash:` of a new infotext
    assert find(settings, "checkpoint", old[1]).path == installs["old"]  # …and of an old one
    assert find(settings, "checkpoint", old[0]).path == installs["old"]  # the full sha256


def test_a_name_of_two_files_or_none_is_one_line_naming_what_there_is(installs):
    with pytest.raises(RunError, match=r"checkpoint 'dreamy' names 2 files .*give its path"):
        find(load_settings(), "checkpoint", "dreamy")
    with pytest.raises(RunError) as refused:
        find(load_settings(), "lora", "nosuch")
    assert "no lora 'nosuch' here; found: detail, detail2, lyco" in str(refused.value)
    with pytest.raises(RunError, match="no embedding '0123456789' here"):
        find(load_settings(), "embedding", "0123456789")


def test_a_hash_is_read_from_the_cache_while_the_file_is_unchanged(installs):
    path = installs["detail"]
    first = hashes(path)
    cache = model_files._cache_file()
    doc = json.loads(cache.read_text(encoding="utf-8"))
    key = model_files._key(path)
    assert oct(cache.stat().st_mode & 0o777) == "0o600" and doc[key] == list(first)
    doc[key] = ["f" * 64, "ffffffff"]  # what the cache says is what is used …
    cache.write_text(json.dumps(doc), encoding="utf-8")
    assert hashes(path) == ("f" * 64, "ffffffff")
    os.utime(path, ns=(1, 1))  # … until the file changes
    assert hashes(path) == first


def test_models_lists_the_installs_files_by_kind_with_titles(installs, capsys):
    known = short_hash(installs["dreamy"])
    code, out, err = run_cli(capsys, "models", "--json")
    assert code == 0, err
    rows = {(r["kind"], r["id"], r.get("install")): r for r in json.loads(out)}
    assert rows[("checkpoint", "dreamy", "a1111")]["title"] == f"dreamy.safetensors [{known}]"
    assert rows[("checkpoint", "sub/old", "a1111")]["title"] == "sub/old.ckpt"  # not hashed for a listing
    assert {("lora", "detail", "a1111"), ("embedding", "easyneg", "a1111"), ("vae", "mse", "a1111"),
            ("lora", "detail2", "comfyui")} <= set(rows)
    code, out, err = run_cli(capsys, "models")
    assert code == 0 and f"dreamy.safetensors [{known}]" in out and "embedding" in out, err


def test_an_install_that_is_not_there_is_named_and_left_out(tmp_path, capsys):
    config = Path(os.environ["PROMPTISM_CONFIG"])
    config.write_text(f'a1111 = "{tmp_path / "nowhere"}"\n', encoding="utf-8")
    code, out, err = run_cli(capsys, "models")
    assert code == 0 and "tiny" in out
    assert err.strip() == (f"promptism: a1111: {tmp_path / 'nowhere'} does not exist (a disk not mounted?); it is left "
                           f"out (fix or remove it in {config})")


# -- single-file checkpoints ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """The tiny SD pipeline as an A1111 user has a model: one original-layout .safetensors in models/Stable-diffusion,
    with its (tiny) diffusers config beside it as NAME.config/ — a full-size file would load with the shipped one."""
    import shutil

    import torch
    from safetensors.torch import save_file

    from ldm_export import pipeline_to_ldm
    from workshop.runner.models import load_pipeline, resolve

    tiny = resolve("tiny")
    folder = tmp_path_factory.mktemp("webui") / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    save_file(pipeline_to_ldm(load_pipeline(tiny, torch.device("cpu")), "sd1"), folder / "tinyckpt.safetensors")
    shutil.copytree(tiny.path, folder / "tinyckpt.config", ignore=shutil.ignore_patterns("*.safetensors"))
    return folder / "tinyckpt.safetensors"


def test_a_single_file_checkpoint_makes_the_pictures_of_its_diffusers_folder(tiny_checkpoint, tmp_path, capsys):
    j = str(tmp_path / "j")
    common = ("a red circle", "--steps", "2", "--seeds", "1-2", "--clip", "none", "--journal", j)
    code, out, err = run_cli(capsys, "generate", *common, "--model", str(tiny_checkpoint))
    assert code == 0 and "tinyckpt on CPU" in out + err and str(tiny_checkpoint) not in out + err, out + err
    assert run_cli(capsys, "generate", *common, "--model", "tiny")[0] == 0
    runs = list_runs(Journal.open(tmp_path / "j"))  # (two runs of one second: their ids do not tell their order)
    from_file, from_folder = sorted(runs, key=lambda r: r.record.model.kind != "file")
    assert [from_file.image(c).read_bytes() for c in from_file.record.cells] == \
        [from_folder.image(c).read_bytes() for c in from_folder.record.cells]
    model = from_file.record.model
    assert (model.kind, model.info.id, model.info.hash) == ("file", "tinyckpt", short_hash(tiny_checkpoint))
    assert model.info.pipeline == "StableDiffusionPipeline"


def test_an_installs_checkpoint_loads_by_its_a1111_name_and_reruns(tiny_checkpoint, tmp_path, capsys):
    webui = tiny_checkpoint.parents[2]
    Path(os.environ["PROMPTISM_CONFIG"]).write_text(f'a1111 = "{webui}"\n', encoding="utf-8")
    j = str(tmp_path / "j")
    title = f"tinyckpt.safetensors [{short_hash(tiny_checkpoint)}]"
    code, _, err = run_cli(capsys, "generate", "a red circle", "--model", title, "--steps", "2", "--clip", "none",
                           "--accept", "--title", "From the webui", "--journal", j)
    assert code == 0, err
    code, out, err = run_cli(capsys, "rerun", "1", "--verify", "--journal", j)
    assert code == 0 and "identical" in out + err, out + err
    code, out, err = run_cli(capsys, "show", "1", "--journal", j)
    assert code == 0 and "tinyckpt" in out and str(webui) not in out  # credited by its name, its path private


@pytest.mark.parametrize("content, said", [
    (b"", "is not a safetensors file (its header is not one)"),
    (b"\x80\x02}q\x00.", "is not a safetensors file (a pickle)"),
    ("truncated", "is a damaged safetensors file"),
    ("lora", "is not a Stable Diffusion checkpoint (it has no UNet in the original layout; it looks like a LoRA)"),
    ("flux", "holds FLUX.1 schnell's transformer alone (a models/unet file) without its VAE, CLIP-L and T5: put the "
             "model's diffusers folder"),  # detected as diffusers detects it (tests/test_flux_files.py loads them)
    ("flux+vae", "holds FLUX.1 schnell's transformer without its CLIP-L and T5"),
    ("flux2", "is a flux-2-dev checkpoint; promptism loads single files of"),
])
def test_a_file_that_is_no_checkpoint_is_one_line_saying_what_it_is(tiny_checkpoint, tmp_path, capsys, content, said):
    import torch
    from safetensors.torch import save_file

    bad = tmp_path / "bad.safetensors"
    if content == "truncated":
        bad.write_bytes(tiny_checkpoint.read_bytes()[:100_000])
    elif content == "lora":
        save_file({"lora_unet_down_blocks_0.lora_down.weight": torch.zeros(4, 4)}, bad)
    elif content in ("flux", "flux+vae"):  # a transformer's keys as the Flux single files have them (tiny tensors)
        vae = {"vae.decoder.conv_in.weight": torch.zeros(4, 4)} if content == "flux+vae" else {}
        save_file({"double_blocks.0.img_attn.norm.key_norm.scale": torch.zeros(8),
                   "double_blocks.0.img_attn.qkv.weight": torch.zeros(24, 8), **vae}, bad)
    elif content == "flux2":
        save_file({"model.diffusion_model.single_stream_modulation.lin.weight": torch.zeros(4, 4)}, bad)
    else:
        bad.write_bytes(content)
    code, _, err = run_cli(capsys, "generate", "a red circle", "--model", str(bad), "--steps", "1",
                           "--journal", str(tmp_path / "j"))
    assert code != 0 and said in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "j").exists()  # nothing written


def test_a_pickle_checkpoint_needs_allow_pickle(tmp_path, capsys):
    ckpt = tmp_path / "old.ckpt"
    ckpt.write_bytes(b"\x80\x02}q\x00.")
    code, _, err = run_cli(capsys, "generate", "a red circle", "--model", str(ckpt), "--journal", str(tmp_path / "j"))
    assert code != 0 and "old.ckpt is a pickle checkpoint, which can run code when loaded" in err, err


def test_the_shipped_configs_are_the_full_size_models(tmp_path):
    """The shipped configs build SD 1.5's and SDXL's published parameter counts (on the meta device: no memory)."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from workshop.runner.single_file_configs import TYPES

    def count(model) -> int:
        return sum(p.numel() for p in model.parameters())

    with init_empty_weights():
        sd, xl = TYPES["v1"], TYPES["xl_base"]
        unet = {k: v for k, v in sd["unet/config.json"].items() if not k.startswith("_")}
        assert count(UNet2DConditionModel(**unet)) == 859_520_964
        vae = {k: v for k, v in sd["vae/config.json"].items() if not k.startswith("_")}
        assert count(AutoencoderKL(**vae)) == 83_653_863
        assert count(CLIPTextModel(CLIPTextConfig(**sd["text_encoder/config.json"]))) == 123_060_480
        unet = {k: v for k, v in xl["unet/config.json"].items() if not k.startswith("_")}
        assert count(UNet2DConditionModel(**unet)) == 2_567_463_684
        big_g = CLIPTextModelWithProjection(CLIPTextConfig(**xl["text_encoder_2/config.json"]))
        assert count(big_g) == 694_659_840


def infotext_png(path: Path, settings: str) -> Path:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", f"a red circle\nNegative prompt: blurry\n{settings}")
    Image.new("RGB", (64, 64), (200, 30, 30)).save(path, pnginfo=info)
    return path


def test_an_infotext_with_only_a_model_hash_credits_the_local_checkpoint_that_has_it(installs, tmp_path, capsys):
    """Issue 26: 23 of 63 real A1111 infotexts name only `Model hash:`; import refused them all ("pass --model")."""
    known = short_hash(installs["dreamy"])
    for name, short in (("here.png", known), ("elsewhere.png", "0123456789")):
        infotext_png(tmp_path / name, f"Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 64x64, Model hash: {short}")
    j = str(tmp_path / "j")
    code, out, err = run_cli(capsys, "import", str(tmp_path / "here.png"), "-t", "Here", "--journal", j)
    assert code == 0 and "by dreamy" in out, out + err
    assert f"only its hash {known}: credited as 'dreamy' (the local checkpoint with that hash)" in err
    code, out, err = run_cli(capsys, "import", str(tmp_path / "elsewhere.png"), "-t", "Elsewhere", "--journal", j)
    assert code == 0 and "by unknown model" in out, out + err
    assert "only its hash 0123456789: credited as 'unknown model' (name it with --model NAME)" in err
    first, second = Journal.open(tmp_path / "j").get(1), Journal.open(tmp_path / "j").get(2)
    assert (first.model.id, first.model.hash) == ("dreamy", known)
    assert (second.model.id, second.model.hash) == ("unknown model", "0123456789")  # the hash is kept


def test_a_pickle_checkpoint_loads_with_allow_pickle_to_the_same_pictures(tiny_checkpoint, tmp_path, capsys):
    """A1111's old .ckpt files (a pickled {"state_dict": …}): only where pickle is allowed, then as the safetensors."""
    import shutil

    import torch
    from safetensors.torch import load_file

    ckpt = tmp_path / "tinyckpt.ckpt"
    torch.save({"state_dict": load_file(tiny_checkpoint)}, ckpt)
    shutil.copytree(tiny_checkpoint.with_name("tinyckpt.config"), tmp_path / "tinyckpt.config")
    j = tmp_path / "j"
    common = ("a red circle", "--steps", "2", "--seeds", "1", "--clip", "none", "--journal", str(j))
    assert run_cli(capsys, "generate", *common, "--model", str(ckpt), "--allow-pickle")[0] == 0
    assert run_cli(capsys, "generate", *common, "--model", str(tiny_checkpoint))[0] == 0
    runs = list_runs(Journal.open(j))
    assert len({r.image(r.record.cells[0]).read_bytes() for r in runs}) == 1 and len(runs) == 2


def test_an_sdxl_refiner_single_file_refines_an_image_as_its_diffusers_folder_does(tmp_path, capsys):
    """A refiner checkpoint (its one encoder, OpenCLIP bigG, under conditioner.embedders.0) loads offline as diffusers'
    SDXL image-to-image pipeline: without an init image it is one line; with one it makes the pixels of the same
    pipeline saved as a diffusers folder."""
    import shutil

    import torch
    from diffusers import (AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline,
                           UNet2DConditionModel)
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from helpers import images_of, make_png
    from ldm_export import pipeline_to_ldm
    from workshop.runner.models import load_pipeline, resolve

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=5 * 8 + 32, cross_attention_dim=32, norm_num_groups=8)  # 5 time ids
    vae = AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    config = CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=37, num_hidden_layers=10,  # (diffusers
                            num_attention_heads=4, projection_dim=32, bos_token_id=49406,  # tells a refiner by its
                            eos_token_id=49407, pad_token_id=49407)  # tenth layer)
    tokenizer = type(load_pipeline(resolve("tiny"), torch.device("cpu")).tokenizer).from_pretrained(
        resolve("tiny").path / "tokenizer", pad_token="!")
    refiner = StableDiffusionXLImg2ImgPipeline(
        vae=vae, text_encoder=None, tokenizer=None, text_encoder_2=CLIPTextModelWithProjection(config),
        tokenizer_2=tokenizer, unet=unet, scheduler=EulerDiscreteScheduler(beta_schedule="scaled_linear"),
        requires_aesthetics_score=True, force_zeros_for_empty_prompt=False)
    folder = tmp_path / "refiner-folder"
    refiner.save_pretrained(folder)
    webui = tmp_path / "webui" / "models" / "Stable-diffusion"
    webui.mkdir(parents=True)
    save_file(pipeline_to_ldm(refiner, "xl_refiner"), webui / "tinyrefiner.safetensors")
    shutil.copytree(folder, webui / "tinyrefiner.config", ignore=shutil.ignore_patterns("*.safetensors"))
    init = make_png(tmp_path / "init.png", noise=True)
    j = str(tmp_path / "j")

    code, _, err = run_cli(capsys, "generate", "a red circle", "--model", str(webui / "tinyrefiner.safetensors"),
                           "--steps", "4", "--journal", j)
    assert code == 1 and err.count("\n") == 1 and "refines an image rather than making one (an SDXL refiner)" in err, err
    assert not Path(j).exists()
    made = []
    for model in (webui / "tinyrefiner.safetensors", folder):
        code, _, err = run_cli(capsys, "generate", "a red circle", "--model", str(model), "--init-image", str(init),
                               "--strength", "0.5", "--steps", "4", "--size", "64x64", "--clip", "none", "--journal", j)
        assert code == 0, err
        made.append(max(list_runs(Journal.open(j)), key=lambda r: r.record.created_ns))
    assert images_of(made[0]) == images_of(made[1])
    assert made[0].record.params.emphasis == "a1111"  # its prompts encoded A1111's way, by its one encoder

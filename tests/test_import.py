"""Importing images made elsewhere: A1111 / ComfyUI / InvokeAI metadata, flags over metadata, no metadata kept."""

import json

import pytest
from PIL import Image

from journal import InvalidInput, Journal
from journal.importing import Overrides, experiment_from_images
from journal.metadata import parse_a1111
from tests.helpers import make_png, run_cli

INFOTEXT = (
    "a lighthouse at dusk, (dramatic lighting:1.2),\ntrending on artstation\n"
    "Negative prompt: blurry, lowres\n"
    'Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 1234, Size: 512x768, Model hash: 6ce0161689, '
    'Model: v1-5-pruned-emaonly, Lora hashes: "a: 1, b: 2", Version: v1.9.4'
)


def png_chunks(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds = 8, []
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kinds.append(data[pos + 4:pos + 8].decode("ascii"))
        pos += 12 + length
    return kinds


@pytest.mark.parametrize("text, prompt, negative, seed, params", [
    (INFOTEXT, "a lighthouse at dusk, (dramatic lighting:1.2),\ntrending on artstation", "blurry, lowres", 1234,
     {"steps": 20, "sampler": "DPM++ 2M Karras", "guidance": 7.5, "width": 512, "height": 768}),
    ("just a prompt", "just a prompt", "", None, {}),
    ("a cat\nSteps: 4, Seed: 9, CFG scale: 3", "a cat", "", 9, {"steps": 4, "guidance": 3.0}),
    ("a cat\nNegative prompt: dog\nmore negative\nSteps: 4, Seed: 9, Sampler: Euler", "a cat", "dog\nmore negative", 9,
     {"steps": 4, "sampler": "Euler"}),
])
def test_a1111_infotext(text, prompt, negative, seed, params):
    info = parse_a1111(text)
    assert (info.prompt, info.negative_prompt, info.seed, info.params) == (prompt, negative, seed, params)


def test_a1111_model_fields():
    info = parse_a1111(INFOTEXT)
    assert (info.model, info.model_hash, info.source) == ("v1-5-pruned-emaonly", "6ce0161689", "automatic1111")


def test_import_a1111_png_reads_metadata_and_strips_it(tmp_path, capsys):
    src = make_png(tmp_path / "00001-1234.png", text={"parameters": INFOTEXT})
    jdir = tmp_path / "j"
    code, out, err = run_cli(capsys, "import", str(src), "--title", "Lighthouse 𝔡𝔲𝔰𝔨", "--journal", str(jdir))
    assert code == 0, err
    exp = Journal.open(jdir).get(1)
    assert exp.model.id == "v1-5-pruned-emaonly" and exp.model.hash == "6ce0161689"
    assert exp.prompt.startswith("a lighthouse") and exp.negative_prompt == "blurry, lowres"
    assert exp.images[0].seed == 1234 and exp.params["steps"] == 20 and exp.params["imported_from"] == "automatic1111"
    copy = jdir / exp.dir / exp.images[0].file
    assert png_chunks(copy) == ["IHDR", "IDAT", "IEND"]
    raw = copy.read_bytes()
    assert b"lighthouse" not in raw and b"parameters" not in raw
    assert Image.open(copy).info == {}
    assert "a lighthouse at dusk" not in out and "trending" not in out  # title and model only, never the prompt


def test_flags_override_metadata(tmp_path):
    src = make_png(tmp_path / "a.png", text={"parameters": INFOTEXT})
    new = experiment_from_images([src], "t", Overrides(model="my-model", seed=7, prompt="mine", negative_prompt="neg"))
    assert (new.model.id, new.model.hash, new.images[0].seed, new.prompt, new.negative_prompt) == ("my-model", None, 7, "mine", "neg")


def test_plain_png_needs_a_model(tmp_path, capsys):
    src = make_png(tmp_path / "plain.png")
    jdir = tmp_path / "j"
    code, _, err = run_cli(capsys, "import", str(src), "--title", "t", "--journal", str(jdir))
    assert code != 0 and "--model" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "import", str(src), "--title", "t", "--model", "dall-e-mini", "--seed", "3",
                           "--journal", str(jdir))
    assert code == 0, err
    exp = Journal.open(jdir).get(1)
    assert (exp.model.id, exp.images[0].seed, exp.prompt) == ("dall-e-mini", 3, "")


def test_jpeg_with_exif_user_comment(tmp_path):
    exif = Image.Exif()
    exif[0x8769] = {0x9286: b"UNICODE\x00" + INFOTEXT.encode("utf-16-be")}
    src = tmp_path / "a.jpg"
    Image.new("RGB", (32, 32), "blue").save(src, exif=exif.tobytes())
    new = experiment_from_images([src], "t")
    assert new.images[0].seed == 1234 and new.negative_prompt == "blurry, lowres" and new.model.id == "v1-5-pruned-emaonly"


def test_comfyui_graph(tmp_path):
    graph = {
        "3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 25, "cfg": 6.0, "sampler_name": "euler",
                                                   "positive": ["6", 0], "negative": ["7", 0], "model": ["4", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a castle in the clouds"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "watermark"}},
    }
    src = make_png(tmp_path / "c.png", text={"prompt": json.dumps(graph), "workflow": "{}"})
    new = experiment_from_images([src], "t")
    assert (new.prompt, new.negative_prompt, new.images[0].seed) == ("a castle in the clouds", "watermark", 42)
    assert new.model.id == "sd_xl_base_1.0.safetensors" and new.params == {"steps": 25, "guidance": 6.0, "sampler": "Euler", "imported_from": "comfyui"}


def test_invokeai_metadata(tmp_path):
    meta = {"positive_prompt": "a fox", "negative_prompt": "text", "seed": 5, "steps": 30, "cfg_scale": 7,
            "width": 512, "height": 512, "scheduler": "euler", "model": {"name": "dreamshaper-8", "hash": "abc"}}
    src = make_png(tmp_path / "i.png", text={"invokeai_metadata": json.dumps(meta)})
    new = experiment_from_images([src], "t")
    assert (new.prompt, new.negative_prompt, new.images[0].seed, new.model.id, new.model.hash) == ("a fox", "text", 5, "dreamshaper-8", "abc")
    assert new.params["sampler"] == "Euler"


@pytest.mark.parametrize("line, sampler", [
    ("Sampler: DPM++ 2M Karras", "DPM++ 2M Karras"),  # A1111 before 1.9
    ("Sampler: DPM++ 2M, Schedule type: Karras", "DPM++ 2M Karras"),  # 1.9 and later
    ("Schedule type: Karras, Sampler: DPM++ SDE", "DPM++ SDE Karras"),
    ("Sampler: Euler a, Schedule type: Automatic", "Euler a"),
    ("Sampler: DPM++ 2M Karras, Schedule type: Karras", "DPM++ 2M Karras"),
    ("Sampler: DPM++ 2M, Schedule type: Exponential", "DPM++ 2M Exponential"),  # kept: promptism has no such sampler
])
def test_a1111_samplers_of_either_era_are_recorded_by_one_name(line, sampler):
    assert parse_a1111(f"a cat\nSteps: 4, {line}, Seed: 9").params["sampler"] == sampler


@pytest.mark.parametrize("name, scheduler, sampler", [
    ("dpmpp_2m", "karras", "DPM++ 2M Karras"), ("dpmpp_2m", "normal", "DPM++ 2M"), ("euler_ancestral", "normal", "Euler a"),
    ("dpmpp_2m_sde_gpu", "karras", "DPM++ 2M SDE Karras"), ("dpmpp_sde", "karras", "DPM++ SDE Karras"),
    ("ddim", "ddim_uniform", "DDIM"), ("uni_pc", "normal", "UniPC"), ("euler_cfg_pp", "normal", "euler_cfg_pp"),
])
def test_comfyui_samplers_and_schedulers_map_to_a1111_names(tmp_path, name, scheduler, sampler):
    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 1, "sampler_name": name, "scheduler": scheduler}}}
    src = make_png(tmp_path / "c.png", text={"prompt": json.dumps(graph)})
    assert experiment_from_images([src], "t", Overrides(model="m")).params["sampler"] == sampler


@pytest.mark.parametrize("scheduler, sampler", [("dpmpp_2m_k", "DPM++ 2M Karras"), ("euler_a", "Euler a"),
                                                ("kdpm_2_a", "DPM2 a"), ("pndm", "PLMS"), ("unipc", "UniPC"),
                                                ("dpmpp_sde_k", "DPM++ SDE Karras"), ("deis", "deis")])
def test_invokeai_schedulers_map_to_a1111_names(tmp_path, scheduler, sampler):
    src = make_png(tmp_path / "i.png", text={"invokeai_metadata": json.dumps({"seed": 1, "scheduler": scheduler})})
    assert experiment_from_images([src], "t", Overrides(model="m")).params["sampler"] == sampler


def test_every_name_the_import_tables_give_is_one_promptism_runs_or_one_a1111_has_and_promptism_does_not():
    """The journal's tables speak the runner's language: each A1111 name they map to is a promptism sampler, but
    for the A1111 samplers promptism does not offer (listed here, so a new one is a decision)."""
    from journal import samplers as names
    from workshop.runner.samplers import SAMPLERS

    given = {names.comfyui_sampler(n, "normal") for n in names._COMFYUI_SAMPLERS}
    given |= {names.comfyui_sampler(n, "karras") for n in ("lms", "dpm_2", "dpm_2_ancestral", "dpmpp_2m", "dpmpp_sde",
                                                            "dpmpp_2m_sde", "dpmpp_2s_ancestral", "dpmpp_3m_sde")}
    given |= set(names._INVOKEAI.values())
    not_offered = {"DPM++ 2S a", "DPM++ 3M SDE", "DPM fast", "DPM adaptive"}
    assert {n.removesuffix(" Karras") for n in given - set(SAMPLERS)} == not_offered


def test_garbage_metadata_is_ignored_not_fatal(tmp_path):
    src = make_png(tmp_path / "g.png", text={"prompt": "{not json", "invokeai_metadata": "[1,2"})
    with pytest.raises(InvalidInput, match="--model"):
        experiment_from_images([src], "t")
    assert experiment_from_images([src], "t", Overrides(model="m")).prompt == ""


@pytest.mark.parametrize("key, text", [
    ("parameters", 'a cat\nSteps: 4, Seed: 9, Model: "\\x"'),
    ("prompt", '{"3": {"class_type": "KSampler", "inputs": [1, 2]}}'),
    ("prompt", '{"3": {"class_type": "KSampler", "inputs": {"positive": ["4", 0]}}, "4": {"inputs": "x"}}'),
    ("invokeai_metadata", "[" * 100_000 + "]" * 100_000),
], ids=["a1111-bad-escape", "comfy-list-inputs", "comfy-str-inputs", "invokeai-deep"])
def test_malformed_metadata_is_ignored_not_an_error(tmp_path, capsys, key, text):
    source = make_png(tmp_path / "m.png", text={key: text})
    code, out, err = run_cli(capsys, "import", str(source), "-t", "Given", "-m", "given", "-p", "given prompt",
                             "--journal", str(tmp_path / "j"))
    assert code == 0 and out.startswith("#1 Given"), err


def test_a_huge_infotext_line_is_read_in_linear_time(tmp_path):
    """A1111's Key: value pattern backtracked quadratically on a long line without a colon (a 200 KB chunk took
    minutes); the parameters are now split in one pass."""
    import time

    started = time.perf_counter()
    info = parse_a1111("a cat\n" + "y" * 200_000)
    assert time.perf_counter() - started < 2 and info.prompt.startswith("a cat")
    info = parse_a1111('a cat\nSteps: 4, Lora hashes: "a: 1, b: 2", Seed: 9, CFG scale: nan, Size: 64x32')
    assert info.seed == 9 and info.params == {"steps": 4, "width": 64, "height": 32}  # a NaN scale is no scale

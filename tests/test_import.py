"""Importing images made elsewhere, one experiment at a time: every generator's metadata (samples written the way
each tool writes them, tests/import_samples.py), flags over metadata, keywords, and no metadata kept."""

import io
import json

import pytest
from PIL import Image

from journal import InvalidInput, Journal
from journal.importing import Overrides, experiment_from_images, read_source
from journal.keywords import plain, split_keywords
from tests import import_samples as samples
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


def info_of(tmp_path, text: str):
    return read_source(make_png(tmp_path / "x.png", text={"parameters": text})).info


@pytest.mark.parametrize("text, prompt, negative, seed, params", [
    (INFOTEXT, "a lighthouse at dusk, (dramatic lighting:1.2),\ntrending on artstation", "blurry, lowres", 1234,
     {"steps": 20, "guidance": 7.5, "width": 512, "height": 768, "sampler": "DPM++ 2M Karras"}),
    ("a cat\nSteps: 4, Sampler: Euler, Seed: 9, CFG scale: 3", "a cat", "", 9, {"steps": 4, "guidance": 3.0, "sampler": "Euler"}),
    ("a cat\nNegative prompt: dog\nmore negative\nSteps: 4, Seed: 9, Sampler: Euler", "a cat", "dog\nmore negative", 9,
     {"steps": 4, "sampler": "Euler"}),
])
def test_a1111_infotext(tmp_path, text, prompt, negative, seed, params):
    info = info_of(tmp_path, text)
    assert (info.prompt, info.negative_prompt, info.seed, info.params) == (prompt, negative, seed, params)


def test_a1111_model_fields(tmp_path):
    info = info_of(tmp_path, INFOTEXT)
    assert [(m.id, m.hash) for m in info.models] == [("v1-5-pruned-emaonly", "6ce0161689")]
    assert (info.source, info.params["sampler"]) == ("automatic1111", "DPM++ 2M Karras")


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


def test_flags_override_metadata_but_the_model_an_image_names_stays_credited(tmp_path, capsys):
    """--seed/--prompt/--negative win over the metadata; --model credits only images that name no model (the one
    that made an image is the one it names), and an import that names another says so in a note."""
    src = make_png(tmp_path / "a.png", text={"parameters": INFOTEXT})
    new = experiment_from_images([src], "t", Overrides(model="my-model", seed=7, prompt="mine", negative_prompt="neg"))
    assert (new.images[0].seed, new.prompt, new.negative_prompt) == (7, "mine", "neg")
    assert new.model.id == "v1-5-pruned-emaonly" and new.model.hash  # its metadata's, not --model's
    code, out, err = run_cli(capsys, "import", str(src), "--title", "t", "--model", "my-model", "--journal",
                             str(tmp_path / "j"))
    assert code == 0 and "by v1-5-pruned-emaonly" in out
    assert "note: " in err and "names the model 'v1-5-pruned-emaonly'" in err and "'my-model'" in err and "lighthouse" not in err
    plain = make_png(tmp_path / "plain.png", color=(30, 30, 200))
    folder = tmp_path / "folder"
    folder.mkdir()
    for f in (src, plain):
        (folder / f.name).write_bytes(f.read_bytes())
    code, out, err = run_cli(capsys, "import", str(folder), "--title", "batch", "--model", "my-model", "--journal",
                             str(tmp_path / "k"))
    assert code == 0, err
    credits = sorted(e.model.id for e in Journal.open(tmp_path / "k").search(limit=None))
    assert credits == ["my-model", "v1-5-pruned-emaonly"] and "names the model" in out + err


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


def test_garbage_metadata_is_ignored_not_fatal(tmp_path):
    src = make_png(tmp_path / "g.png", text={"prompt": "{not json", "invokeai_metadata": "[1,2"})
    with pytest.raises(InvalidInput, match="--model"):
        experiment_from_images([src], "t")
    assert experiment_from_images([src], "t", Overrides(model="m")).prompt == ""


@pytest.mark.parametrize("key, text", [
    ("parameters", 'a cat\nSteps: 4, Sampler: Euler, Seed: 9, Model: "\\x"'),
    ("prompt", '{"3": {"class_type": "KSampler", "inputs": [1, 2]}}'),
    ("prompt", '{"3": {"class_type": "KSampler", "inputs": {"positive": ["4", 0]}}, "4": {"inputs": "x"}}'),
    ("invokeai_metadata", "[" * 100_000 + "]" * 100_000),
], ids=["a1111-bad-escape", "comfy-list-inputs", "comfy-str-inputs", "invokeai-deep"])
def test_malformed_metadata_is_ignored_not_an_error(tmp_path, capsys, key, text):
    source = make_png(tmp_path / "m.png", text={key: text})
    code, out, err = run_cli(capsys, "import", str(source), "-t", "Given", "-m", "given", "-p", "given prompt",
                             "--journal", str(tmp_path / "j"))
    assert code == 0 and out.startswith("#1 Given"), err




def imported(tmp_path, make, name="sample.png", **given):
    return experiment_from_images([make(tmp_path / name)], "t", Overrides(**given))


def facts(new):
    return (new.prompt, new.negative_prompt, new.images[0].seed, [m.id for m in (new.model, *new.extra_models)],
            new.params.get("steps"), new.params.get("guidance"), new.params.get("sampler"),
            (new.params["width"], new.params["height"]), new.params["imported_from"])


A1111_FACTS = (samples.A1111_PROMPT, "blurry, lowres", 1234, ["v1-5-pruned-emaonly"], 20, 7.5, "DPM++ 2M Karras", (512, 768),
               "automatic1111")


@pytest.mark.parametrize("make", [samples.a1111_png, samples.a1111_jpeg, samples.a1111_stealth_png], ids=["png", "jpeg", "stealth"])
def test_a1111_formats(tmp_path, make):
    new = imported(tmp_path, make, "00007-1234.png")
    assert facts(new) == A1111_FACTS and new.model.hash == "6ce0161689"


def test_stealth_info_is_wiped_from_the_kept_pixels(tmp_path, capsys):
    """Stealth info lives in the pixels themselves: the journal's copy must not carry it (an opaque image loses the
    alpha channel; NovelAI's RGBA image with stealth JSON likewise)."""
    for make in (samples.a1111_stealth_png, samples.novelai_png):
        src = make(tmp_path / f"{make.__name__}.png")
        code, _, err = run_cli(capsys, "import", str(src), "-t", "Wiped", "--journal", str(tmp_path / "j"))
        assert code == 0, err
    journal = Journal.open(tmp_path / "j")
    for number in (1, 2):
        exp = journal.get(number)
        kept = Image.open(journal.image_path(exp, exp.images[0]))
        assert kept.mode == "RGB" and read_source(journal.image_path(exp, exp.images[0])).info.source is None
        assert kept.tobytes() == Image.open(src if number == 2 else tmp_path / "a1111_stealth_png.png").convert("RGB").tobytes()


def test_comfyui_default_workflow(tmp_path):
    new = imported(tmp_path, lambda p: samples.comfy_png(p, samples.comfy_graph()), "ComfyUI_00001_.png")
    assert facts(new) == ("beautiful scenery nature glass bottle landscape, purple galaxy bottle", "text, watermark",
                          156680208700286, ["v1-5-pruned-emaonly.safetensors"], 20, 8.0, "Euler", (64, 64), "comfyui")


def test_comfyui_api_graph_without_workflow(tmp_path):
    """Images saved through ComfyUI's API carry the graph alone: its own links are enough."""
    new = imported(tmp_path, lambda p: samples.comfy_png(p, samples.comfy_graph(), workflow=False))
    assert new.prompt.startswith("beautiful scenery") and new.images[0].seed == 156680208700286


def test_comfyui_hires_pass_the_saved_image_sampler_wins(tmp_path):
    """Two samplers: the prompt, seed and settings are the second pass's, which made the saved image (its save
    node's filename prefix names the file); the first pass only went to a preview."""
    new = imported(tmp_path, lambda p: samples.comfy_png(p, samples.comfy_hires_graph()), "upscaled_00001_.png")
    assert facts(new) == ("glass bottle landscape, intricate detail", "text, watermark", 2002,
                          ["v1-5-pruned-emaonly.safetensors"], 14, 6.5, "DPM++ 2M Karras", (64, 64), "comfyui")


def test_comfyui_base_and_refiner_both_credited(tmp_path, capsys):
    """SDXL base (through a LoRA loader) + refiner: both checkpoints credited, base first; the seed is the base
    pass's (the refiner adds no noise, its seed is unused); the base's LoRA is written as its tag."""
    src = samples.comfy_png(tmp_path / "ComfyUI_00002_.png", samples.comfy_refiner_graph())
    new = experiment_from_images([src], "t")
    assert facts(new)[:4] == ("evening sunset scenery blue sky nature, glass bottle <lora:pixel-art-xl:0.8>",
                              "text, watermark", 721897303308196,
                              ["sd_xl_base_1.0.safetensors", "sd_xl_refiner_1.0.safetensors"])
    out_dir = tmp_path / "site"
    code, out, err = run_cli(capsys, "import", str(src), "-t", "Refined", "--journal", str(tmp_path / "j"))
    assert code == 0 and "by sd_xl_base_1.0.safetensors + sd_xl_refiner_1.0.safetensors" in out, err
    code, out, _ = run_cli(capsys, "show", "1", "--journal", str(tmp_path / "j"))
    assert "sd_xl_base_1.0.safetensors + sd_xl_refiner_1.0.safetensors" in out
    code, out, _ = run_cli(capsys, "log", "--model", "refiner", "--journal", str(tmp_path / "j"))
    assert "Refined" in out
    code, _, err = run_cli(capsys, "publish", "1", "--out", str(out_dir), "--journal", str(tmp_path / "j"))
    assert code == 0, err
    assert "sd_xl_base_1.0.safetensors + sd_xl_refiner_1.0.safetensors" in (out_dir / "index.html").read_text()
    doc = json.loads((tmp_path / "j" / Journal.open(tmp_path / "j").get(1).dir / "experiment.json").read_text())
    assert [m["id"] for m in doc["extra_models"]] == ["sd_xl_refiner_1.0.safetensors"]


def test_a_document_with_one_model_is_as_before(tmp_path, capsys):
    src = samples.a1111_png(tmp_path / "a.png")
    assert run_cli(capsys, "import", str(src), "-t", "One", "--journal", str(tmp_path / "j"))[0] == 0
    doc = json.loads((tmp_path / "j" / Journal.open(tmp_path / "j").get(1).dir / "experiment.json").read_text())
    assert "extra_models" not in doc  # older promptism reads it unchanged


def test_comfyui_several_subjects_each_prompt_kept(tmp_path):
    new = imported(tmp_path, lambda p: samples.comfy_png(p, samples.comfy_regions_graph()))
    assert new.prompt == "a knight in silver armour, a red dragon" and new.negative_prompt == "text, watermark"
    assert new.keywords == ["a knight in silver armour", "a red dragon"]


def test_fooocus(tmp_path):
    new = imported(tmp_path, samples.fooocus_png)
    assert facts(new) == ("a red fox in snow", "blurry", 8472836451, ["juggernautXL_v8Rundiffusion", "realisticStockPhoto_v20"],
                          30, 4.0, "DPM++ 2M SDE Karras", (1152, 896), "fooocus")


def test_novelai(tmp_path):
    new = imported(tmp_path, samples.novelai_png)
    assert facts(new) == ("1girl, silver hair, night sky, best quality", "lowres, bad anatomy, bad hands", 3046187744,
                          ["NovelAI Diffusion V3"], 28, 5.0, "Euler a", (832, 1216), "novelai")
    assert new.model.hash == "7BCCAA2C"


def test_invokeai_2_sd_metadata(tmp_path):
    new = imported(tmp_path, samples.invokeai2_png)
    assert facts(new) == ("a cottage in the woods, oil painting", "people, text", 2093118113, ["stable-diffusion-1.5"],
                          50, 7.5, "LMS", (512, 512), "invokeai")


def test_invokeai_2_dream_line_names_no_model_so_it_is_credited_as_unknown(tmp_path):
    """A generator's metadata without a model (issue 26: 11 of 63 real A1111 infotexts) is credited "unknown model"
    and said, not refused; --model names it."""
    assert imported(tmp_path, samples.invokeai2_dream_png).model.id == "unknown model"
    new = imported(tmp_path, samples.invokeai2_dream_png, model="sd-1.4")
    assert facts(new) == ("a cottage in the woods, oil painting", "people, text", 2093118113, ["sd-1.4"], 50, 7.5, "LMS",
                          (512, 512), "invokeai")


@pytest.mark.parametrize("v4", [False, True], ids=["3.x", "4+"])
def test_invokeai_3_and_later(tmp_path, v4):
    new = imported(tmp_path, lambda p: samples.invokeai3_png(p, v4=v4))
    assert facts(new) == ("a fox in a misty forest, volumetric light", "text, watermark", 770544131, ["dreamshaper-8"],
                          30, 7.0, "DPM++ 2M Karras", (768, 512), "invokeai")
    assert new.model.hash == ("blake3:8c9e2d" if v4 else None)


def test_imported_prompts_become_keywords(tmp_path, capsys):
    src = samples.a1111_png(tmp_path / "a.png")
    jdir = str(tmp_path / "j")
    assert run_cli(capsys, "import", str(src), "-t", "Tower", "--journal", jdir)[0] == 0
    exp = Journal.open(jdir).get(1)
    assert exp.keywords == ("masterpiece", "a lighthouse at dusk", "dramatic lighting", "trending on artstation",
                            "<lora:ink:0.8>")
    assert "(dramatic lighting:1.2)" in exp.prompt  # the weight stays where A1111 wrote it
    for keyword in ("masterpiece", "dramatic lighting", "(dramatic lighting:1.2)", "Trending on ArtStation"):
        code, out, _ = run_cli(capsys, "log", "--keyword", keyword, "--journal", jdir)
        assert "Tower" in out, keyword
    assert "Tower" not in run_cli(capsys, "log", "--keyword", "lighthouse", "--journal", jdir)[1]


@pytest.mark.parametrize("prompt, keywords", [
    ("a, b,, c", ["a", "b", "c"]),
    ("(red hair, blue eyes:1.2), [cat|dog], {x, y}", ["red hair, blue eyes", "[cat|dog]", "{x, y}"]),
    ("one\ntwo BREAK three, (one:1.3)", ["one", "two", "three"]),
    (r"a \(b, c\)", ["a (b", "c)"]),
])
def test_split_keywords(prompt, keywords):
    assert split_keywords(prompt) == keywords


@pytest.mark.parametrize("keyword, text", [("((masterpiece:1.2))", "masterpiece"), ("[blurry]", "blurry"),
                                           (r"\(x\)", "(x)"), ("a (b:1.1) c", "a (b:1.1) c"), ("(a) (b)", "(a) (b)"),
                                           ("[cat|dog]", "[cat|dog]"), ("[fox:wolf:10]", "[fox:wolf:10]"),
                                           ("( spaced : 0.8 )", "spaced")])
def test_plain_keyword(keyword, text):
    assert plain(keyword) == text


@pytest.mark.parametrize("line, sampler", [
    ("Sampler: DPM++ 2M Karras", "DPM++ 2M Karras"),  # A1111 before 1.9
    ("Sampler: DPM++ 2M, Schedule type: Karras", "DPM++ 2M Karras"),  # 1.9 and later
    ("Schedule type: Karras, Sampler: DPM++ SDE", "DPM++ SDE Karras"),
    ("Sampler: Euler a, Schedule type: Automatic", "Euler a"),
    ("Sampler: DPM++ 2M, Schedule type: Automatic", "DPM++ 2M Karras"),  # 1.9+: the sampler's own schedule
    ("Sampler: DPM++ 2M SDE, Schedule type: Automatic", "DPM++ 2M SDE Exponential"),
    ("Sampler: DPM++ 2M", "DPM++ 2M"),  # before 1.9 (no schedule type): uniform
    ("Sampler: DPM++ 2M Karras, Schedule type: Karras", "DPM++ 2M Karras"),
    ("Sampler: DPM++ 2M, Schedule type: Exponential", "DPM++ 2M Exponential"),
    ("Sampler: DPM++ 3M SDE, Schedule type: Automatic", "DPM++ 3M SDE Exponential"),  # A1111 1.10's, which it has
    ("Sampler: DPM2 a, Schedule type: Automatic", "DPM2 a Karras"),  # A1111 1.10's default for DPM2 (a): Karras
    ("Sampler: Euler a, Schedule type: SGM Uniform", "Euler a SGM Uniform"),  # schedule types as a second dimension
    ("Sampler: DPM++ 2M, Schedule type: Align Your Steps", "DPM++ 2M Align Your Steps"),
    ("Sampler: Euler, Schedule type: Beta", "Euler Beta"), ("Sampler: Euler a, Schedule type: Normal", "Euler a"),
    ("Sampler: DPM++ 2M, Schedule type: KL Optimal", "DPM++ 2M KL Optimal"),  # kept: promptism does not make it
])
def test_a1111_samplers_of_either_era_are_recorded_by_one_name(tmp_path, line, sampler):
    assert info_of(tmp_path, f"a cat\nSteps: 4, {line}, Seed: 9").params["sampler"] == sampler


@pytest.mark.parametrize("name, scheduler, sampler", [
    ("dpmpp_2m", "karras", "DPM++ 2M Karras"), ("dpmpp_2m", "normal", "DPM++ 2M"), ("euler_ancestral", "normal", "Euler a"),
    ("dpmpp_2m_sde_gpu", "karras", "DPM++ 2M SDE Karras"), ("dpmpp_sde", "karras", "DPM++ SDE Karras"),
    ("ddim", "ddim_uniform", "DDIM"), ("uni_pc", "normal", "UniPC"), ("euler_cfg_pp", "normal", "euler_cfg_pp"),
    ("euler_ancestral", "sgm_uniform", "Euler a SGM Uniform"), ("dpmpp_2m", "simple", "DPM++ 2M Simple"),
    ("euler", "beta", "Euler ComfyUI Beta"),  # (not A1111's Beta: a rerun refuses it by name)
])
def test_comfyui_samplers_and_schedulers_map_to_a1111_names(tmp_path, name, scheduler, sampler):
    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "cfg": 7, "sampler_name": name, "scheduler": scheduler}}}
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
    from workshop.errors import RunError
    from workshop.samplers import sampler

    def refused(name: str) -> bool:
        try:
            return not sampler(name)
        except RunError:
            return True

    given = {names.comfyui_sampler(n, "normal") for n in names._COMFYUI_SAMPLERS}
    given |= {names.comfyui_sampler(n, "karras") for n in ("lms", "dpm_2", "dpm_2_ancestral", "dpmpp_2m", "dpmpp_sde",
                                                            "dpmpp_2m_sde", "dpmpp_2s_ancestral", "dpmpp_3m_sde")}
    given |= {names.comfyui_sampler("euler", s) for s in names._COMFYUI_SCHEDULERS}
    given |= set(names._INVOKEAI.values())
    # (DPM++ 3M SDE: offered since issue 26; ComfyUI's KL Optimal and beta are not A1111's)
    not_offered = {"DPM++ 2S a", "DPM fast", "DPM adaptive", "Euler KL Optimal", "Euler ComfyUI Beta"}
    assert {n.removesuffix(" Karras") for n in given if refused(n)} == not_offered


@pytest.mark.parametrize("text, problem", [
    ({"prompt": "{not json"}, "its prompt metadata is not valid JSON"),
    ({"prompt": json.dumps({"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m"}}})},
     "its ComfyUI graph has no sampler"),
    ({"invokeai_metadata": "[1,2"}, "its invokeai_metadata metadata is not valid JSON"),
])
def test_unreadable_metadata_is_named_when_the_model_is_missing(tmp_path, capsys, text, problem):
    src = make_png(tmp_path / "bad.png", text=text)
    code, _, err = run_cli(capsys, "import", str(src), "-t", "t", "--journal", str(tmp_path / "j"))
    assert code != 0 and problem in err and "--model" in err and err.count("\n") == 1


@pytest.mark.parametrize("make, why", [
    (lambda p: p.write_bytes(b""), "not an image"),
    (lambda p: p.write_bytes(samples.a1111_png(p).read_bytes()[:200]), "not an image"),
], ids=["empty", "truncated"])
def test_bad_single_files_one_line(tmp_path, capsys, make, why):
    src = tmp_path / "bad.png"
    make(src)
    code, _, err = run_cli(capsys, "import", str(src), "-t", "t", "-m", "m", "--journal", str(tmp_path / "j"))
    assert code != 0 and why in err and err.count("\n") == 1


@pytest.fixture
def parsers_given(monkeypatch) -> list[dict]:
    """What sd-parsers' parsers are handed (each call's chunks), recorded as they parse."""
    from sd_parsers.parsers import MANAGED_PARSERS

    given: list[dict] = []

    def spy(parse):
        def parse_and_record(self, chunks, *args, **kw):
            given.append(dict(chunks))
            return parse(self, chunks, *args, **kw)
        return parse_and_record

    for parser in MANAGED_PARSERS:
        monkeypatch.setattr(parser, "parse", spy(parser.parse))
    return given


@pytest.mark.parametrize("key, text", [("parameters", "a\nSteps: 1, Sampler: Euler, Seed: 1, " + "Hashes: {" * 40_000),
                                       ("Dream", '"' * 40_000 + "\nx")], ids=["a1111-hashes", "invokeai-dream"])
def test_huge_metadata_is_refused_before_the_parsers(tmp_path, parsers_given, key, text):
    """sd-parsers' A1111 hash pattern and InvokeAI 2 Dream pattern are quadratic on hostile text (40 KB of it: 15 s):
    metadata beyond what any real image carries is not handed to them (checked by what they are handed, not by time:
    tests/bench/import_hostile.py times it)."""
    info = read_source(make_png(tmp_path / "x.png", text={key: text})).info
    assert info.source is None and "too large" in info.problem
    assert [given for given in parsers_given if key in given] == []  # no parser saw the chunk, whole or cut


def test_a_hostile_comfyui_graph_reaches_the_parser_cut_to_the_nearest_samplers(tmp_path, parsers_given):
    """Hundreds of samplers on a long conditioning chain: sd-parsers' work grows with samplers times chain length
    (a thousand of each took minutes); it is given the samplers nearest the saved image only (counted in what it is
    handed; tests/bench/import_hostile.py times it)."""
    from journal.metadata import MAX_SAMPLERS

    src = make_png(tmp_path / "h.png", text={"prompt": json.dumps(samples.comfy_hostile_graph(600))})
    info = read_source(src).info
    assert info.source == "comfyui" and info.seed == 0  # the sampler nearest the image (none saves it: the first)
    graphs = [given["prompt"] for given in parsers_given if "prompt" in given]
    assert graphs, "no parser was handed the graph"
    samplers = [sum(node.get("class_type") == "KSampler" for node in graph.values()) for graph in graphs]
    assert all(0 < n <= MAX_SAMPLERS < 600 for n in samplers), samplers


def test_a_stealth_gzip_bomb_is_read_bounded(tmp_path, monkeypatch):
    """Stealth info whose gzip inflates to 64 MB: inflated no further than a metadata limit (counted on the inflater
    itself), said to be too large, and still wiped from the kept pixels."""
    import zlib

    inflated: list[int] = []
    real_decompressobj = zlib.decompressobj

    class Counted:
        def __init__(self, *args, **kw):
            self._real = real_decompressobj(*args, **kw)

        def decompress(self, data, *args, **kw):
            out = self._real.decompress(data, *args, **kw)
            inflated.append(len(out))
            return out

        def __getattr__(self, name):
            return getattr(self._real, name)

    monkeypatch.setattr(zlib, "decompressobj", Counted)
    src = tmp_path / "bomb.png"
    samples.stealth(samples.pixels((800, 800), seed=1), "a" * 64 * 2**20).save(src)
    source = read_source(src)
    assert inflated and sum(inflated) <= 4 * 2**20, inflated  # a few MB at most of the 64 the bomb holds
    assert source.info.in_pixels and "too large" in source.info.problem, source.info
    assert Image.open(io.BytesIO(source.encoded().data)).mode == "RGB"


def test_a_fifo_or_a_device_is_refused_at_once_never_read(tmp_path):
    """Reading a FIFO waits for a writer and a device may never end: each is one line (in a folder, one failed file)."""
    import os
    import subprocess

    from tests.helpers import EXE

    fifo = tmp_path / "waiting.png"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    os.mkfifo(folder / "a.png")
    said = []
    for args in ([str(fifo), "--model", "shapes", "--title", "t"], ["/dev/zero", "--model", "shapes", "--title", "t"],
                 [str(folder), "--title", "t"]):
        done = subprocess.run([EXE, "import", *args, "--journal", str(tmp_path / "j")], capture_output=True, text=True,
                              timeout=300, stdin=subprocess.DEVNULL)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        said.append(done.stdout + done.stderr)
    assert "waiting.png is a FIFO, not an image file; pass a file" in said[0]
    assert "/dev/zero is a device, not an image file" in said[1]
    assert "a.png is a FIFO" in said[2] and "failed 1" in said[2]


@pytest.mark.parametrize("size", ["0x0", "99999999x99999999"])
def test_a_size_no_model_makes_is_left_out_with_a_note(tmp_path, capsys, size):
    src = make_png(tmp_path / "a.png", text={"parameters": f"a red circle\nSteps: 12, Sampler: Euler, CFG scale: 7, Seed: 1, Size: {size}, Model: shapes"})
    code, out, err = run_cli(capsys, "import", str(src), "--title", "t", "--journal", str(tmp_path / "j"))
    assert code == 0 and f"note: {src}: Size {size} is no size a model makes" in err, err
    params = Journal.open(tmp_path / "j").get(1).params
    assert (params["width"], params["height"]) == (64, 64) and params["steps"] == 12  # the image's own size


def test_metadata_too_large_to_read_is_said_when_the_import_goes_on(tmp_path, capsys):
    """A 41 KB infotext is not parsed (sd-parsers is quadratic on such text): with --model the image imports, saying so."""
    src = make_png(tmp_path / "long.png", text={"parameters": "a red circle, " * 3000 + "\nSteps: 12, Sampler: Euler, CFG scale: 7, Seed: 1, Model: shapes"})
    folder = tmp_path / "folder"
    folder.mkdir()
    make_png(folder / "b.png", text={"parameters": "a red circle\nSteps: 12, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 0x0, Model: shapes"})
    code, out, err = run_cli(capsys, "import", str(src), "--model", "shapes", "--title", "t", "--journal", str(tmp_path / "j"))
    assert code == 0 and "metadata is too large to be real (41 KB): its metadata is left out" in err, err
    code, out, err = run_cli(capsys, "import", str(folder), "--title", "f", "--journal", str(tmp_path / "j"))
    assert code == 0 and "noted" in out and "b.png: Size 0x0 is no size" in out, out + err

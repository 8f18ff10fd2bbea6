"""``promptism rerun N`` on an imported experiment: its images made again from the recorded prompt (weights and all),
negative prompt, seeds, steps, guidance, size and sampler, on the model it names or one given — a new run, never
reported as verified or mismatched; what cannot be made again is one line, with nothing run."""

import json
import os
from pathlib import Path

import pytest

from journal import Journal
from tests.helpers import make_png, run_cli
from workshop.runner.runs import list_runs

WEIGHTED = "a lighthouse at dusk, (glowing:1.3), [fog]"
INFOTEXT = (f"{WEIGHTED}\nNegative prompt: blurry\n"
            "Steps: 3, Sampler: Euler a, CFG scale: 5, Seed: 7, Size: 64x32, Model hash: 0123abcd, Model: {model}")


def _import(tmp_path, capsys, text: str, *extra: str) -> str:
    j = str(tmp_path / "j")
    src = make_png(tmp_path / "a1111.png", text={"parameters": text})
    code, _, err = run_cli(capsys, "import", str(src), "--title", "From A1111", *extra, "--journal", j)
    assert code == 0, err
    return j


def test_an_imported_a1111_image_is_made_again_with_its_weights_sampler_and_settings(tmp_path, capsys):
    j = _import(tmp_path, capsys, INFOTEXT.format(model="tiny"))
    assert Journal.open(j).get(1).params["sampler"] == "Euler a"
    code, out, err = run_cli(capsys, "rerun", "1", "--journal", j)
    assert code == 0, err
    run = list_runs(Journal.open(j))[0]
    assert out.strip() == (f"#1 made again from imported settings → run {run.id}: not comparable byte for byte "
                           "(made by another tool)")
    assert "pixel-identical" not in out and "DIFFERENT" not in out and run.record.verified is None
    assert [(c.prompt, c.negative, c.seed, c.steps, c.guidance) for c in run.record.cells] == [
        (WEIGHTED, "blurry", 7, 3, 5.0)]  # the prompt as A1111 wrote it: its weights are applied when it is encoded
    p = run.record.params
    assert (p.sampler, p.scheduler, p.width, p.height, run.record.model.id) == (
        "Euler a", "EulerAncestralDiscreteScheduler", 64, 32, "tiny")
    assert run.state == "finished" and len(run.done) == 1


@pytest.mark.parametrize("schedule, sampler", [("SGM Uniform", "Euler a SGM Uniform"), ("Automatic", "Euler a"),
                                               ("Karras", "Euler a Karras"),
                                               ("Align Your Steps", "DPM++ 2M Align Your Steps")])
def test_an_a1111_schedule_type_is_made_again_with_it(tmp_path, capsys, schedule, sampler):
    base = sampler.removesuffix(" " + schedule) if sampler.endswith(schedule) else sampler
    j = _import(tmp_path, capsys, INFOTEXT.format(model="tiny").replace("Euler a,", f"{base}, Schedule type: {schedule},"))
    code, out, err = run_cli(capsys, "rerun", "1", "--journal", j)
    assert code == 0 and "not applied" not in out + err, out + err
    assert list_runs(Journal.open(j))[0].record.params.sampler == sampler


def test_a_comfyui_graph_is_made_again_with_its_sampler_and_scheduler(tmp_path, capsys):
    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 4, "steps": 2, "cfg": 6.0, "sampler_name": "dpmpp_2m",
                                                        "scheduler": "karras", "positive": ["6", 0]}},
             "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a castle, (clouds:0.8)"}}}
    j = str(tmp_path / "j")
    src = make_png(tmp_path / "c.png", text={"prompt": json.dumps(graph)})
    assert run_cli(capsys, "import", str(src), "--title", "Comfy", "--model", "elsewhere", "--journal", j)[0] == 0
    code, out, err = run_cli(capsys, "rerun", "1", "--model", "tiny", "--journal", j)
    assert code == 0, err
    run = list_runs(Journal.open(j))[0]
    assert run.record.params.sampler == "DPM++ 2M Karras" and run.record.cells[0].prompt == "a castle, (clouds:0.8)"
    assert (run.record.cells[0].seed, run.record.params.steps, run.record.params.guidance) == (4, 2, 6.0)


@pytest.mark.parametrize("text, args, says", [
    (INFOTEXT.format(model="v1-5-pruned-emaonly"), [],
     "#1 was made with 'v1-5-pruned-emaonly', which is not here: pass --model NAME"),
    (INFOTEXT.format(model="tiny").replace("Euler a", "DPM++ 2S a"), [],
     "#1 was made with the sampler 'DPM++ 2S a', which promptism does not have (diffusers has no singlestep ancestral "
     "DPM++ solver"),
    (INFOTEXT.format(model="tiny").replace("Euler a", "DPM++ 2S a"), [], "the nearest are DPM++ SDE and DPM++ 2M SDE): "
     "pass --sampler NAME (Euler, Euler a"),
    (INFOTEXT.format(model="tiny").replace("Euler a,", "LCM, Schedule type: Karras,"), [],
     "#1 was made with the sampler 'LCM Karras', which promptism does not have (LCM (LCMScheduler) takes the schedule "
     "types Automatic, Uniform, Normal, not Karras)"),
    (INFOTEXT.format(model="tiny").replace("Euler a,", "Euler, Schedule type: KL Optimal,"), [],
     "which promptism does not have (promptism has no KL Optimal schedule type"),
    (INFOTEXT.format(model="tiny"), ["--verify"], "#1 was imported (made by another tool)"),
    (INFOTEXT.format(model="tiny").replace("Seed: 7, ", ""), [], "#1's image 1 has no seed recorded"),
    (INFOTEXT.format(model="tiny"), ["--sampler", "Euler b"], "unknown sampler 'Euler b'"),
])
def test_what_cannot_be_made_again_is_one_line_and_runs_nothing(tmp_path, capsys, text, args, says):
    j = _import(tmp_path, capsys, text)
    code, out, err = run_cli(capsys, "rerun", "1", *args, "--journal", j)
    assert code != 0 and err.count("\n") == 1 and says in err and "internal error" not in err, err
    assert list_runs(Journal.open(j)) == []


def test_model_and_sampler_overrides_make_it_again_and_are_refused_for_promptisms_own(tmp_path, capsys):
    j = _import(tmp_path, capsys, INFOTEXT.format(model="v1-5-pruned-emaonly").replace("Euler a", "DPM++ 2S a"))
    code, out, err = run_cli(capsys, "rerun", "1", "--model", "tiny", "--sampler", "DDIM", "--journal", j)
    assert code == 0, err
    run = list_runs(Journal.open(j))[0]
    assert (run.record.model.id, run.record.params.sampler) == ("tiny", "DDIM")
    code, _, err = run_cli(capsys, "accept", run.id, "--title", "Made here", "--journal", j)
    assert code == 0, err
    code, _, err = run_cli(capsys, "rerun", "2", "--model", "tiny", "--journal", j)
    assert code == 2 and "--model and --sampler are for imported experiments" in err, err


@pytest.mark.parametrize("model, applied, note", [
    ("tiny", 2, None),  # an SD model: A1111's Clip skip applies
    ("shapes", None, "Clip skip 2 (which shapes does not take)"),  # encoded with compel: said, not silently dropped
])
def test_an_infotexts_clip_skip_is_read_and_made_again_where_a1111_applies_it(tmp_path, capsys, model, applied, note):
    """Issue 26: rerun ignored Clip skip (19 of the runnable real infotexts have it)."""
    j = _import(tmp_path, capsys, INFOTEXT.format(model=model).replace("Size: 64x32", "Size: 64x64, Clip skip: 2"))
    assert Journal.open(j).get(1).params["clip_skip"] == 2
    code, out, err = run_cli(capsys, "rerun", "1", "--journal", j)
    assert code == 0, err
    (run,) = list_runs(Journal.open(j))
    assert run.record.params.clip_skip == applied
    assert (note in out + err) if note else "Clip skip" not in out + err


def test_an_infotexts_emphasis_mode_is_made_again(tmp_path, capsys):
    j = _import(tmp_path, capsys, INFOTEXT.format(model="tiny").replace("Size: 64x32", "Size: 64x64, Emphasis: No norm"))
    code, out, err = run_cli(capsys, "rerun", "1", "--strict", "--journal", j)  # nothing left out
    assert code == 0, out + err
    (run,) = list_runs(Journal.open(j))
    assert run.record.params.emphasis_mode == "No norm" and "Emphasis" not in out + err


def test_a_hires_fix_is_read_and_made_again_not_named_as_an_img2img_strength(tmp_path, capsys):
    """The coverage bench's find: rerun said 'denoising strength 0.5 (no init image is recorded)' for a hires fix;
    now its second pass is made (tests/test_hires.py tests it further)."""
    text = INFOTEXT.format(model="tiny") + ", Denoising strength: 0.5, Hires upscale: 2, Hires steps: 2, Hires upscaler: Latent"
    j = _import(tmp_path, capsys, text)
    params = Journal.open(j).get(1).params
    assert (params["hires_upscale"], params["hires_steps"], params["hires_upscaler"]) == (2.0, 2, "Latent")
    code, out, err = run_cli(capsys, "rerun", "1", "--journal", j)
    assert code == 0, err
    (run,) = list_runs(Journal.open(j))
    assert (run.record.params.hires, run.record.params.hires_strength) == (2.0, 0.5)
    assert "hires" not in (out + err).lower() and "no init image" not in out + err


def test_a1111_inpainting_fields_are_read_and_named_as_not_made_again(tmp_path, capsys):
    """A1111's img2img writes Mask blur, Mask mode, Inpaint area, Masked area padding and Masked content; an import has
    no init image or mask to paint with, so rerun names the inpainting in one line (and --strict refuses)."""
    text = INFOTEXT.format(model="tiny").replace("Size: 64x32", "Size: 64x64") + (
        ", Denoising strength: 0.6, Mask blur: 4, Mask mode: Inpaint not masked, Inpaint area: Only masked, "
        "Masked area padding: 32, Masked content: latent noise")
    j = _import(tmp_path, capsys, text)
    params = Journal.open(j).get(1).params
    assert {k: v for k, v in params.items() if k.startswith("mask_")} == {
        "mask_blur": 4, "mask_invert": True, "mask_area": "masked", "mask_padding": 32, "mask_fill": "latent-noise"}
    assert "not_applied" not in params
    code, out, err = run_cli(capsys, "rerun", "1", "--journal", j)
    assert code == 0, err
    said = [line for line in (out + err).splitlines() if "inpainting" in line]
    assert len(said) == 1 and ("Mask blur 4, Inpaint not masked, Only masked, padding 32, Masked content latent noise): "
                               "no init image or mask is recorded") in said[0], out + err
    code, out, err = run_cli(capsys, "rerun", "1", "--strict", "--journal", j)
    assert code != 0 and "inpainting (" in out + err


def test_an_extensions_quoted_model_is_not_the_checkpoint_and_what_is_not_applied_is_named(tmp_path, capsys):
    """The coverage bench's finds: a ControlNet unit's quoted `Model: …` was credited as the checkpoint, and fields
    promptism does not apply (an extension's, Eta …) were dropped without a word."""
    text = ("a castle\nSteps: 3, Sampler: Euler a, CFG scale: 5, Seed: 7, Size: 64x64, Model hash: fd9cdc26c3, "
            'Model: tiny, ControlNet 0: "Module: canny, Model: diffusers_xl_canny_full [2b69fca4], Weight: 1", '
            "Eta: 0.2, ADetailer model: face_yolov8n.pt, ENSD: 31337, Version: v1.10.1")
    j = _import(tmp_path, capsys, text)
    exp = Journal.open(j).get(1)
    assert (exp.model.id, exp.model.hash) == ("tiny", "fd9cdc26c3")
    assert exp.params["not_applied"] == ["ADetailer model", "ControlNet 0", "Eta"]  # (ENSD, Version: moot)
    code, out, err = run_cli(capsys, "rerun", "1", "--journal", j)
    assert code == 0, err
    assert "ADetailer model, ControlNet 0, Eta (A1111 settings or extensions' fields promptism does not apply)" in out + err


def test_a_size_that_is_no_multiple_of_8_is_made_as_a1111_made_it(tmp_path, capsys):
    """The coverage bench's find (3 of 53 real infotexts): 'Size: 540x840' was refused, and rerun has no --size to
    take the advice; A1111's latents are an eighth of the size, rounded down, so it made 536x840."""
    j = _import(tmp_path, capsys, INFOTEXT.format(model="tiny").replace("Size: 64x32", "Size: 70x36"))
    code, out, err = run_cli(capsys, "rerun", "1", "--journal", j)
    assert code == 0, err
    (run,) = list_runs(Journal.open(j))
    assert (run.record.params.width, run.record.params.height) == (64, 32)
    assert "size 70x36 as asked: A1111 made it 64x32" in out + err


def test_an_infotexts_lora_and_ti_hashes_and_ensd_are_read_as_promptisms_runs_record_them(tmp_path, capsys):
    """A1111 writes `Lora hashes` and `TI hashes` as "name: 12 hex digits" (quoted: they hold commas)."""
    text = (INFOTEXT.format(model="tiny") + ', ENSD: 31337, Lora hashes: "ink: 5E3FA0B2C1D4, sub/fine line: '
            '0123456789ab", TI hashes: "EasyNegative: c74b4e810b03, broken"')
    j = _import(tmp_path, capsys, text)
    params = Journal.open(j).get(1).params
    assert (params["loras"], params["embeddings"], params["ensd"]) == (
        ["ink: 5e3fa0b2c1d4", "sub/fine line: 0123456789ab"], ["EasyNegative: c74b4e810b03"], 31337)
    assert "not_applied" not in params


def test_an_unreadable_hash_entry_is_said_at_import(tmp_path, capsys):
    src = make_png(tmp_path / "a.png", text={"parameters": INFOTEXT.format(model="tiny") + ', TI hashes: "x: zz, y"'})
    code, out, err = run_cli(capsys, "import", str(src), "--title", "T", "--journal", str(tmp_path / "j"))
    assert code == 0 and "TI hashes: 2 entries are no 'NAME: HASH'" in out + err, out + err
    assert "embeddings" not in Journal.open(tmp_path / "j").get(1).params


@pytest.fixture
def webui(tmp_path):
    """An A1111 install with a kohya LoRA and an embedding for tiny."""
    import torch
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file

    from tests.test_loras import kohya_lora
    from workshop.runner.models import resolve

    folder = tmp_path / "webui"
    pipe = StableDiffusionPipeline.from_pretrained(resolve("tiny").path, local_files_only=True)
    kohya_lora(pipe, folder / "models" / "Lora" / "tinydetail.safetensors")
    (folder / "embeddings").mkdir()
    save_file({"emb_params": torch.randn(1, 32, generator=torch.Generator().manual_seed(3))},
              folder / "embeddings" / "tinystyle.safetensors")
    Path(os.environ["PROMPTISM_CONFIG"]).write_text(f'a1111 = "{folder}"\n', encoding="utf-8")
    return folder


def _hashed_infotext(lora: str, embedding: str, sampler: str = "Euler", ensd: str = "") -> str:
    return (f"a red circle <lora:tinydetail:0.7>\nNegative prompt: tinystyle\nSteps: 2, Sampler: {sampler}, CFG scale: 5, "
            f"Seed: 7, Size: 64x64, Model: tiny, {ensd}Lora hashes: \"tinydetail: {lora}\", "
            f"TI hashes: \"tinystyle: {embedding}\", Version: v1.10.1")


def test_a_lora_or_embedding_of_another_file_than_recorded_is_named_with_both_hashes_and_strict_refuses(
        webui, tmp_path, capsys):
    from workshop.runner.model_files import addnet_hash, hashes

    lora, embedding = webui / "models/Lora/tinydetail.safetensors", webui / "embeddings/tinystyle.safetensors"
    here = (addnet_hash(lora)[:12], hashes(embedding)[0][:12])  # A1111's: the LoRA's tensors, the embedding's file
    assert here[0] != hashes(lora)[0][:12]
    j = _import(tmp_path, capsys, _hashed_infotext("0123456789ab", "ba9876543210"))
    code, out, err = run_cli(capsys, "rerun", "1", "--strict", "--journal", j)
    assert code != 0 and list_runs(Journal.open(j)) == []
    assert err.splitlines() == [
        f"promptism: --strict: #1 is not made, as it would leave out LoRA tinydetail: the file here, "
        f"tinydetail.safetensors ({here[0]}), is a different file than the one it was made with (0123456789ab)",
        f"promptism: --strict: #1 is not made, as it would leave out embedding tinystyle: the file here, "
        f"tinystyle.safetensors ({here[1]}), is a different file than the one it was made with (ba9876543210)"]
    code, out, err = run_cli(capsys, "rerun", "1", "--journal", j)  # without --strict: made, and each named
    assert code == 0 and "LoRA tinydetail: the file here" in out and "embedding tinystyle: the file here" in out, out + err
    assert len(list_runs(Journal.open(j))) == 1


def test_the_files_it_was_made_with_rerun_strictly_and_a_missing_one_is_named(webui, tmp_path, capsys):
    from workshop.runner.model_files import addnet_hash, hashes

    lora, embedding = webui / "models/Lora/tinydetail.safetensors", webui / "embeddings/tinystyle.safetensors"
    short = hashes(embedding)[0][:12]
    j = _import(tmp_path, capsys, _hashed_infotext(addnet_hash(lora)[:12], short))
    code, out, err = run_cli(capsys, "rerun", "1", "--strict", "--journal", j)
    assert code == 0 and "not applied" not in out + err, out + err
    (run,) = list_runs(Journal.open(j))
    assert [e.split(":")[0] for e in run.record.params.loras + run.record.params.embeddings] == ["tinydetail", "tinystyle"]
    embedding.unlink()  # its word is a word now: said, never silently
    code, out, err = run_cli(capsys, "rerun", "1", "--strict", "--journal", j)
    assert code != 0 and err.count("\n") == 1, err
    assert (f"leave out embedding tinystyle ({short}): no embedding file of that name here, so its word is read as "
            "words (put the file in the embeddings folder)") in err
    lora.unlink()  # a LoRA that is not here: the one-line refusal of any run that names it
    code, out, err = run_cli(capsys, "rerun", "1", "--journal", j)
    assert code != 0 and err.count("\n") == 1 and "no lora 'tinydetail' here" in err, err
    assert len(list_runs(Journal.open(j))) == 1


@pytest.mark.parametrize("sampler, named", [("Euler a", True), ("DPM2 a Karras", True), ("DPM++ SDE Karras", False),
                                            ("Euler", False), ("DPM++ 2M Karras", False)])
def test_ensd_is_named_where_a1111_seeds_a_samplers_step_noise_with_it(tmp_path, capsys, sampler, named):
    """A1111 seeds the noise an ancestral sampler adds at each step with seed + ENSD; promptism draws it from the
    image's own generator. Its SDE samplers seed their Brownian tree with the seed alone, and the others add no
    noise, so ENSD changes nothing there."""
    j = _import(tmp_path, capsys, INFOTEXT.format(model="tiny").replace("Euler a", sampler) + ", ENSD: 31337")
    code, out, err = run_cli(capsys, "rerun", "1", "--strict", "--journal", j)
    line = f"ENSD 31337 (A1111 draws the noise {sampler} adds at each step from the seed + 31337; promptism draws it from the seed)"
    if named:
        assert code != 0 and err.splitlines() == [f"promptism: --strict: #1 is not made, as it would leave out {line}"]
        assert list_runs(Journal.open(j)) == []
        code, out, err = run_cli(capsys, "rerun", "1", "--journal", j)
        assert code == 0 and line in out, out + err
    else:
        assert code == 0 and "ENSD" not in out + err, out + err


def test_strict_refuses_naming_every_feature_on_a_line_of_its_own_and_lets_a1111s_own_rounding_through(
        tmp_path, capsys):
    text = (INFOTEXT.format(model="tiny").replace("Size: 64x32", "Size: 70x36").replace("Euler a", "Euler")
            + ", Clip skip: 2, Denoising strength: 0.5, Hires upscale: 2, ADetailer model: face_yolov8n.pt")
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    j = _import(tmp_path / "a", capsys, text)
    code, out, err = run_cli(capsys, "rerun", "1", "--strict", "--journal", j)
    assert code != 0 and list_runs(Journal.open(j)) == []
    assert [line.split(" leave out ")[1].split(" (")[0] for line in err.splitlines()] == [
        "A1111's hires fix", "ADetailer model"]  # (Clip skip 2 applies on tiny; the size is A1111's own rounding)
    j2 = _import(tmp_path / "b", capsys, INFOTEXT.format(model="tiny").replace("Size: 64x32", "Size: 70x36")
                 .replace("Euler a", "Euler"))
    code, out, err = run_cli(capsys, "rerun", "1", "--strict", "--journal", j2)
    assert code == 0 and "size 70x36 as asked: A1111 made it 64x32" in out and "not applied" not in out, out + err

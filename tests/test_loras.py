"""LoRAs as A1111 users write them (issue 26): ``<lora:NAME:STRENGTH>`` in a prompt, found in the A1111 install's
models/Lora, taken out of the text the encoder reads, applied at that strength — and a keyword like any other, so a
leave-one-out grid asks "does this LoRA help?" and a weight axis sweeps its strength."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from journal import Journal
from tests.helpers import generated, git, images_of, run_cli
from workshop.compose.emphasis import plain, weighted
from workshop.compose.errors import SpecError
from workshop.compose.networks import Network, networks, with_strength, without_networks
from workshop.runner.model_files import addnet_hash, short_hash
from workshop.runner.runs import list_runs


@pytest.mark.parametrize("text, found", [
    ("a cat <lora:detail>", (Network("detail", 1.0, 1.0),)),
    ("a cat <lora:detail:0.8>", (Network("detail", 0.8, 0.8),)),
    ("<lora:detail:0.5:1.2>, a cat", (Network("detail", 0.5, 1.2),)),  # A1111 1.5+: text encoder, then UNet
    ("<lora:detail:unet=0.3:te=0.9>", (Network("detail", 0.9, 0.3),)),
    ("<lyco:style:0.7> <lora:detail:1> <lora:detail:0.4>", (Network("style", 0.7, 0.7), Network("detail", 0.4, 0.4))),
    ("a cat, no tags", ()),
])
def test_tags_are_read_as_a1111_reads_them(text, found):
    assert networks(text) == found


@pytest.mark.parametrize("text, said", [
    ("<hypernet:anime:1>", "<hypernet:…> is an extra network promptism does not apply"),
    ("<lora:detail:strong>", "a strength is a number"),
    ("<lora:detail:inf>", "a finite number"),
])
def test_a_tag_promptism_cannot_apply_is_refused(text, said):
    with pytest.raises(SpecError, match=said):
        networks(text)


def test_a_tag_is_no_words_and_a_weight_is_its_strength():
    assert without_networks("a cat <lora:detail:0.8>, glowing") == "a cat , glowing"
    assert plain("a (cat:1.2) <lora:detail:0.8>") == "a cat "
    assert with_strength("<lora:detail:0.8>", 0.25) == "<lora:detail:0.25>"
    assert weighted("<lora:detail>", 0.5) == "<lora:detail:0.5>" and weighted("glowing", 0.5) == "(glowing:0.5)"


def kohya_lora(pipe, path: Path, seed: int = 0) -> Path:
    """A LoRA in kohya's format (A1111's) for ``pipe``'s UNet attention and text encoder: random, rank 4."""
    from safetensors.torch import save_file

    generator, rank, weights = torch.Generator().manual_seed(seed), 4, {}
    parts = [("lora_unet_", pipe.unet, lambda n: "attn" in n and n.rsplit(".", 1)[-1] in ("to_q", "to_k", "to_v")),
             ("lora_te_text_model_", pipe.text_encoder, lambda n: "self_attn" in n)]
    for prefix, module, wanted in parts:
        for name, layer in module.named_modules():
            if isinstance(layer, torch.nn.Linear) and wanted(name):
                key = prefix + name.removeprefix("text_model.").replace(".", "_")
                weights[key + ".lora_down.weight"] = torch.randn(rank, layer.in_features, generator=generator) * 0.5
                weights[key + ".lora_up.weight"] = torch.randn(layer.out_features, rank, generator=generator) * 0.5
                weights[key + ".alpha"] = torch.tensor(float(rank))
    assert {k.split("_")[1] for k in weights} == {"unet", "te"} and not any("base_layer" in k for k in weights)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(weights, path)
    return path


@pytest.fixture
def webui(tmp_path):
    from workshop.runner.models import resolve

    from diffusers import StableDiffusionPipeline

    folder = tmp_path / "webui"  # (a pipeline of its own: the warm one may hold another test's LoRA layers)
    pipe = StableDiffusionPipeline.from_pretrained(resolve("tiny").path, local_files_only=True)
    kohya_lora(pipe, folder / "models" / "Lora" / "tinydetail.safetensors")
    Path(os.environ["PROMPTISM_CONFIG"]).write_text(f'a1111 = "{folder}"\n', encoding="utf-8")
    return folder


def test_a_lora_changes_the_picture_at_its_strength_and_at_0_is_none(webui, tmp_path, capsys):
    made = {prompt: generated(capsys, tmp_path / "j", prompt)
            for prompt in ("a red circle", "a red circle <lora:tinydetail:1>", "a red circle <lora:tinydetail:0>",
                           "a red circle <lora:tinydetail:0.5>", "a red circle <lora:tinydetail:0:1>")}
    plain_bytes = images_of(made["a red circle"])
    assert images_of(made["a red circle <lora:tinydetail:0>"]) == plain_bytes  # strength 0: the model's own
    full, half = images_of(made["a red circle <lora:tinydetail:1>"]), images_of(made["a red circle <lora:tinydetail:0.5>"])
    unet_only = images_of(made["a red circle <lora:tinydetail:0:1>"])
    assert len({full[0], half[0], unet_only[0], plain_bytes[0]}) == 4
    record = made["a red circle <lora:tinydetail:1>"].record
    lora_file = webui / "models" / "Lora" / "tinydetail.safetensors"  # A1111's LoRA hash: the tensors after the header
    assert record.params.loras == [f"tinydetail: {addnet_hash(lora_file)[:12]}"] != [f"tinydetail: {short_hash(lora_file)}"]
    assert record.spec.prompt == "a red circle <lora:tinydetail:1>"  # recorded as written
    assert made["a red circle"].record.params.loras is None


def test_does_this_lora_help_a_leave_one_out_grid_and_a_strength_sweep(webui, tmp_path, capsys):
    j = str(tmp_path / "j")
    code, _, err = run_cli(capsys, "grid", "-p", "a red circle", "-k", "<lora:tinydetail>", "-k", "glowing",
                           "--mode", "leave-one-out", "--model", "tiny", "--steps", "2", "--clip", "none",
                           "--journal", j)
    assert code == 0, err
    (run,) = list_runs(Journal.open(tmp_path / "j"))
    prompts = [c.prompt for c in run.record.cells]
    assert prompts == ["a red circle, <lora:tinydetail>, glowing", "a red circle, glowing", "a red circle, <lora:tinydetail>"]
    assert len(set(images_of(run))) == 3
    code, _, err = run_cli(capsys, "accept", run.id, "--title", "Detail or not", "--journal", j)
    assert code == 0, err
    message = git(tmp_path / "j", "log", "-1", "--format=%B")  # the LoRA credited like the model, the prompt not
    assert "Model: tiny (StableDiffusionPipeline, DDIMScheduler) with LoRA tinydetail" in message, message
    assert "red circle" not in message and "<lora" not in message
    code, out, _ = run_cli(capsys, "log", "--journal", j)
    assert "tiny with LoRA tinydetail" in out
    code, out, err = run_cli(capsys, "rerun", "1", "--verify", "--journal", j)
    assert code == 0 and "identical" in out + err, out + err
    code, _, err = run_cli(capsys, "grid", "-p", "a red circle", "-k", "<lora:tinydetail>", "--x",
                           "weight:<lora:tinydetail>=0,0.5,1", "--model", "tiny", "--steps", "2", "--clip", "none",
                           "--journal", j)
    assert code == 0, err
    (sweep,) = [r for r in list_runs(Journal.open(tmp_path / "j")) if r.id != run.id and r.record.spec.axes]
    assert [c.prompt for c in sweep.record.cells] == ["a red circle, <lora:tinydetail:0>", "a red circle, "
                                                      "<lora:tinydetail:0.5>", "a red circle, <lora:tinydetail>"]
    assert len(set(images_of(sweep))) == 3


@pytest.mark.parametrize("prompt, negative, said", [
    ("a red circle <lora:nosuch:1>", "", "no lora 'nosuch' here; found: tinydetail"),
    ("a red circle", "<lora:tinydetail:1>", "LoRA tags apply from the prompt: take <lora:…> out of the negative prompt"),
    ("a red circle <hypernet:anime:1>", "", "<hypernet:…> is an extra network promptism does not apply"),
])
def test_a_lora_that_cannot_apply_is_one_line_and_nothing_is_written(webui, tmp_path, capsys, prompt, negative, said):
    code, _, err = run_cli(capsys, "generate", prompt, "--negative", negative, "--model", "tiny", "--steps", "1",
                           "--journal", str(tmp_path / "j"))
    assert code != 0 and said in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "j").exists()


def test_a_lora_for_another_model_family_is_one_line_before_any_run_and_leaves_nothing_behind(webui, tmp_path, capfd):
    """An SDXL LoRA on an SD 1.x model: one line on the terminal (diffusers logged a line per layer), no run, and the
    warm model without a half-loaded adapter (a LoRA that fits makes the same bytes before and after)."""
    from tests.test_weights import tiny_sdxl
    from workshop.cli import main

    kohya_lora(tiny_sdxl(), webui / "models" / "Lora" / "xlstyle.safetensors")
    j = str(tmp_path / "j")

    def fitting() -> list[bytes]:
        assert main(["generate", "a red circle <lora:tinydetail:1>", "--model", "tiny", "--steps", "1", "--clip", "none",
                     "--journal", j]) == 0
        return images_of(max(list_runs(Journal.open(j)), key=lambda r: r.record.created_ns))

    before = fitting()
    capfd.readouterr()
    code = main(["generate", "a red circle <lora:xlstyle:1>", "--model", "tiny", "--steps", "1", "--journal", j])
    _, err = capfd.readouterr()  # (the file descriptor's: what a terminal shows, loggers included)
    assert code == 1 and err.count("\n") == 1, err
    assert "LoRA xlstyle (xlstyle.safetensors) does not fit this model: its layers have other sizes" in err
    assert len(list_runs(Journal.open(j))) == 1  # no run for it
    assert fitting() == before


def test_two_loras_at_once_load_without_peft_s_warning(webui, tmp_path, capsys):
    from diffusers import StableDiffusionPipeline

    from workshop.runner.models import resolve

    pipe = StableDiffusionPipeline.from_pretrained(resolve("tiny").path, local_files_only=True)
    kohya_lora(pipe, webui / "models" / "Lora" / "second.safetensors", seed=1)
    import warnings

    with warnings.catch_warnings(record=True) as caught:  # (what a terminal would show on stderr)
        warnings.simplefilter("always")
        code, out, err = run_cli(capsys, "generate", "a red circle <lora:tinydetail:1> <lora:second:0.5>", "--model",
                                 "tiny", "--steps", "1", "--clip", "none", "--journal", str(tmp_path / "j"))
    assert code == 0 and "peft_config" not in out + err, err
    assert not [w for w in caught if "peft_config" in str(w.message)]

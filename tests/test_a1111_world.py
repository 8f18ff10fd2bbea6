"""Issue 26's "done when": an A1111 infotext that uses every feature promptism makes — emphasis in its No norm mode,
a LoRA and an embedding from the install (their hashes), a prompt past 75 tokens, prompt editing and alternation,
Clip skip, a hires fix, the install's VAE, Tiling — imported, made again with each of them applied (nothing named
as left out but the variation seed a hires fix cannot take), and made again byte for byte."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from journal import Journal
from tests.helpers import images_of, make_png, run_cli, tiny_pipeline
from tests.ldm_export import write_vae_file
from tests.test_loras import kohya_lora
from workshop.compose.tokens import clip_bpe, windows
from workshop.runner.model_files import addnet_hash, hashes, short_hash
from workshop.runner.runs import list_runs


def test_an_infotext_using_every_feature_is_imported_and_made_again_with_them_all(tmp_path, capsys):
    from safetensors.torch import save_file

    webui = tmp_path / "webui"
    pipe = tiny_pipeline()
    lora = kohya_lora(pipe, webui / "models" / "Lora" / "tinydetail.safetensors")
    vae = write_vae_file(pipe.vae, webui / "models" / "VAE" / "tinyvae.safetensors", change=0.02)
    (webui / "embeddings").mkdir(parents=True)
    embedding = webui / "embeddings" / "tinystyle.safetensors"
    save_file({"emb_params": torch.randn(2, 32, generator=torch.Generator().manual_seed(3))}, embedding)
    Path(os.environ["PROMPTISM_CONFIG"]).write_text(f'a1111 = "{webui}"\n', encoding="utf-8")

    filler = ", ".join(f"detail {i}" for i in range(30))  # past 75 tokens: a second window
    prompt = (f"masterpiece, (a [cat:dog:0.5] in a garden:1.2), tinystyle, [red|blue] flowers, {filler}, "
              "<lora:tinydetail:0.7>")
    assert windows(prompt, clip_bpe()) == 2
    infotext = (f"{prompt}\nNegative prompt: blurry, [lowres::2]\n"
                "Steps: 3, Sampler: Euler a, Schedule type: Automatic, CFG scale: 5, Seed: 7, Size: 64x64, Model: tiny, "
                "Denoising strength: 0.6, Clip skip: 2, Hires upscale: 2, Hires steps: 2, Hires upscaler: Latent, "
                f"Emphasis: No norm, VAE: tinyvae.safetensors, VAE hash: {short_hash(vae)}, Tiling: True, "
                "Variation seed: 9, Variation seed strength: 0.3, "
                f'Lora hashes: "tinydetail: {addnet_hash(lora)[:12]}", TI hashes: "tinystyle: {hashes(embedding)[0][:12]}", '
                "Version: v1.10.1")
    j = str(tmp_path / "j")
    code, _, err = run_cli(capsys, "import", str(make_png(tmp_path / "a1111.png", text={"parameters": infotext})),
                           "--title", "Everything at once", "--journal", j)
    assert code == 0, err

    code, out, err = run_cli(capsys, "rerun", "1", "--journal", j)
    assert code == 0, out + err
    not_applied = (out + err).split("(not applied: ", 1)[1]  # one list, every feature it leaves out named
    assert not_applied.startswith("Variation seed 9 (strength 0.3) with the hires fix") and not_applied.count(";") == 0
    for applied in ("Clip skip", "Emphasis", "VAE", "Tiling", "tinydetail", "tinystyle", "Lora", "TI hashes", "Hires"):
        assert applied not in not_applied, (applied, not_applied)
    (run,) = list_runs(Journal.open(j))
    p = run.record.params
    assert (p.clip_skip, p.hires, p.hires_steps, p.hires_strength, p.hires_upscaler, p.emphasis_mode, p.tiling) == (
        2, 2.0, 2, 0.6, "Latent", "No norm", True)
    assert p.vae == f"tinyvae.safetensors: {short_hash(vae)}" and p.variation_seed is None
    assert p.loras == [f"tinydetail: {addnet_hash(lora)[:12]}"] and p.embeddings == [f"tinystyle: {hashes(embedding)[0][:12]}"]
    assert run.record.cells[0].prompt == prompt and run.record.cells[0].negative == "blurry, [lowres::2]"
    from PIL import Image
    assert Image.open(run.image(run.record.cells[0])).size == (128, 128)  # the hires fix's size

    code, out, err = run_cli(capsys, "rerun", "1", "--journal", j)  # made again: the same bytes
    assert code == 0, out + err
    again = next(r for r in list_runs(Journal.open(j)) if r.id != run.id)
    assert images_of(again) == images_of(run)
    code, out, err = run_cli(capsys, "rerun", "1", "--strict", "--journal", j)  # strict: the variation seed refuses
    assert code != 0 and "ariation seed" in err and len(list_runs(Journal.open(j))) == 2

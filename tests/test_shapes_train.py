"""The shapes training script, end to end at toy scale: it produces a pipeline folder the runner loads."""

import pytest
import torch

from workshop.runner.models import ModelSource, load_pipeline
from workshop.shapes.train import main, train


def test_training_writes_a_loadable_safetensors_pipeline(tmp_path):
    out = tmp_path / "shapes"
    lines = []
    train(out, size=32, count=64, vae_steps=2, unet_steps=2, batch=8, seed=0, polish_steps=2, log=lines.append)
    assert any(line.startswith("unet 1/2") for line in lines) and (out / "model_index.json").exists()
    assert list(out.rglob("*.safetensors")) and not list(out.rglob("*.bin"))
    pipe = load_pipeline(ModelSource("shapes-test", "local", out, "test"), torch.device("cpu"))
    image = pipe("a red circle on a blue background", num_inference_steps=2, height=32, width=32,
                 generator=torch.Generator("cpu").manual_seed(0)).images[0]
    assert image.size == (32, 32) and pipe.vae.config.scaling_factor != 0.18215  # the trained scale, not SD's
    assert len(pipe.tokenizer) == pipe.text_encoder.config.vocab_size < 1000  # the compact vocabulary
    assert pipe.unet.config.addition_embed_type == "text"


def test_a_run_can_start_from_an_earlier_runs_autoencoder(tmp_path):
    from safetensors.torch import load_file

    first, second = tmp_path / "first", tmp_path / "second"
    train(first, size=32, count=64, vae_steps=2, unet_steps=1, batch=8, seed=0, polish_steps=1, log=lambda _: None)
    lines = []
    train(second, size=32, count=64, vae_steps=2, unet_steps=1, batch=8, seed=1, polish_steps=1, vae_from=first / "vae",
          log=lines.append)
    assert f"autoencoder from {first / 'vae'}" in lines and not any(line.startswith("vae ") for line in lines)
    before, after = (load_file(str(d / "vae" / "diffusion_pytorch_model.safetensors")) for d in (first, second))
    encoder = [k for k in before if k.startswith(("encoder.", "quant_conv."))]
    assert encoder and all(torch.equal(before[k], after[k]) for k in encoder)  # the encoder, and so its latents, kept
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))  # only polished


def test_a_folder_without_a_saved_autoencoder_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    for args in (["--out", str(tmp_path / "out"), "--vae", str(tmp_path)], ["--polish", str(tmp_path)]):
        monkeypatch.setattr("sys.argv", ["train.py", *args])
        with pytest.raises(SystemExit) as stop:
            main()
        assert stop.value.code == 2 and "holds no saved autoencoder" in capsys.readouterr().err.splitlines()[-1]
    assert list(tmp_path.iterdir()) == []  # nothing written

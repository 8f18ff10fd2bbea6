"""shapes-clip training at toy scale: the loss falls and the weights load back into the same architecture."""

import torch
from safetensors.torch import load_file

from workshop.shapes.clip import create, train


def test_clip_training_lowers_the_loss_and_saves_safetensors(tmp_path):
    lines = []
    out = tmp_path / "shapes-clip.safetensors"
    train(out, steps=12, batch=32, seed=0, log=lines.append)
    losses = [float(line.split("loss ")[1].split()[0]) for line in lines if line.startswith("clip ")]
    assert losses[-1] < losses[0]
    model, _, _ = create(seed=1)
    model.load_state_dict(load_file(str(out)))
    assert torch.equal(model.logit_scale, load_file(str(out))["logit_scale"])

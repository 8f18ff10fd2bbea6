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
    saved = load_file(str(out))
    assert all(v.dtype == torch.float16 for v in saved.values())  # half the bytes to ship
    assert torch.equal(model.logit_scale.half(), saved["logit_scale"])


def test_hard_negative_siblings_differ_only_in_shape_and_stay_in_training():
    import dataclasses
    import random

    from workshop.shapes.clip import scenes_with_siblings

    scenes = scenes_with_siblings(random.Random(1), 64, hard=0.5)
    base, siblings = scenes[:16], scenes[48:]
    assert len(scenes) == 64 and not any(s.held_out for s in scenes)
    for a, b in zip(base, siblings):
        assert a.shape != b.shape and dataclasses.replace(b, shape=a.shape) == a

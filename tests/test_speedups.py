"""Speed-ups (--compile, --channels-last, --tf32, or the settings): the ones that are on are recorded in the run and
the journal, rerun and resume apply them again to the very same bytes, a compiled or channels-last model is kept warm
apart from a plain one, TF32 is set for the run only; what cannot work is refused in one line.

TF32 and a GPU's compile (Triton) need a CUDA GPU: here, on the CPU, the TF32 setting is checked as torch state (set
during the run, restored after it); inductor compiles C++ kernels on the CPU for real."""

import os
import subprocess
from pathlib import Path

import pytest
import torch
import torch._dynamo
from diffusers.utils.torch_utils import is_compiled_module
from pydantic import ValidationError

from journal import Journal
from tests.helpers import EXE, run_cli
from workshop.contract import GivenOptions, Spec
from workshop.compose.grid import build_grid
from workshop.compose.spec import spec_from
from workshop.paths import cache_dir
from workshop.runner import events as ev
from workshop.runner import speedups
from workshop.errors import RunError
from workshop.runner.models import PIPELINES, Warm, load_pipeline, loaded_models, resolve
from workshop.runner.runs import accept_run, list_runs
from workshop.runner.options import resolve as resolve_options
from workshop.runner.execution import RunOptions, execute, rerun, resume
from workshop.runner.speedups import Speedups
from workshop.service.api import JobRequest
from workshop.settings import Settings

CPU = torch.device("cpu")


def grid(seeds: str = "1-3"):
    return build_grid(spec_from({"prompt": "two small red stars on a blue background", "seeds": seeds}))


def pngs(run) -> dict[str, bytes]:
    return {c.file: run.image(c).read_bytes() for c in run.done}


@pytest.fixture
def cold():
    """No model warm before the test (pipelines nor scorers), none left after it."""
    for pool in Warm.pools:
        pool.entries.clear()
    yield
    for pool in Warm.pools:
        pool.entries.clear()


@pytest.fixture(scope="session")
def micro(model_cache) -> Path:
    """The smallest Stable Diffusion pipeline that is still one: a UNet of one 8-channel block without attention, so
    inductor compiles a handful of C++ kernels (the built-in shapes UNet takes ~90 s to compile on 2 cores)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = model_cache / "micro"
    if (folder / "model_index.json").exists():
        return folder
    tokenizer = CLIPTokenizer.from_pretrained(resolve("tiny").path / "tokenizer")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, layers_per_block=1, block_out_channels=(8,), down_block_types=("DownBlock2D",),
                                up_block_types=("UpBlock2D",), mid_block_type=None, cross_attention_dim=8, norm_num_groups=4)
    vae = AutoencoderKL(block_out_channels=(8,), norm_num_groups=4, down_block_types=("DownEncoderBlock2D",),
                        up_block_types=("UpDecoderBlock2D",))
    text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=8, intermediate_size=8, num_hidden_layers=1, num_attention_heads=2,
                                                bos_token_id=49406, eos_token_id=49407, pad_token_id=49407))
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
                            safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(folder, safe_serialization=True)
    return folder


def test_a_channels_last_run_is_recorded_and_resumes_and_reruns_to_the_same_bytes(tmp_path, cold):
    journal = Journal.init(tmp_path / "j")
    options = RunOptions(model="shapes", clip="none", max_batch=2, speedups=Speedups(channels_last=True))
    finished = []
    run = execute(grid(), options, journal, on_event=lambda e: finished.append(e) if isinstance(e, ev.BatchFinished) else None,
                  cancel=lambda: len(finished) >= 1)
    assert run.state == "cancelled" and len(run.done) == 2
    assert run.record.params.channels_last is True and {"compile", "tf32"}.isdisjoint(run.record.params.dump())
    assert loaded_models() == ["shapes on cpu (channels-last)"]
    unet = load_pipeline(resolve("shapes"), CPU, speedups=Speedups(channels_last=True)).unet
    assert unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)

    PIPELINES.entries.clear()
    resume(journal, run, RunOptions())  # the plain options of `promptism resume`: the run's own speed-ups apply
    assert run.state == "finished" and len(run.done) == 3 and loaded_models() == ["shapes on cpu (channels-last)"]
    whole = execute(grid(), options, Journal.init(tmp_path / "whole"))
    assert pngs(run) == pngs(whole)  # every PNG, byte for byte

    exp = accept_run(journal, run, "channels last")
    assert exp.params["channels_last"] is True and "compile" not in exp.params
    PIPELINES.entries.clear()
    again, identical = rerun(journal, exp.number, RunOptions())
    assert identical and again.record.verified is True and again.record.params.channels_last is True
    assert loaded_models() == ["shapes on cpu (channels-last)"]


def test_a_compiled_run_is_recorded_and_reruns_in_a_new_process_to_the_same_bytes(tmp_path, micro, cold, monkeypatch):
    """One batch shape, so inductor compiles once here (35–70 s on 2 busy cores); the rerun in a new process finds
    the kernels in promptism's cache."""
    j = tmp_path / "j"
    journal = Journal.init(j)
    options = RunOptions(model=str(micro), clip="none", steps=2, max_batch=2, speedups=Speedups(compile=True))
    limits = set()
    run = execute(grid("1-2"), options, journal, on_event=lambda e: isinstance(e, ev.Step)
                  and limits.add(torch._dynamo.config.recompile_limit))
    assert run.state == "finished" and run.record.params.compile is True and "channels_last" not in run.record.params.dump()
    assert limits == {speedups.RECOMPILE_LIMIT} and torch._dynamo.config.recompile_limit == 8  # for the run only
    compiled = load_pipeline(resolve(str(micro)), CPU, speedups=Speedups(compile=True))  # the warm one
    assert is_compiled_module(compiled.unet) and loaded_models() == ["micro on cpu (compiled)"]
    kernels = cache_dir() / "inductor"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(kernels) and any((kernels / "fxgraph").rglob("*"))

    plain = execute(grid("1-2"), RunOptions(model=str(micro), clip="none", steps=2, max_batch=2), Journal.init(tmp_path / "p"))
    assert "compile" not in plain.record.params.dump()  # a plain run after a compiled one gets a plain model
    assert not is_compiled_module(load_pipeline(resolve(str(micro)), CPU).unet)
    assert loaded_models() == ["micro on cpu (compiled)", "micro on cpu"]

    exp = accept_run(journal, run, "compiled")
    assert exp.params["compile"] is True
    again = subprocess.run([EXE, "rerun", str(exp.number), "--verify", "--journal", str(j)], capture_output=True, text=True)
    assert again.returncode == 0 and "pixel-identical" in again.stdout, again.stdout + again.stderr[-2000:]
    assert list_runs(Journal.open(j))[0].record.params.compile is True

    monkeypatch.setattr(speedups, "RECOMPILE_LIMIT", 1)  # a second batch shape is one too many: never run eagerly
    with pytest.raises(RunError, match="compiled for 1 batch shapes in this process, the most it keeps"):
        execute(grid("1-3"), options, journal)
    failed = list_runs(journal)[0]
    assert failed.state == "failed" and len(failed.done) == 2


def test_tf32_is_set_for_the_run_only_and_restored_even_when_it_fails(tmp_path):
    journal = Journal.init(tmp_path / "j")
    seen = []

    def during(event):
        if isinstance(event, ev.Step):
            seen.append(torch.get_float32_matmul_precision())

    run = execute(grid("1"), RunOptions(model="shapes", clip="none", speedups=Speedups(tf32=True)), journal, on_event=during)
    assert set(seen) == {"high"} and torch.get_float32_matmul_precision() == "highest"
    assert run.record.params.tf32 is True and accept_run(journal, run, "tf32").params["tf32"] is True

    torch.set_float32_matmul_precision("high")  # left at TF32 by someone else: a run without it still runs without it
    try:
        seen.clear()
        execute(grid("1"), RunOptions(model="shapes", clip="none"), journal, on_event=during)
        assert set(seen) == {"highest"} and torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision("highest")

    def fail(event):
        if isinstance(event, ev.Step):
            raise RuntimeError("the run breaks")

    with pytest.raises(RuntimeError, match="the run breaks"):
        execute(grid("1"), RunOptions(model="shapes", clip="none", speedups=Speedups(tf32=True)), journal, on_event=fail)
    assert torch.get_float32_matmul_precision() == "highest"


def test_settings_turn_speedups_on_and_a_flag_turns_one_off_for_a_run(tmp_path, capsys):
    Path(os.environ["PROMPTISM_CONFIG"]).write_text("tf32 = true\nchannels_last = true\n", encoding="utf-8")
    j = tmp_path / "j"
    for flags in ([], ["--no-tf32"], ["--no-channels-last", "--tf32"]):
        code, _, err = run_cli(capsys, "generate", "a red circle", "--clip", "none", *flags, "--journal", str(j))
        assert code == 0, err
    runs = list_runs(Journal.open(j))  # newest first
    assert [{k: v for k, v in r.record.params.dump().items() if k in ("compile", "channels_last", "tf32")} for r in runs] \
        == [{"tf32": True}, {"channels_last": True}, {"channels_last": True, "tf32": True}]


@pytest.mark.parametrize("args, fragment", [
    (["--model", "vqgan-clip:shapes+shapes-clip", "--compile"], "--compile and --channels-last are for diffusion models"),
    (["--model", "vqgan-clip:shapes+shapes-clip", "--channels-last"], "the vqgan-clip backend has no UNet"),
    (["--compile"], "--compile on the CPU needs a C++ compiler"),
])
def test_a_speedup_that_cannot_work_is_one_line_and_writes_nothing(args, fragment, tmp_path, capsys, monkeypatch):
    import torch._inductor.config

    monkeypatch.setattr(torch._inductor.config.cpp, "cxx", (None, str(tmp_path / "no-such-c++")))  # none to be found
    j = tmp_path / "j"
    code, out, err = run_cli(capsys, "generate", "a red circle", *args, "--journal", str(j))
    assert code == 1 and err.count("\n") == 1 and fragment in err and "internal error" not in err, err
    assert not j.exists()


def test_speedups_travel_to_the_service_and_a_bad_one_is_refused():
    given = GivenOptions(model="tiny", compile=True, tf32=True)
    request = JobRequest(kind="grid", journal="/j", spec=Spec(prompt="a"), options=given)
    assert JobRequest.model_validate_json(request.model_dump_json()) == request
    resolved = resolve_options(request.spec, request.options, Settings(channels_last=True))
    assert resolved.speedups == Speedups(compile=True, channels_last=True, tf32=True)  # flags over the settings
    with pytest.raises(ValidationError, match="flash"):
        JobRequest.model_validate({**request.model_dump(mode="json"), "options": {"flash": True}})
    with pytest.raises(ValidationError, match="tf32"):
        JobRequest.model_validate({**request.model_dump(mode="json"), "options": {"tf32": "yes"}})
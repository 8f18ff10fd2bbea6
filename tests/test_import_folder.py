"""`promptism import DIR`: an experiment per image or per batch, titles, dry runs, bad files skipped with a reason,
re-runs that change nothing, a bounded number of commits, and a kill -9 in the middle that a re-run completes."""

import json
import os
import signal
import subprocess
import sys

import pytest

import journal.importing
from journal import Journal
from tests import import_samples as samples
from tests.helpers import assert_consistent, declared_png, git, make_png, poll_until, pty_run, run_cli


@pytest.fixture
def folder(tmp_path):
    """An A1111 batch of three (consecutive seeds), another image, a ComfyUI image in a subfolder, and junk."""
    root = tmp_path / "outputs"
    (root / "comfy").mkdir(parents=True)
    for k, seed in enumerate((500, 501, 502), 1):
        samples.a1111_png(root / f"0000{k}-{seed}.png", seed=seed)
    samples.a1111_png(root / "00004-77.png", seed=77, prompt="a quiet harbour, fog")
    samples.comfy_png(root / "comfy" / "ComfyUI_00001_.png", samples.comfy_graph())
    (root / "00004-77.txt").write_text("a quiet harbour, fog")
    (root / "empty.png").write_bytes(b"")
    (root / "cut.jpg").write_bytes(samples.a1111_jpeg(tmp_path / "whole.jpg").read_bytes()[:300])
    declared_png(root / "huge.png", 20_000, 20_000)
    return root


def commits(jdir) -> int:
    return int(git(jdir, "rev-list", "--count", "HEAD"))


def test_each_image_its_own_experiment_and_a_rerun_is_a_no_op(folder, tmp_path, capsys):
    jdir = str(tmp_path / "j")
    code, out, err = run_cli(capsys, "import", str(folder), "--title", "Harbour study", "--journal", jdir)
    assert code == 0, err
    assert "imported 4 image(s) as 4 experiment(s) (#1–#4, 1 commit(s)); skipped 1; failed 3" in out
    assert "00004-77.txt: not a PNG, JPEG or WebP image" in out
    assert "empty.png" in err and "cut.jpg" in err and "Pillow can read" in err and "huge.png declares 20000×20000" in err
    assert "lighthouse" not in out + err and "harbour, fog" not in out + err  # no prompt in any line
    exps = sorted(Journal.open(jdir).list(limit=None), key=lambda e: e.number)
    assert [(e.title, e.images[0].seed) for e in exps] == [("Harbour study 1", 500), ("Harbour study 2", 501),
                                                          ("Harbour study 3", 502), ("Harbour study 4", 77)]
    assert exps[3].prompt == "a quiet harbour, fog" and exps[3].params["imported_from"] == "automatic1111"
    assert commits(jdir) == 2  # the journal's first, and one for the folder
    code, out, err = run_cli(capsys, "import", str(folder), "--title", "Harbour study", "--journal", jdir)
    assert code == 0 and "imported 0 image(s)" in out and out.count("already in the journal") == 4, out + err
    assert commits(jdir) == 2 and len(Journal.open(jdir)) == 4
    assert_consistent(tmp_path / "j")


def test_recursive_and_group_with_a_titles_file(folder, tmp_path, capsys):
    titles = tmp_path / "titles.toml"
    titles.write_text('"00002-501.png" = "Lighthouse batch"\n"comfy/ComfyUI_00001_.png" = "Bottle"\n')
    jdir = str(tmp_path / "j")
    code, out, err = run_cli(capsys, "import", str(folder), "--recursive", "--group", "--titles", str(titles),
                             "--title", "Other", "--journal", jdir)
    assert code == 0, err
    exps = sorted(Journal.open(jdir).list(limit=None), key=lambda e: e.number)
    assert [(e.title, [i.seed for i in e.images]) for e in exps] == [
        ("Lighthouse batch", [500, 501, 502]), ("Other 1", [77]), ("Bottle", [156680208700286])]
    assert exps[0].keywords[0] == "masterpiece" and exps[2].model.id == "v1-5-pruned-emaonly.safetensors"


def test_dry_run_lists_fields_hides_prompts_and_writes_nothing(folder, tmp_path, capsys):
    jdir = tmp_path / "j"
    code, out, err = run_cli(capsys, "import", str(folder), "--group", "--dry-run", "-t", "Try", "--journal", str(jdir))
    assert code == 0, err
    assert "would import 4 image(s) as 2 experiment(s)" in out
    assert "Try 1: 00001-500.png … 00003-502.png" in out
    assert "automatic1111 · v1-5-pruned-emaonly · seed 500–502 · steps 20 · cfg 7.5 · DPM++ 2M Karras · 512x768" in out
    assert "prompt hidden (5 keywords" in out and "lighthouse" not in out
    assert not jdir.exists()
    code, out, _ = run_cli(capsys, "import", str(folder), "--dry-run", "--reveal-prompt", "-t", "Try", "--journal", str(jdir))
    assert code == 0 and "a quiet harbour, fog" in out
    code, out, err = run_cli(capsys, "import", str(folder), "--group", "--dry-run", "--journal", str(jdir))
    assert code == 0 and "untitled 1: 00001-500.png … 00003-502.png" in out, out + err  # a plan needs no title yet
    assert not jdir.exists()


def test_nothing_importable_fails_saying_why_on_stderr(tmp_path, capsys):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.png").write_bytes(b"not a png")
    (junk / "notes.txt").write_text("hello")
    code, out, err = run_cli(capsys, "import", str(junk), "-t", "T", "--journal", str(tmp_path / "j"))
    assert code != 0 and "imported 0 image(s)" in out and "a.png" in err
    assert err.splitlines()[-1] == "promptism: nothing imported: 1 image(s) failed (said above)", err
    (junk / "a.png").unlink()
    code, out, err = run_cli(capsys, "import", str(junk), "-t", "T", "--journal", str(tmp_path / "j"))
    assert code != 0 and "skipped 1" in out  # nothing but a text file: nothing could be imported, and stderr says so
    assert err == ("promptism: nothing imported: none of the 1 file(s) is a PNG, JPEG or WebP image (--recursive reads "
                   "the subfolders)\n"), err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, "import", str(empty), "-t", "T", "--journal", str(tmp_path / "j"))
    assert code != 0 and "no files in" in err and err.count("\n") == 1


def test_a_titles_file_nested_too_deeply_is_one_line(folder, tmp_path, capsys):
    titles = tmp_path / "titles.toml"
    titles.write_text('"00001-500.png" = ' + "[" * 3000 + '"Deep"' + "]" * 3000 + "\n")
    code, out, err = run_cli(capsys, "import", str(folder), "--titles", str(titles), "--journal", str(tmp_path / "j"))
    assert code == 1 and err.count("\n") == 1, err
    assert f"--titles {titles} is nested too deeply to be a titles file" in err, err
    assert not (tmp_path / "j").exists()


def test_the_journal_is_not_imported_into_itself(tmp_path, capsys):
    jdir = tmp_path / "j"
    assert run_cli(capsys, "import", str(make_png(tmp_path / "a.png")), "-t", "A", "-m", "m", "--journal", str(jdir))[0] == 0
    exp = Journal.open(jdir).get(1)
    for args in ([str(jdir)], [str(jdir), "--recursive", "--dry-run"], [str(jdir / "experiments"), "--recursive"],
                 [str(jdir / exp.dir / exp.images[0].file), "-m", "m"]):
        code, out, err = run_cli(capsys, "import", *args, "-t", "Again", "--journal", str(jdir))
        assert code == 1 and out == "" and err.count("\n") == 1, out + err
        assert f"is in the journal {jdir}: its images are the journal's own" in err, err
    assert len(Journal.open(jdir)) == 1 and commits(jdir) == 2


def test_a_file_without_a_model_is_credited_as_unknown_and_said(tmp_path, capsys):
    root = tmp_path / "mixed"
    root.mkdir()
    samples.invokeai2_dream_png(root / "dream.png")
    samples.fooocus_png(root / "fooocus.png")
    make_png(root / "photo.png")  # no generator's metadata at all: nothing says a model made it
    code, out, err = run_cli(capsys, "import", str(root), "-t", "Mixed", "--journal", str(tmp_path / "j"))
    assert code == 0 and "imported 2 image(s)" in out, out + err
    assert "dream.png: its metadata names no model: credited as 'unknown model' (name it with --model NAME)" in out
    assert "photo.png" in err and "does not say which model made it" in err  # failed, said


def test_commits_are_batched(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(journal.importing, "BATCH_EXPERIMENTS", 2)
    root = tmp_path / "five"
    root.mkdir()
    for seed in range(5):
        samples.a1111_png(root / f"{seed:05d}.png", seed=seed)
    code, out, err = run_cli(capsys, "import", str(root), "-t", "Batch", "--journal", str(tmp_path / "j"))
    assert code == 0 and "(#1–#5, 3 commit(s))" in out, err
    assert commits(tmp_path / "j") == 4
    assert git(tmp_path / "j", "log", "-1", "--format=%s") == "#5 Batch 5\n"
    assert git(tmp_path / "j", "log", "-2", "--format=%s").splitlines()[1] == "#3–#4: 2 experiments"
    assert_consistent(tmp_path / "j")


IMPORT = """
import sys
import journal.importing
journal.importing.BATCH_EXPERIMENTS = 3
from workshop.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("failpoint", ["image-written@5", "staged@2", "ref-moved@2", "indexed@2", "tagged@2"])
def test_killed_mid_import_a_rerun_completes_it(tmp_path, failpoint):
    """kill -9 inside the second batch's write: the first batch stays, the second is completed or rolled back, the
    journal is consistent, and running the import again brings in exactly the rest, titled as one run would."""
    root = tmp_path / "eight"
    root.mkdir()
    for seed in range(8):
        samples.a1111_png(root / f"{seed:05d}-{seed}.png", seed=seed)
    jdir = tmp_path / "j"
    Journal.init(jdir)  # its first commit would count as a failpoint's first
    command = [sys.executable, "-c", IMPORT, "import", str(root), "-t", "Night", "--journal", str(jdir)]
    killed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PROMPTISM_FAILPOINT": failpoint})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(assert_consistent(jdir)) == (3 if failpoint in ("image-written@5", "staged@2") else 6)
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    exps = sorted(assert_consistent(jdir).list(limit=None), key=lambda e: e.number)
    assert [(e.title, e.images[0].seed) for e in exps] == [(f"Night {k + 1}", k) for k in range(8)]
    assert commits(jdir) == 1 + 3  # init, then 3 + 3 + 2 experiments however the work was split between the runs
    assert json.loads(git(jdir, "show", f"HEAD:{exps[-1].dir}/experiment.json"))["keywords"][0] == "masterpiece"


def test_the_originals_metadata_never_reaches_git(tmp_path, capsys):
    """The journal keeps the prompt (private, in experiment.json) but none of the file's own metadata: no infotext,
    no ComfyUI graph or workflow, in any blob of any commit."""
    root = tmp_path / "in"
    root.mkdir()
    samples.a1111_png(root / "a.png")
    samples.comfy_png(root / "ComfyUI_00001_.png", samples.comfy_refiner_graph())
    samples.novelai_png(root / "n.png")
    assert run_cli(capsys, "import", str(root), "-t", "Clean", "--journal", str(tmp_path / "j"))[0] == 0
    history = git(tmp_path / "j", "log", "-p", "--all", "--binary")
    for trace in ("Lora hashes", "Model hash", "class_type", "KSamplerAdvanced", "last_node_id", "signed_hash", "stealth_png",
                  "NovelAI Diffusion V3 7BCCAA2C"):
        assert trace not in history, trace


def test_a_progress_bar_on_a_terminal(folder, tmp_path):
    code, out = pty_run([sys.executable, "-m", "workshop.cli", "import", str(folder), "-t", "Bar", "--journal",
                         str(tmp_path / "j")], cols=100)
    assert code == 0 and b"importing" in out and b"8/8" in out, out[-800:]


def test_killed_at_random_moments_a_rerun_completes(tmp_path):
    """kill -9 at a random moment once the import is under way (in git's own commands too): consistent, and the
    re-run brings in exactly the rest."""
    import random
    import time

    root = tmp_path / "many"
    root.mkdir()
    for seed in range(24):
        samples.a1111_png(root / f"{seed:05d}.png", seed=seed)
    rng = random.Random(17)
    for round_ in range(2):
        jdir = tmp_path / f"j{round_}"
        Journal.init(jdir)
        command = [sys.executable, "-c", IMPORT, "import", str(root), "-t", "Rain", "--journal", str(jdir)]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        poll_until(lambda: commits(jdir) > 1, timeout=300, what="the first batch's commit")
        time.sleep(rng.uniform(0.0, 0.3))
        proc.kill()
        proc.communicate()
        assert 3 <= len(assert_consistent(jdir)) <= 24
        assert subprocess.run(command, capture_output=True).returncode == 0
        exps = sorted(assert_consistent(jdir).list(limit=None), key=lambda e: e.number)
        assert [(e.title, e.images[0].seed) for e in exps] == [(f"Rain {k + 1}", k) for k in range(24)]


def test_an_experiment_the_journal_refuses_fails_alone(tmp_path, capsys):
    """An image 70,000 pixels wide is under the pixel limit but wider than a record holds: the batch it is in still
    lands, that image is reported."""
    from PIL import Image

    root = tmp_path / "wide"
    root.mkdir()
    samples.a1111_png(root / "00001-1.png", seed=1)
    Image.new("RGB", (70_000, 4), "white").save(root / "00002-2.png")
    samples.a1111_png(root / "00003-3.png", seed=3)
    code, out, err = run_cli(capsys, "import", str(root), "-t", "Wide", "-m", "m", "--journal", str(tmp_path / "j"))
    assert code == 0 and "imported 2 image(s)" in out and "failed 1" in out, err
    assert "00002-2.png" in err and "width" in err
    assert_consistent(tmp_path / "j")


def test_values_the_journal_cannot_hold_are_left_out(tmp_path):
    """A seed beyond 64 bits is no seed; a lone surrogate in JSON metadata becomes U+FFFD."""
    graph = samples.comfy_graph()
    graph["3"]["inputs"]["seed"] = 2**70
    graph["6"]["inputs"]["text"] = "a bottle \ud800 of stars"
    source = journal.importing.read_source(samples.comfy_png(tmp_path / "c.png", graph))
    assert source.info.seed is None and source.info.prompt == "a bottle \ufffd of stars"


def test_the_same_pixels_are_known_whatever_the_file(tmp_path, capsys):
    """Pixel hashes: a copy saved at another compression level, without its metadata, is the same picture; an image
    the journal recorded before pixel hashes (file sha256 only) is known by its re-encoding."""
    import dataclasses

    from PIL import Image

    from journal import ModelInfo, NewExperiment, NewImage
    from journal.images import clean_png, open_image

    root = tmp_path / "copies"
    root.mkdir()
    original = samples.a1111_png(root / "a.png", seed=1)
    Image.open(original).save(root / "b.png", compress_level=1)
    older = samples.a1111_png(tmp_path / "older.png", seed=2)
    jdir = tmp_path / "j"
    legacy = dataclasses.replace(clean_png(open_image(older)), pixels=None)
    Journal.init(jdir).accept(NewExperiment(title="Before", model=ModelInfo("m"), images=[NewImage(older, clean=legacy)]))
    (root / "older.png").write_bytes(older.read_bytes())
    code, out, err = run_cli(capsys, "import", str(root), "-t", "Copies", "--journal", str(jdir))
    assert code == 0 and "imported 1 image(s)" in out, err
    assert "b.png: the same pixels as" in out and "older.png: already in the journal (#1)" in out
    assert Journal.open(jdir).get(2).images[0].pixels is not None


def test_folder_titles_count_the_experiments_made_not_the_images_skipped(tmp_path, capsys):
    """An image the journal had already (imported on its own) made the folder's titles start at 2 ("batch 2, batch 3,
    no batch 1"); they count the experiments this title has, so a cut-short import still goes on where it stopped."""
    folder = tmp_path / "folder"
    folder.mkdir()
    for k, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]):
        make_png(folder / f"{k}.png", color=colour)
    jdir = str(tmp_path / "j")
    assert run_cli(capsys, "import", str(folder / "0.png"), "-t", "On its own", "-m", "m", "--journal", jdir)[0] == 0
    code, out, err = run_cli(capsys, "import", str(folder), "-t", "batch", "-m", "m", "--dry-run", "--journal", jdir)
    assert code == 0 and "batch 1" in out and "batch 3" in out and "batch 4" not in out, out + err
    (folder / "3.png").rename(tmp_path / "later.png")  # an import cut short: the last image comes later
    assert run_cli(capsys, "import", str(folder), "-t", "batch", "-m", "m", "--journal", jdir)[0] == 0
    (tmp_path / "later.png").rename(folder / "3.png")
    assert run_cli(capsys, "import", str(folder), "-t", "batch", "-m", "m", "--journal", jdir)[0] == 0
    titles = [e.title for e in sorted(Journal.open(jdir).search(limit=None), key=lambda e: e.number)]
    assert titles == ["On its own", "batch 1", "batch 2", "batch 3"]

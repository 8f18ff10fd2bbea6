"""Publishing: the gallery credits the model and never contains a prompt, negative prompt or keyword — byte for byte."""

import html
import os
import re
import stat
import subprocess

import pytest

from journal import InvalidInput, Journal, JournalError, ModelInfo, NewExperiment, NewImage, PrivacyError
from journal.grid_record import GridRecord
from journal.publish import THUMBNAILS, GalleryEntry, gallery_numbers, install_gallery, stage_gallery
from tests.helpers import git, make_png, run_cli
from tests.test_import import INFOTEXT, png_chunks

SECRETS = {
    1: dict(prompt="zanzibar velvet lighthouse", negative_prompt="grotesque qwertyuiop", keywords=["trending on artstation", "in the style of Basquiat"],
            variant="zanzibar velvet lighthouse, trending on artstation"),
    2: dict(prompt="obsidian marmalade cathedral", negative_prompt="xylophone smudge", keywords=["rendered in unreal engine", "pixel art"],
            variant="obsidian marmalade cathedral, pixel art"),
}
TITLES = {1: "𝔢𝔫𝔠𝔥𝔞𝔫𝔱𝔢𝔡 𝔳𝔦𝔰𝔦𝔬𝔫 🔅", 2: "<Basquiat & Ouroboros>"}


def all_secret_strings():
    out = []
    for s in SECRETS.values():
        out += [s["prompt"], s["negative_prompt"], s["variant"], *s["keywords"]]
    return out + ["a lighthouse at dusk", "blurry, lowres"]  # from the A1111 metadata of the source images


@pytest.fixture
def journal(jdir, tmp_path):
    journal = Journal.init(jdir)
    for n, secret in SECRETS.items():
        images = [NewImage(make_png(tmp_path / f"src{n}-{k}.png", (40 * k, 90, 200 - n), text={"parameters": INFOTEXT}),
                           seed=k, prompt=secret["variant"]) for k in range(2)]
        journal.accept(NewExperiment(title=TITLES[n], model=ModelInfo(f"model-{n}", pipeline="StableDiffusionPipeline"), images=images,
                                     prompt=secret["prompt"], negative_prompt=secret["negative_prompt"], keywords=secret["keywords"],
                                     grid=GridRecord.model_validate({"mode": "leave-one-out", "keywords": secret["keywords"]})))
    return journal


def scan(data: bytes, where: str):
    for secret in all_secret_strings():
        for encoding in ("utf-8", "utf-16-be", "utf-16-le"):
            assert secret.encode(encoding) not in data, f"{secret!r} ({encoding}) found in {where}"
            assert html.escape(secret).encode(encoding) not in data, f"{secret!r} (escaped) found in {where}"


def test_published_output_never_contains_a_secret(journal, tmp_path):
    out = tmp_path / "site"
    journal.publish([1, 2], out)
    files = sorted(out.rglob("*"))
    assert {f.name for f in files} == {"index.html", "0001-enchanted-vision.html", "0001-enchanted-vision-1.png", "0001-enchanted-vision-2.png",
                                       "0002-basquiat-ouroboros.html", "0002-basquiat-ouroboros-1.png", "0002-basquiat-ouroboros-2.png"}
    for f in files:
        scan(f.name.encode(), f"file name {f.name}")
        scan(f.read_bytes(), str(f))
        if f.suffix == ".png":
            assert png_chunks(f) == ["IHDR", "IDAT", "IEND"]  # no text, EXIF, XMP, ICC — no metadata at all
    page = (out / "index.html").read_text(encoding="utf-8")
    for n in (1, 2):
        assert f"<b>#{n}</b>" in page and f"Generated with model-{n}" in page and html.escape(TITLES[n]) in page
    for n, name in ((1, "0001-enchanted-vision.html"), (2, "0002-basquiat-ouroboros.html")):
        own = (out / name).read_text(encoding="utf-8")
        assert f"<b>#{n}</b>" in own and f"Generated with model-{n}" in own and html.escape(TITLES[n]) in own
    for f in out.glob("*.html"):
        assert "<Basquiat" not in f.read_text(encoding="utf-8")  # the title is escaped, not markup


def test_journal_files_and_history_never_carry_secrets_outside_the_documents(journal, tmp_path):
    journal.publish([1], tmp_path / "site")
    journal.retitle(2, "renamed")
    with pytest.raises(PrivacyError):
        journal.retitle(1, "Trending on ArtStation")  # a keyword as a title: refused, so never in a message or a name
    journal.retitle(1, "Coastal study")
    journal.publish([], tmp_path / "site")  # retitle, then publish
    journal.unpublish([1])
    journal.doctor()
    scan(git(journal.path, "log", "--all", "--format=%B%n%N").encode(), "commit messages")
    scan(git(journal.path, "for-each-ref", "--format=%(refname) %(contents)").encode(), "refs and tag messages")
    objects = git(journal.path, "cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objecttype)").split("\n")
    for line in filter(None, objects):  # every commit, tag and tree (file and folder names) in the whole history
        sha, kind = line.split()
        if kind != "blob":
            scan(subprocess.run(["git", "cat-file", kind, sha], cwd=journal.path, capture_output=True, check=True).stdout, f"{kind} {sha}")
    for f in (tmp_path / "site").rglob("*"):
        scan(f.name.encode(), "gallery file names")
        scan(f.read_bytes(), str(f))
    for f in (journal.path / "experiments").rglob("*"):
        scan(str(f.relative_to(journal.path)).encode(), "file names")
        if f.suffix == ".png":
            scan(f.read_bytes(), str(f))
            assert png_chunks(f) == ["IHDR", "IDAT", "IEND"]


def test_cli_outputs_hide_the_prompt_unless_revealed(journal, capsys):
    j = str(journal.path)
    for args in (["log"], ["log", "--json"], ["show", "1"], ["show", "1", "--json"], ["show", "2", "--image"]):
        code, out, err = run_cli(capsys, *args, "--journal", j)
        assert code == 0, err
        scan((out + err).encode(), " ".join(args))
    code, out, _ = run_cli(capsys, "show", "1", "--reveal-prompt", "--json", "--journal", j)
    assert '"prompt": "zanzibar velvet lighthouse"' in out and "trending on artstation" in out


def test_title_containing_a_keyword_is_refused_unless_allowed(journal, tmp_path):
    with pytest.raises(PrivacyError, match="--allow-title-overlap"):
        journal.retitle(2, "Pixel Art cathedral")
    assert journal.get(2).title == TITLES[2]
    journal.retitle(2, "Pixel Art cathedral", allow_title_overlap=True)
    with pytest.raises(PrivacyError, match="#2"):
        journal.publish([2], tmp_path / "site")
    assert not (tmp_path / "site").exists() and journal.get(2).status == "unreleased"
    journal.publish([2], tmp_path / "site", allow_title_overlap=True)
    assert journal.get(2).status == "published"


def test_gallery_holds_all_published_and_drops_unpublished(journal, tmp_path):
    out = tmp_path / "site"
    journal.publish([1], out)
    journal.publish([2], out)
    assert "#1</b>" in (out / "index.html").read_text() and "#2</b>" in (out / "index.html").read_text()
    journal.unpublish([1])
    journal.publish([2], out)
    page = (out / "index.html").read_text()
    assert "#1</b>" not in page and not list(out.glob("0001-*")) and list(out.glob("0002-*"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site")]  # staging folders cleaned up


def test_refuses_to_overwrite_a_directory_that_is_not_a_gallery(journal, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.txt").write_text("do not delete")
    with pytest.raises(InvalidInput, match="not a promptism gallery"):
        journal.publish([1], out)
    assert (out / "thesis.txt").read_text() == "do not delete" and journal.get(1).status == "unreleased"


def test_publish_cli(journal, tmp_path, capsys):
    code, out, err = run_cli(capsys, "publish", "1", "2", "--out", str(tmp_path / "site"), "--journal", str(journal.path))
    assert code == 0 and "published #1, #2" in out, err
    log = subprocess.run(["git", "log", "-1", "--format=%s"], cwd=journal.path, capture_output=True, text=True).stdout
    assert log.strip() == "Publish #1, #2"


def test_a_retitle_cannot_smuggle_the_prompt_into_the_gallery(journal, tmp_path):
    out = tmp_path / "site"
    journal.publish([1], out)
    journal.retitle(1, "Zanzibar velvet lighthouse", allow_title_overlap=True)  # its private prompt, as a title
    with pytest.raises(PrivacyError, match="#1"):
        journal.publish([2], out)
    for f in out.iterdir():
        scan(f.read_bytes(), f"{f.name} of the gallery left in place")
    assert journal.get(2).status == "unreleased"


def test_publish_without_numbers_rewrites_the_gallery(journal, tmp_path, capsys):
    out = tmp_path / "site"
    journal.publish([1, 2], out)
    journal.unpublish([1, 2])
    code, stdout, err = run_cli(capsys, "publish", "--out", str(out), "--journal", str(journal.path))
    assert code == 0 and "rewrote the gallery" in stdout, err
    assert "Nothing published yet" in (out / "index.html").read_text() and not list(out.glob("*.png"))


def test_publish_to_an_unwritable_place_is_one_line(journal, capsys):
    code, _, err = run_cli(capsys, "publish", "1", "--out", "/proc/gallery", "--journal", str(journal.path))
    assert code == 1 and err.count("\n") == 1 and "cannot write a gallery" in err and journal.get(1).status == "unreleased"


def test_gallery_names_follow_the_current_title_never_the_first(journal, tmp_path, capsys):
    """Item 1: a title that once held the prompt leaves no trace in published file names or the folder name."""
    j = str(journal.path)
    source = make_png(tmp_path / "lighthouse.png")
    code, _, err = run_cli(capsys, "import", str(source), "--title", "a lonely lighthouse", "--prompt", "a lonely lighthouse",
                           "--model", "m", "--allow-title-overlap", "--journal", j)
    assert code == 0, err
    journal.retitle(3, "Coastal study")
    journal.publish([3], tmp_path / "site")
    names = sorted(p.name for p in (tmp_path / "site").iterdir())
    assert names == ["0003-coastal-study-1.png", "0003-coastal-study.html", "index.html"]
    assert journal.get(3).dir == "experiments/0003-coastal-study"
    assert not list(journal.path.glob("experiments/*lonely*"))


def test_publish_cleans_up_after_a_killed_publish_and_uses_the_umask(journal, tmp_path):
    out = tmp_path / "site"
    leftover = tmp_path / ".site.abc123.tmp"  # what a publish killed while staging leaves: unreleased images inside
    leftover.mkdir()
    make_png(leftover / "0002-obsidian-1.png")
    foreign = tmp_path / ".site.notes.tmp"  # not a gallery's: never touched
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    old = os.umask(0o022)
    try:
        journal.publish([1], out)
    finally:
        os.umask(old)
    assert not leftover.exists() and (foreign / "notes.txt").read_text() == "mine"
    assert stat.S_IMODE(out.stat().st_mode) == 0o755  # readable by a web server running as another user


def test_publish_never_replaces_other_files_or_writes_inside_the_journal(journal, tmp_path, capsys):
    out = tmp_path / "site"
    journal.publish([1], out)
    (out / "CNAME").write_text("gallery.example")
    (out / ".git").mkdir()
    with pytest.raises(InvalidInput, match="holds files promptism did not write"):
        journal.publish([2], out)
    assert (out / "CNAME").read_text() == "gallery.example" and (out / ".git").is_dir()
    for inside in (journal.path / ".promptism" / "runs", journal.path / "site"):
        with pytest.raises(InvalidInput, match="inside the journal"):
            journal.publish([2], inside)
    assert not (journal.path / "site").exists()


def test_publish_refuses_a_symlinked_out_and_an_image_changed_since_its_commit(journal, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(InvalidInput, match="symbolic link"):
        journal.publish([1], tmp_path / "link")
    assert (tmp_path / "link").is_symlink()
    image = journal.path / journal.get(1).dir / journal.get(1).images[0].file
    make_png(image, color=(0, 255, 0))
    with pytest.raises(JournalError, match="has changes git does not have; run `promptism doctor` first"):
        journal.publish([1], tmp_path / "site")
    assert not (tmp_path / "site").exists()


def add(journal, tmp_path, title, count, parent=None):
    """Another experiment with the first secret prompt (so ``scan`` watches for it) and ``count`` images."""
    images = [NewImage(make_png(tmp_path / f"{title}-{k}.png", (10 * k, 60, 90)), seed=k, prompt=SECRETS[1]["variant"]) for k in range(count)]
    return journal.accept(NewExperiment(title=title, model=ModelInfo("model-x"), images=images, prompt=SECRETS[1]["prompt"],
                                        keywords=SECRETS[1]["keywords"], parent=parent)).number


def cards(page: str) -> dict[int, str]:
    """The index's cards by experiment number."""
    return {int(n): card for n, card in re.findall(r'<article class="card" id="e(\d+)">(.*?)</article>', page, re.S)}


def gallery_text(out) -> str:
    """Every file name and every page of a gallery, as one text."""
    return "\n".join([*(f.name for f in out.iterdir()), *(f.read_text(encoding="utf-8") for f in out.glob("*.html"))])


def test_the_index_has_one_card_per_experiment_with_its_image_count(journal, tmp_path):
    seven = add(journal, tmp_path, "Tidal sketch", 7)
    out = tmp_path / "site"
    journal.publish([1, 2, seven], out)
    page = (out / "index.html").read_text(encoding="utf-8")
    assert list(cards(page)) == [seven, 2, 1]  # one card each, newest first
    for n, card in cards(page).items():
        count = 7 if n == seven else 2
        assert f"{count} images" in card and f"Generated with model-{'x' if n == seven else n}" in card
        assert card.count("<img ") == min(count, THUMBNAILS)  # thumbnails: a card shows its first images
        assert re.findall(r'<img src="(\d+)-', card) == [f"{n:04d}"] * min(count, THUMBNAILS)
    assert page.count("<img ") == 2 + 2 + THUMBNAILS and page.count("<figure") == 0


def test_each_experiment_has_its_own_page_with_a_heading_and_a_way_back(journal, tmp_path):
    out = tmp_path / "site"
    journal.publish([1, 2], out)
    index = (out / "index.html").read_text(encoding="utf-8")
    for n, name in ((1, "0001-enchanted-vision.html"), (2, "0002-basquiat-ouroboros.html")):
        assert f'href="{name}"' in cards(index)[n]  # the card links to the page
        own = (out / name).read_text(encoding="utf-8")
        assert own.count("<img ") == 2 and f'src="{name[:-5]}-2.png"' in own
        assert '<h1><a href="index.html">Gallery</a></h1>' in own and f'href="index.html#e{n}"' in own
    for page in out.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "<h1>" in text and 'name="viewport"' in text, page.name
    journal.retitle(1, "Coastal study")
    journal.publish([], out)
    assert (out / "0001-coastal-study.html").is_file() and not (out / "0001-enchanted-vision.html").exists()
    assert gallery_numbers(out) == {1, 2}


def test_no_page_holds_a_script(journal, tmp_path):
    out = tmp_path / "site"
    journal.publish([1, 2], out)
    for page in out.glob("*.html"):
        text = page.read_text(encoding="utf-8").lower()
        assert "<script" not in text and "javascript:" not in text and not re.search(r"\son[a-z]+\s*=", text), page.name


def test_lineage_links_only_to_experiments_in_the_gallery(journal, tmp_path):
    child = add(journal, tmp_path, "Harbour at noon", 1, parent=2)
    grandchild = add(journal, tmp_path, "Harbour at night", 2, parent=child)
    orphan = add(journal, tmp_path, "Quiet pier", 1, parent=1)
    out = tmp_path / "site"
    journal.publish([2, grandchild, orphan], out)  # #1 and the child between #2 and the grandchild stay unreleased
    page = {n: next(out.glob(f"{n:04d}-*.html")).read_text(encoding="utf-8") for n in (2, grandchild, orphan)}
    assert "Derived" not in page[2] and "Derived" not in page[grandchild] and "Derived" not in page[orphan]
    for trace in ("Harbour at noon", "harbour-at-noon", f"{child:04d}", f'id="e{child}"'):  # the unpublished child
        assert trace not in gallery_text(out), trace
    assert not re.search(rf"#{child}(?![0-9a-f])", gallery_text(out))
    journal.publish([child], out)
    page = {n: next(out.glob(f"{n:04d}-*.html")).read_text(encoding="utf-8") for n in (2, child, grandchild)}
    assert f'Derived: <a href="{child:04d}-harbour-at-noon.html"><b>#{child}</b>' in page[2]
    assert '<p>Derived from <a href="0002-basquiat-ouroboros.html"><b>#2</b>' in page[child]
    assert f'Derived: <a href="{grandchild:04d}-harbour-at-night.html"><b>#{grandchild}</b>' in page[child]
    assert f'Derived from <a href="{child:04d}-harbour-at-noon.html">' in page[grandchild]
    everything = gallery_text(out)  # #1, unpublished, is the orphan's parent: never named
    for trace in (TITLES[1], html.escape(TITLES[1]), "enchanted", "0001", 'id="e1"'):
        assert trace not in everything, trace
    assert not re.search(r"#1(?![0-9a-f])", everything)  # no "#1" (CSS colours aside)
    assert "Derived" not in next(out.glob(f"{orphan:04d}-*.html")).read_text(encoding="utf-8")


def test_a_title_or_credit_with_markup_or_controls_is_escaped_on_every_page(journal, tmp_path):
    exp = journal.get(1).replace(title="<script>alert(1)</script> & \x1b[2J \u202eevil", model=ModelInfo("<i>sd</i>"))
    image = journal.path / exp.dir / exp.images[0].file
    out = tmp_path / "site"
    install_gallery(stage_gallery(out, [GalleryEntry(exp, [image])]), out)
    pages = sorted(out.glob("*.html"))
    assert [p.name for p in pages] == ["0001-script-alert-1-script-2j-evil.html", "index.html"]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; ␛[2J ⟨U+202E⟩evil" in text, page.name
        assert "Generated with &lt;i&gt;sd&lt;/i&gt;" in text, page.name
        for raw in ("<script", "<i>", "\x1b", "\u202e"):
            assert raw not in text, (raw, page.name)


def test_gallery_numbers_needs_every_page_and_image(journal, tmp_path):
    seven = add(journal, tmp_path, "Tidal sketch", 7)
    out = tmp_path / "site"
    journal.publish([1, 2, seven], out)
    assert gallery_numbers(out) == {1, 2, seven}
    (out / f"{seven:04d}-tidal-sketch-7.png").unlink()  # shown on its page only, not on its card
    (out / "0002-basquiat-ouroboros.html").unlink()
    assert gallery_numbers(out) == {1}
    findings = journal.doctor()
    assert any(f"does not show published #2, #{seven}; rewrote it" in f.problem for f in findings), findings
    assert gallery_numbers(out) == {1, 2, seven} and (out / f"{seven:04d}-tidal-sketch-7.png").is_file()


def test_a_page_promptism_did_not_write_is_foreign(journal, tmp_path):
    out = tmp_path / "site"
    journal.publish([1], out)
    journal.publish([1, 2], out)  # its own pages are no obstacle
    for name in ("about.html", "0001-enchanted-vision.htm", "0001-Enchanted.html"):
        (out / name).write_text("mine")
        with pytest.raises(InvalidInput, match="holds files promptism did not write"):
            journal.publish([], out)
        assert (out / name).read_text() == "mine"
        (out / name).unlink()
    (out / "0009-elsewhere.html").symlink_to(tmp_path / "elsewhere.html")
    with pytest.raises(InvalidInput, match="holds files promptism did not write"):
        journal.publish([], out)

"""Images in real terminals, checked on the bytes promptism writes: sixel colour registers, tmux passthrough, the
terminal probe, fitting images into their boxes, and `show --image` on a pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import sys
import termios
from pathlib import Path

from PIL import Image, ImageDraw

from tests.helpers import run_cli


def circle(size=(32, 32), fill=(200, 30, 30), background=(240, 240, 240)) -> Image.Image:
    im = Image.new("RGB", size, background)
    ImageDraw.Draw(im).ellipse((size[0] // 8, size[1] // 8, size[0] * 7 // 8, size[1] * 7 // 8), fill=fill)
    return im


def on_pty(args: list[str], rows: int = 40, cols: int = 80) -> bytes:
    """Everything promptism writes to a rows × cols pseudo-terminal."""
    exe = str(Path(sys.executable).parent / "promptism")
    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.environ["TERM"] = "xterm-256color"
        os.execv(exe, [exe, *args])
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out[-500:]
    return out


def test_show_image_draws_each_image_at_its_own_size_after_the_metadata(tmp_path, capsys):
    """Two 32×32 images in block cells are 16 lines each (2 pixels a line): not padded to the terminal's 40 lines."""
    sources = [tmp_path / "red.png", tmp_path / "blue.png"]
    circle(fill=(200, 30, 30)).save(sources[0])
    circle(fill=(30, 30, 200)).save(sources[1])
    journal = tmp_path / "j"
    assert run_cli(capsys, "import", *map(str, sources), "-t", "two", "-m", "shapes", "--journal", str(journal))[0] == 0

    out = on_pty(["show", "1", "--image", "--journal", str(journal)], rows=40).decode()
    lines = out.split("\n")
    metadata_end = next(k for k, line in enumerate(lines) if line.startswith("Prompt"))
    drawn = [k for k, line in enumerate(lines) if "\x1b[48;2;" in line]
    assert drawn and min(drawn) > metadata_end  # the images come after the metadata
    red = [k for k in drawn if "200;30;30" in lines[k]]
    blue = [k for k in drawn if "30;30;200" in lines[k]]
    assert len(drawn) == 32 and len(lines) - metadata_end < 32 + 6, len(lines)  # 16 + 16 lines, no padding
    assert max(red) < min(blue)  # one after the other

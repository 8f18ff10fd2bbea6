"""The kitty graphics protocol with Unicode placeholders (kitty, Ghostty): an image is sent once under an id and
placed "virtually"; the cells that show it are ordinary text — U+10EEEE with diacritics naming its row and column, in a
foreground colour that encodes the id — so a terminal multiplexer (tmux) and Textual treat it like any other text.
"""

from __future__ import annotations

import base64
import io
import itertools
import random

from PIL import Image

PLACEHOLDER = "\U0010EEEE"
CHUNK = 4096  # base64 bytes per escape sequence, as the protocol asks
# The diacritic that names row or column n, from kitty's rowcolumn-diacritics.txt (combining marks of class 230).
_DIACRITICS = tuple(chr(int(code, 16)) for code in """
305 30D 30E 310 312 33D 33E 33F 346 34A 34B 34C 350 351 352 357 35B 363 364 365 366 367 368 369 36A 36B 36C
36D 36E 36F 483 484 485 486 487 592 593 594 595 597 598 599 59C 59D 59E 59F 5A0 5A1 5A8 5A9 5AB 5AC 5AF 5C4
610 611 612 613 614 615 616 617 657 658 659 65A 65B 65D 65E 6D6 6D7 6D8 6D9 6DA 6DB 6DC 6DF 6E0 6E1 6E2 6E4
6E7 6E8 6EB 6EC 730 732 733 735 736 73A 73D 73F 740 741 743 745 747 749 74A 7EB 7EC 7ED 7EE 7EF 7F0 7F1 7F3
816 817 818 819 81B 81C 81D 81E 81F 820 821 822 823 825 826 827 829 82A 82B 82C 82D 951 953 954 F82 F83 F86
F87 135D 135E 135F 17DD 193A 1A17 1A75 1A76 1A77 1A78 1A79 1A7A 1A7B 1A7C 1B6B 1B6D 1B6E 1B6F 1B70 1B71 1B72
1B73 1CD0 1CD1 1CD2 1CDA 1CDB 1CE0 1DC0 1DC1 1DC3 1DC4 1DC5 1DC6 1DC7 1DC8 1DC9 1DCB 1DCC 1DD1 1DD2 1DD3 1DD4
1DD5 1DD6 1DD7 1DD8 1DD9 1DDA 1DDB 1DDC 1DDD 1DDE 1DDF 1DE0 1DE1 1DE2 1DE3 1DE4 1DE5 1DE6 1DFE 20D0 20D1 20D4
20D5 20D6 20D7 20DB 20DC 20E1 20E7 20E9 20F0 2CEF 2CF0 2CF1 2DE0 2DE1 2DE2 2DE3 2DE4 2DE5 2DE6 2DE7 2DE8 2DE9
2DEA 2DEB 2DEC 2DED 2DEE 2DEF 2DF0 2DF1 2DF2 2DF3 2DF4 2DF5 2DF6 2DF7 2DF8 2DF9 2DFA 2DFB 2DFC 2DFD 2DFE 2DFF
A66F A67C A67D A6F0 A6F1 A8E0 A8E1 A8E2 A8E3 A8E4 A8E5 A8E6 A8E7 A8E8 A8E9 A8EA A8EB A8EC A8ED A8EE A8EF A8F0
A8F1 AAB0 AAB2 AAB3 AAB7 AAB8 AABE AABF AAC1 FE20 FE21 FE22 FE23 FE24 FE25 FE26 10A0F 10A38 1D185 1D186 1D187
1D188 1D189 1D1AA 1D1AB 1D1AC 1D1AD 1D242 1D243 1D244
""".split())
MAX_CELLS = len(_DIACRITICS)  # rows or columns one placement can name

_ids = itertools.count(random.randint(1, 1 << 23))


def new_id() -> int:
    """An image id that fits in a 24-bit colour (1 … 2²⁴ − 1), starting at random: another program's images in the
    same terminal are unlikely to share it."""
    return next(_ids) % ((1 << 24) - 1) + 1


def transmit(image_id: int, image: Image.Image, columns: int, rows: int) -> list[str]:
    """The escape sequences that send ``image`` (as PNG) and place it virtually over ``columns`` × ``rows`` cells."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = base64.standard_b64encode(buffer.getvalue()).decode("ascii")
    chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)] or [""]
    sequences = []
    for k, chunk in enumerate(chunks):
        more = int(k < len(chunks) - 1)
        keys = f"a=t,f=100,i={image_id},q=2,m={more}" if k == 0 else f"m={more},q=2"
        sequences.append(f"\x1b_G{keys};{chunk}\x1b\\")
    sequences.append(f"\x1b_Ga=p,U=1,i={image_id},c={columns},r={rows},q=2\x1b\\")
    return sequences


def placeholders(row: int, first_column: int, columns: int) -> str:
    """The text for ``columns`` cells of the placement's ``row``, from ``first_column``; draw it in the colour
    ``id_color(image_id)``."""
    mark = _DIACRITICS[row]
    return "".join(PLACEHOLDER + mark + _DIACRITICS[c] for c in range(first_column, first_column + columns))


def id_color(image_id: int) -> tuple[int, int, int]:
    """The 24-bit foreground colour that names ``image_id`` to the terminal."""
    return (image_id >> 16) & 255, (image_id >> 8) & 255, image_id & 255

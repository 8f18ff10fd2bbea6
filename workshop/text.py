"""User text shown literally: control characters (ESC, CSI, BEL, …) become visible symbols."""


def visible(text: str) -> str:
    """Replace control characters (ESC, CSI, BEL, …) with visible symbols so no text can drive the terminal."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in "\n\t":
            out.append(ch)
        elif code < 0x20:
            out.append(chr(0x2400 + code))  # ␛ for ESC, ␇ for BEL, …
        elif code == 0x7F:
            out.append("\u2421")
        elif 0x80 <= code < 0xA0:
            out.append("\ufffd")
        else:
            out.append(ch)
    return "".join(out)

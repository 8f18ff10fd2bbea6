"""The rule that a title never gives the prompt away: checked when a title is set (accept, import, retitle) and
again for every title a gallery shows."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import PrivacyError
from .slug import fold

OVERRIDE = "--allow-title-overlap"


class TitleRevealsPrompt(PrivacyError):
    """A title contains its experiment's prompt, negative prompt, a keyword or an image's prompt.

    ``reason`` says so without naming the command-line override (the TUI shows it as it is)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"{reason}; choose another title, or pass {OVERRIDE} to keep it")


def title_reveals(title: str, secrets: Iterable[str | None]) -> bool:
    """Whether ``title`` contains any of ``secrets`` as whole words (case and letter style ignored; blank secrets
    ignored): "Red study" reveals the keyword "red", "Redemption" does not."""
    folded = fold(title)
    return any(re.search(rf"(?<!\w){re.escape(fold(s.strip()))}(?!\w)", folded) for s in secrets if s and s.strip())


def check_title_keeps_secrets(title: str, secrets: Iterable[str | None], number: int | None = None) -> None:
    """Refuse ``title`` if it contains one of ``secrets`` (raise TitleRevealsPrompt; the secret is never named)."""
    if title_reveals(title, secrets):
        which = f"the title of #{number}" if number else "the title"
        raise TitleRevealsPrompt(f"{which} contains its private prompt or one of its keywords")

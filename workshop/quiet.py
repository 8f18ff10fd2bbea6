"""Libraries that log an error before raising it (diffusers, transformers, dynamicprompts): ``quieted`` keeps their
loggers below a level while promptism says the error itself, in one line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quieted(*names: str, level: int) -> Iterator[None]:
    """The loggers ``names`` drop records under ``level`` while the block runs; their own levels back after."""
    loggers = [logging.getLogger(name) for name in names]
    before = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, was in zip(loggers, before):
            logger.setLevel(was)

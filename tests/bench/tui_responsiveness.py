"""Benchmark: how responsive the workshop stays while a grid runs (the timings tests/test_tui.py used to assert).

    python tests/bench/tui_responsiveness.py [--seconds 1.0] [--presses 3] [--steps 40] [--seeds 1-16]

The test checks the behaviour (a UI timer ticks between the grid's steps; F1 is handled while the grid still runs).
This script drives the workshop under Textual's Pilot, in this process, on the `tiny` model (in-process, no service,
a temporary journal) and measures: how often a 50 ms timer fires over ``--seconds`` of generation (its ratio to the
20 ticks a second it asks for), then the latency of F1 (from the key entering the app to the help screen being up),
``--presses`` times. Prints one JSON object, with the load average before and after (other work on the machine
lowers every number). Goals on a 2-core CPU: tick ratio ≥ 0.6 (the old test's 12 of 20), F1's second-best latency
under 0.25 s and its worst under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

TICK_S = 0.05


async def measure(journal: Path, seconds: float, presses: int, steps: int, seeds: str) -> dict:
    from textual import events
    from textual.widgets import Input

    from workshop.tui.app import create_app
    from workshop.tui.screens.composer import ComposerScreen
    from workshop.tui.screens.grid import GridScreen

    app = create_app(journal, "tiny", "halfcell")
    ticks: list[float] = []

    async def until(condition, timeout: float = 300.0) -> None:
        end = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > end:
                raise SystemExit("timed out waiting for the workshop")
            await asyncio.sleep(0.005)

    async with app.run_test(size=(100, 32)) as pilot:
        await until(lambda: isinstance(app.screen, ComposerScreen) and "ready" in app.model_status)
        composer = app.screen
        composer.query_one("#prompt", Input).value = "a slow grid"
        composer.query_one("#steps", Input).value = str(steps)
        composer.query_one("#seeds", Input).value = seeds
        composer.query_one("#mode").value = "plain"
        app.set_interval(TICK_S, lambda: ticks.append(time.monotonic()))
        await pilot.press("ctrl+r")
        await until(lambda: isinstance(app.screen, GridScreen))
        grid = app.screen
        await until(lambda: grid.query_one("#progress").progress > 0)
        start = len(ticks)
        await asyncio.sleep(seconds)
        ticked = len(ticks) - start
        latencies = []
        for _ in range(presses):
            pressed = time.monotonic()
            app._driver.send_message(events.Key("f1", None))
            await until(lambda: type(app.screen).__name__ == "HelpScreen")
            latencies.append(time.monotonic() - pressed)
            app._driver.send_message(events.Key("escape", None))
            await until(lambda: app.screen is grid)
        still_running = grid.running
        await pilot.press("escape")  # cancel the rest
        await until(lambda: not grid.running)
    return {"ticks": ticked, "tick_ratio": round(ticked / (seconds / TICK_S), 2),
            "f1_latency_s": [round(x, 4) for x in latencies],
            "f1_median_s": round(statistics.median(latencies), 4) if latencies else None,
            "grid_still_running_after_f1": still_running}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--presses", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seeds", default="1-16")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.toml").touch()  # no settings (a $PROMPTISM_CONFIG must name a file that is there)
        os.environ.update(PROMPTISM_SERVICE="off", PROMPTISM_RUNTIME=str(Path(tmp) / "rt"),
                          PROMPTISM_STATE=str(Path(tmp) / "state"), PROMPTISM_CONFIG=str(Path(tmp) / "config.toml"))
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        result = asyncio.run(measure(Path(tmp) / "journal", args.seconds, args.presses, args.steps, args.seeds))
    print(json.dumps({**vars(args), **result, "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
                     indent=2))


if __name__ == "__main__":
    main()

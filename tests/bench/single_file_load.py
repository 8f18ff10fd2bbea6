"""How long the tiny SD 3 (or the small Flux: ``--model flux``) takes to load as a single file (tests/sd3_export.py,
tests/flux_export.py: ComfyUI's all-in-one layout, its config beside it) against its diffusers folder, through
promptism's own loader (``models._load``: nothing kept warm), on the CPU.

    PYTHONPATH=$PWD:$PWD/tests .venv/bin/python tests/bench/single_file_load.py [--model sd3|flux] [--repeat 5]

A measurement, not a test: it prints the median seconds of each and their ratio (indicative only: the tiny SD 3's
load is mostly fixed costs, which a full-size one's reading of weights dwarfs; the Flux's 2 GB of float32 weights are
nearer a real load, whose conversion from the original layout the single file pays). Everything is written under a
throwaway folder in /tmp.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("sd3", "flux"), default="sd3")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import torch
    from safetensors.torch import save_file

    from flux_export import pipeline_to_flux, tiny_flux
    from sd3_export import pipeline_to_sd3, tiny_sd3
    from workshop.runner.models import ModelSource, _load, quiet_libraries

    quiet_libraries()
    root = Path(tempfile.mkdtemp(prefix="single-file-load-"))
    try:
        make, export = (tiny_flux, pipeline_to_flux) if args.model == "flux" else (tiny_sd3, pipeline_to_sd3)
        pipe = make(root / "folder")
        save_file(export(pipe), root / "tiny.safetensors")
        del pipe
        shutil.copytree(root / "folder", root / "tiny.config", ignore=shutil.ignore_patterns("*.safetensors", "_*"))
        sources = {"single file": ModelSource("f", "file", root / "tiny.safetensors", ""),
                   "diffusers folder": ModelSource("d", "local", root / "folder", "")}
        cpu = torch.device("cpu")
        for source in sources.values():
            _load(source, cpu, False)  # (imports and first-touch costs out of the way)
        seconds = {}
        for name, source in sources.items():
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                _load(source, cpu, False)
                times.append(time.perf_counter() - start)
            seconds[name] = statistics.median(times)
            print(f"{name:>16}: {seconds[name]:.3f} s (median of {args.repeat})")
        print(f"single file / folder: {seconds['single file'] / seconds['diffusers folder']:.2f}×")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

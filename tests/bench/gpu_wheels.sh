#!/usr/bin/env bash
# The wheels a lent GPU machine lacks for promptism's run path (generate --local, grid_throughput, the shaped
# builders), downloaded into .whl at the root of this checkout (git-ignored) for the device tool to carry
# (carry: [".whl"]); tests/bench/gpu_suite.py installs them there with pip --target.
#
#     bash tests/bench/gpu_wheels.sh
#
# Versions: those of the venv that runs promptism here ($PYTHON, default .venv/bin/python of this checkout's main
# worktree), for CPython 3.12 on x86-64 (the machine's). The machine already has torch, transformers, accelerate,
# safetensors, huggingface-hub, tokenizers, numpy, pillow, click, rich, psutil, httpx, nvidia-ml-py, timm, regex, …
# (/work/.library/device/KINDS.md). The TUI (textual, term-image) and the service (fastapi, uvicorn) are not on the run
# path and stay behind. open_clip_torch is carried for its BPE vocabulary (the CLIP tokenizer is written from it).
# Fails when the tree that travels (tracked + untracked-not-ignored files + .whl) would pass the 64 MiB limit.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
PYTHON=${PYTHON:-$(dirname "$(git rev-parse --path-format=absolute --git-common-dir)")/.venv/bin/python}
PACKAGES=(diffusers isal open_clip_torch ftfy wcwidth tinydb GitPython gitdb smmap orjson platformdirs
          pydantic pydantic_core annotated-types typing-inspection typing_extensions)

exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
rm -rf .whl && mkdir .whl
read -r -a pins <<< "$("$PYTHON" -c 'import sys, importlib.metadata as m; print(" ".join(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' "${PACKAGES[@]}")"
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${pins[@]}" 2> >(grep -v "is ignored: it is neither" >&2)

wheels=$(du -cb .whl/*.whl | tail -1 | cut -f1)
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | awk '/\ttotal$/ {s += $1} END {print s + 0}')
echo "$(ls .whl | wc -l) wheels, $((wheels / 1024)) KiB; with the tree that travels: $(((wheels + tree) / 1048576)) MiB of 64"
[ $((wheels + tree)) -lt $((64 * 1048576)) ] || { echo "over the device tool's 64 MiB carry limit" >&2; exit 1; }

"""The runner: diffusers pipelines on the GPU (or CPU), batched and deterministic per seed, with progress events,
cancellation, out-of-memory recovery, run folders that survive crashes, CLIP scoring and contact sheets.

Never imports textual. Heavy libraries (torch, diffusers, open_clip) load with the submodules that need them, so
importing ``workshop.runner`` itself stays cheap. Its errors are ``workshop.errors.RunError``.
"""


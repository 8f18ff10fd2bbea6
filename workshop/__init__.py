"""promptism's workshop: the app around the journal — the command line, the composer, the runner, the service and
the TUI.

Set here, before anything loads torch: OpenMP's threads wait for work asleep (``OMP_WAIT_POLICY=PASSIVE``). Left to
libgomp's default they spin first, and on a machine whose cores are busy with anything else (a second job, a build, a
test suite) a 2-thread denoising step ran 100× slower (tests/bench/cpu_contention.py). A value you set wins."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

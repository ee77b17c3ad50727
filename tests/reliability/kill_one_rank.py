"""``vidssl`` as torchrun launches it, except that on the first attempt rank 1 kills itself
(SIGKILL, no cleanup) at the start of step ``VIDSSL_TEST_KILL_AT_STEP``: a node or process lost
mid-epoch. Restarted attempts (``TORCHELASTIC_RESTART_COUNT`` > 0) run normally. Test use only."""

from __future__ import annotations

import os
import signal
import sys

import vidssl.train.loop as loop
from vidssl.cli import main

KILL_AT = int(os.environ["VIDSSL_TEST_KILL_AT_STEP"])
_train_step = loop.train_step


def train_step_or_die(*args, step: int, **kwargs):
    if (os.environ.get("RANK") == "1" and os.environ.get("TORCHELASTIC_RESTART_COUNT") == "0"
            and step == KILL_AT):
        os.kill(os.getpid(), signal.SIGKILL)
    return _train_step(*args, step=step, **kwargs)


loop.train_step = train_step_or_die

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

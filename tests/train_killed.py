"""tools/train_net.py, SIGKILLed by itself at the start of iteration $SFSC_KILL_AT (a real crash).

    SFSC_KILL_AT=30 python tests/train_killed.py --config-file ... [KEY VALUE ...]
"""
import os
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import train_net  # noqa: E402  (puts the sfsc package on the path)

from fastreid.engine import default_argument_parser  # noqa: E402
from fastreid.engine.train_loop import HookBase  # noqa: E402
from sfsc.engine import SFSCTrainer  # noqa: E402


class KillAt(HookBase):
    def __init__(self, iteration: int):
        self.iteration = iteration

    def before_step(self):
        if self.trainer.iter == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    build_hooks = SFSCTrainer.build_hooks
    SFSCTrainer.build_hooks = lambda self: build_hooks(self) + [
        KillAt(int(os.environ["SFSC_KILL_AT"]))]
    train_net.main(default_argument_parser().parse_args())

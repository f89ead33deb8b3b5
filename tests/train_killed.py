"""tools/train_net.py, SIGKILLed by itself at the start of iteration $SFSC_KILL_AT (a real crash).

    SFSC_KILL_AT=30 python tests/train_killed.py --config-file ... [KEY VALUE ...]
"""
import os
import runpy
import signal

import sfsc  # noqa: F401  (patches FastReID before it is imported)
from fastreid.engine.train_loop import HookBase
from sfsc.engine import SFSCTrainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    # The tool runs as its own script would (its argv, its __main__), with the hook added.
    runpy.run_path(os.path.join(ROOT, "tools", "train_net.py"), run_name="__main__")

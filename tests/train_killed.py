"""tools/train_net.py with two test hooks: a SIGKILL at the start of the iteration $SFSC_KILL_AT
epochs in (a real crash), and, with $SFSC_RESTORED_STATE, a JSON file of what training starts
from.

    SFSC_KILL_AT=1.5 python tests/train_killed.py --config-file ... [KEY VALUE ...]
    SFSC_RESTORED_STATE=state.json python tests/train_killed.py --config-file ... --resume
"""
import json
import os
import runpy
import signal

import sfsc  # noqa: F401  (patches FastReID before it is imported)
from fastreid.engine import hooks
from fastreid.engine.train_loop import HookBase
from sfsc.engine import SFSCTrainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class KillAt(HookBase):
    def __init__(self, epochs: float):
        self.epochs = epochs

    def before_train(self):  # in epochs, so that a caller need not know the dataset's size
        self.iteration = int(self.epochs * self.trainer.iters_per_epoch)

    def before_step(self):
        if self.trainer.iter == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)


class RecordRestored(HookBase):
    """The state a resume restored, as training starts (after resume_or_load): the best metric
    the checkpointer hook compares with, and the task step's own state (PCGrad's order
    generator, the conflict counts)."""

    def __init__(self, path: str):
        self.path = path

    def before_train(self):
        best = [h.best_metric for h in self.trainer._hooks
                if isinstance(h, hooks.PeriodicCheckpointer)]
        with open(self.path, "w") as f:
            json.dump({"iteration": self.trainer.iter, "best_metric": best,
                       "task_step": self.trainer._trainer.state_dict()}, f)


if __name__ == "__main__":
    extra = []
    if "SFSC_KILL_AT" in os.environ:
        extra.append(KillAt(float(os.environ["SFSC_KILL_AT"])))
    if "SFSC_RESTORED_STATE" in os.environ:
        extra.append(RecordRestored(os.environ["SFSC_RESTORED_STATE"]))
    build_hooks = SFSCTrainer.build_hooks
    SFSCTrainer.build_hooks = lambda self: build_hooks(self) + extra
    # The tool runs as its own script would (its argv, its __main__), with the hooks added.
    runpy.run_path(os.path.join(ROOT, "tools", "train_net.py"), run_name="__main__")

#!/usr/bin/env python3
r"""Train or evaluate an SFSC model with FastReID's command line.

    .venv/bin/python tools/train_net.py --config-file configs/Synthetic/sfsc_R18.yml [KEY VALUE ...]
    .venv/bin/python tools/train_net.py --config-file OUTPUT_DIR/config.yaml --eval-only \
        MODEL.WEIGHTS X.pth
    .venv/bin/python tools/train_net.py --config-file ... --num-gpus 2   # 2 processes (gloo on CPU)

With the project's environment activated (``source .venv/bin/activate``), ``tools/train_net.py``
runs as it is: its ``#!/usr/bin/env python3`` then finds the environment's Python.
"""
import sfsc  # noqa: F401  (patches FastReID, registers SFSC components)
from fastreid.engine import default_argument_parser
from sfsc.engine import SFSCTrainer, setup_cfg
from sfsc.engine.defaults import exit_on_user_error
from sfsc.fastreid.checkpoint import SFSCCheckpointer
from sfsc.fastreid.launch import launch


def main(args):
    cfg = setup_cfg(args)
    if args.eval_only:
        model = SFSCTrainer.build_model(cfg)
        SFSCCheckpointer(model, allow_pickle=cfg.SFSC.CHECKPOINT.ALLOW_PICKLE,
                         strict=cfg.SFSC.CHECKPOINT.STRICT).load(cfg.MODEL.WEIGHTS)
        return SFSCTrainer.test(cfg, model)
    trainer = SFSCTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    exit_on_user_error(setup_cfg, args, setup=False)  # a bad config fails before any process starts
    exit_on_user_error(launch, main, args.num_gpus, num_machines=args.num_machines,
                       machine_rank=args.machine_rank, dist_url=args.dist_url, args=(args,))

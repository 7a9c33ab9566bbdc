"""python -m training --dataset fashion_mnist --model fmnist-small --epochs 12 --bits 64 --output models/fmnist-small
python -m training push models/fmnist-small you/fmnist-small     (a model dir to the Hugging Face Hub: --help)
python -m training pretrain --output models/backbone           (the generic backbone, self-supervised: --help)
python -m training surfaces --model models/fmnist-small        (its encoder for photos on real surfaces: --help)

Flags take dashes or underscores (--max-train-samples, --max_train_samples). Any other flag of transformers'
TrainingArguments (--lr_scheduler_type linear, --gradient_accumulation_steps 2, --logging_steps 10, ...) is passed
to the Trainer over this command's defaults, as transformers' example scripts take them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from transformers import HfArgumentParser

from training.schedule import trainer_overrides
from training.train import TrainArgs, train


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = argv if argv is not None else sys.argv[1:]
    if argv[:1] == ["push"]:  # python -m training push DIR REPO: a model dir to the Hub
        from training.push import main as push

        sys.exit(push(argv[1:]))
    if argv[:1] == ["pretrain"]:  # python -m training pretrain: the generic backbone (training/pretrain.py)
        from training.pretrain import PretrainArgs, pretrain

        parser = HfArgumentParser(PretrainArgs, description=pretrain.__doc__)
        args, rest = parser.parse_args_into_dataclasses(args=argv[1:], return_remaining_strings=True)
        print(json.dumps({k: v for k, v in pretrain(args, trainer_overrides(rest)).items() if k != "args"}))
        return
    if argv[:1] == ["surfaces"]:  # python -m training surfaces: a model's surface encoder (training/surface_encoder.py)
        from training.surface_encoder import SurfaceArgs, train_surface_encoder

        args = HfArgumentParser(SurfaceArgs, description=train_surface_encoder.__doc__).parse_args_into_dataclasses(
            args=argv[1:])[0]
        try:
            metrics = train_surface_encoder(args)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        print(json.dumps({k: v for k, v in metrics.items() if k != "args"}))
        return
    parser = HfArgumentParser(TrainArgs, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    args, rest = parser.parse_args_into_dataclasses(args=argv,
                                                    return_remaining_strings=True)
    try:
        metrics = train(args, rest)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps({k: v for k, v in metrics.items() if k != "args"}))


if __name__ == "__main__":
    main()

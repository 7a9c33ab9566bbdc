"""python -m training --dataset fashion_mnist --model fmnist-small --epochs 12 --bits 64 --output models/fmnist-small"""

from __future__ import annotations

import json
import logging
import sys

from transformers import HfArgumentParser

from training.train import TrainArgs, train


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    (args,) = HfArgumentParser(TrainArgs).parse_args_into_dataclasses(args=argv if argv is not None else sys.argv[1:])
    metrics = train(args)
    print(json.dumps({k: v for k, v in metrics.items() if k != "args"}))


if __name__ == "__main__":
    main()

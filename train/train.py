"""Train a genrec recipe (the same as `genrec train`).

    python train/train.py --config train/configs/tiger_t5.yaml --data data/ml-100k --output_dir runs/tiger_t5
    python train/train.py --config train/configs/lcrec_smollm.yaml --max_steps 50          # any field overrides
    accelerate launch train/train.py --config train/configs/lcrec_qwen.yaml --bf16 true    # several GPUs

Recipes live in train/configs/; `python train/train.py --help` lists every field.
"""

import logging
import sys

from genrec.cli import cmd_train


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cmd_train(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()

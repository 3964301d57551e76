"""Train a genrec recipe (the same as `genrec train`, with the same exit codes and one-line errors).

    python train/train.py --config train/configs/tiger_t5.yaml --data data/ml-100k --output_dir runs/tiger_t5
    python train/train.py --config train/configs/lcrec_smollm.yaml --max_steps 50          # any field overrides
    accelerate launch --config_file train/accelerate/ddp.yaml train/train.py --config train/configs/tiger_t5.yaml

OUTPUT_DIR must be new, empty or a previous run's (its bundle is replaced); `--overwrite` allows a directory that
holds other files. Recipes live in train/configs/; `python train/train.py --help` lists every field. Several GPUs,
nodes, FSDP and DeepSpeed: train/README.md.
"""

import sys

from genrec.cli import main as genrec_main


def main(argv=None) -> int:
    return genrec_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())

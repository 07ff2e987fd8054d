"""One of two processes (127.0.0.1) preparing the fraud data together: each reads only its part of a CSV.

Usage: check_sharded_prep.py PROCESS_ID PORT CSV OUT.npz. Prepares the data twice (without and with the
augmentation) with ``fraud.prepare`` and saves what this process ends up with.
"""

import sys

from fpml import distributed

PROCESS, PORT, CSV, OUT = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
distributed.initialize(f"127.0.0.1:{PORT}", 2, PROCESS)

import numpy as np  # noqa: E402

from fpml import config  # noqa: E402
from pipelines import fraud  # noqa: E402

COMMON = [f"data={CSV}", "test-size=0.2", "validation-size=300", "standardize=true"]
COMMON += ["chunk-rows=700", "steps-per-call=100"]  # read in chunks into memory-mapped files


def main() -> None:
    plain = fraud.prepare(config.load("fraud", [*COMMON, "augment=nil"]), quiet=True)
    augmented = fraud.prepare(config.load("fraud", COMMON), quiet=True)
    np.savez(
        OUT,
        train_x=plain.train.x,
        test_x=plain.test.x,
        test_y=plain.test.y,
        validation_x=plain.validation.x,
        mean=plain.standardizer.mean,
        std=plain.standardizer.std,
        source=np.array(plain.source),
        augmented_counts=augmented.train.class_counts,
        augmented_test_x=augmented.test.x,
    )


if __name__ == "__main__":
    main()

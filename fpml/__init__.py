"""fpml: functional-style machine learning pipelines. Networks are EDN data; training is pure, jit-compiled.

>>> import fpml
>>> from fpml import layers as L
>>> net = fpml.build([L.input(29, id="data"), L.linear_then("relu", 20), L.dropout(keep=0.9),
...                   L.linear(2), L.softmax(id="label")])
>>> net.output_size, net.head
(2, 'softmax')
"""

from fpml import checkpoint, config, edn, layers, losses, metrics, optim
from fpml.data import stream, synthetic, transforms
from fpml.data.dataset import Dataset
from fpml.errors import CheckpointError, ConfigError, DataError, FpmlError, TrainingDiverged, TrainingInterrupted
from fpml.network import Network, build, describe
from fpml.train import (
    EpochRecord,
    TestResult,
    TrainResult,
    TrainState,
    classification_test_fn,
    init_state,
    make_epoch,
    train_n,
)

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "Dataset",
    "EpochRecord",
    "FpmlError",
    "Network",
    "TestResult",
    "TrainResult",
    "TrainState",
    "TrainingDiverged",
    "TrainingInterrupted",
    "build",
    "checkpoint",
    "classification_test_fn",
    "config",
    "describe",
    "edn",
    "init_state",
    "layers",
    "losses",
    "make_epoch",
    "metrics",
    "optim",
    "stream",
    "synthetic",
    "train_n",
    "transforms",
]

"""Shared test fixtures. Scripts under tests/multidevice/ run in their own processes (they set XLA_FLAGS
before JAX starts); pytest must not import them."""

import jax
import pytest
import toolz

from fpml.data import synthetic, transforms

collect_ignore_glob = ["multidevice/*"]


def standardized_split(seed: int, rows: int, frauds: int, test_rows: int):
    """Synthetic fraud data -> drop Time -> one-hot -> stratified split -> standardized: ``(train, test)``."""
    frame = synthetic.generate(seed=seed, rows=rows, frauds=frauds)
    data = toolz.pipe(frame, transforms.drop_columns(["Time"]), transforms.to_dataset("Class"))
    train_part, test_part = transforms.split(jax.random.key(0), test_rows, data)
    scale = transforms.standardize(transforms.fit_standardizer(train_part))
    return scale(train_part), scale(test_part)


@pytest.fixture(scope="session")
def small_split():
    """The factory :func:`standardized_split`, for module-scoped fixtures of small training runs."""
    return standardized_split

"""A seeded synthetic stand-in for the Kaggle credit-card fraud file, with the same schema.

Per-class means and standard deviations of V1..V28 are those of the real file; normal rows are
heavy-tailed (Student t, 4 degrees of freedom) and independent, as PCA components are; fraud rows share a
latent "severity" factor, so their shifts (largest on V14, V4, V11, V12, V10, V17, V3) are correlated
within the class, as in the real data. Amount is log-normal (median ~22, mean ~88 for normal rows;
median ~9, mean ~122 for frauds), Time is uniform over two days (0..172,792 s).

>>> frame = generate(seed=0, rows=2_000, frauds=40)
>>> frame.shape, int(frame["Class"].sum())
((2000, 31), 40)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fpml.data.io import CREDITCARD_COLUMNS
from fpml.errors import ConfigError

ROWS, FRAUDS, SECONDS = 284_807, 492, 172_792

#: (normal mean, normal std, fraud mean, fraud std) of V1..V28 in the real file.
V_STATS = np.array(
    [
        (+0.0083, 1.9298, -4.7719, 6.7837),  # V1
        (-0.0063, 1.6361, +3.6238, 4.2912),  # V2
        (+0.0122, 1.4594, -7.0333, 7.1109),  # V3
        (-0.0079, 1.3993, +4.5420, 2.8733),  # V4
        (+0.0055, 1.3570, -3.1512, 5.3725),  # V5
        (+0.0024, 1.3299, -1.3977, 1.8581),  # V6
        (+0.0096, 1.1788, -5.5687, 7.2068),  # V7
        (-0.0010, 1.1613, +0.5706, 6.7978),  # V8
        (+0.0045, 1.0894, -2.5811, 2.5009),  # V9
        (+0.0098, 1.0442, -5.6769, 4.8973),  # V10
        (-0.0066, 1.0031, +3.8002, 2.6786),  # V11
        (+0.0108, 0.9459, -6.2594, 4.6545),  # V12
        (+0.0002, 0.9951, -0.1093, 1.1045),  # V13
        (+0.0121, 0.8970, -6.9717, 4.2789),  # V14
        (+0.0002, 0.9151, -0.0929, 1.0499),  # V15
        (+0.0072, 0.8448, -4.1399, 3.8650),  # V16
        (+0.0115, 0.7495, -6.6658, 6.9706),  # V17
        (+0.0039, 0.8249, -2.2463, 2.8994),  # V18
        (-0.0012, 0.8117, +0.6807, 1.5399),  # V19
        (-0.0006, 0.7694, +0.3723, 1.3466),  # V20
        (-0.0012, 0.7167, +0.7136, 3.8693),  # V21
        (-0.0000, 0.7237, +0.0140, 1.4946),  # V22
        (+0.0001, 0.6215, -0.0403, 1.5796),  # V23
        (+0.0002, 0.6058, -0.1051, 0.5156),  # V24
        (-0.0001, 0.5207, +0.0414, 0.7972),  # V25
        (-0.0001, 0.4822, +0.0516, 0.4717),  # V26
        (-0.0003, 0.3998, +0.1706, 1.3768),  # V27
        (-0.0001, 0.3296, +0.0757, 0.5473),  # V28
    ]
)

#: log-normal (mu, sigma) of Amount: median exp(mu), mean exp(mu + sigma^2 / 2).
AMOUNT_NORMAL = (np.log(22.0), np.sqrt(2 * np.log(88.3 / 22.0)))
AMOUNT_FRAUD = (np.log(9.25), np.sqrt(2 * np.log(122.2 / 9.25)))
FRAUD_CORRELATION = 0.6


def _amount(rng: np.random.Generator, n: int, mu_sigma: tuple[float, float]) -> np.ndarray:
    return np.round(rng.lognormal(*mu_sigma, size=n), 2)


def generate(seed: int = 0, rows: int = ROWS, frauds: int = FRAUDS) -> pd.DataFrame:
    """``rows`` transactions of which ``frauds`` are fraud, fully determined by ``seed``."""
    for name, value in (("seed", seed), ("rows", rows), ("frauds", frauds)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f":synthetic :{name} must be a non-negative integer, got {value!r}")
    if not 0 < frauds < rows:
        raise ConfigError(f":synthetic needs 0 < :frauds < :rows, got {frauds} of {rows}")
    rng = np.random.default_rng(seed)
    n_normal = rows - frauds
    normal_mean, normal_std, fraud_mean, fraud_std = V_STATS.T
    normal = normal_mean + normal_std * rng.standard_t(4, size=(n_normal, 28)) / np.sqrt(2.0)
    direction = np.sign(fraud_mean - normal_mean)
    severity = rng.standard_normal((frauds, 1))
    noise = rng.standard_normal((frauds, 28))
    z = np.sqrt(1 - FRAUD_CORRELATION) * noise + np.sqrt(FRAUD_CORRELATION) * direction * severity
    fraud = fraud_mean + fraud_std * z
    v = np.empty((rows, 28))
    label = np.zeros(rows, np.int64)
    fraud_rows = np.sort(rng.choice(rows, size=frauds, replace=False))
    label[fraud_rows] = 1
    v[label == 0], v[label == 1] = normal, fraud
    amount = np.empty(rows)
    amount[label == 0] = _amount(rng, n_normal, AMOUNT_NORMAL)
    amount[label == 1] = _amount(rng, frauds, AMOUNT_FRAUD)
    time = np.sort(rng.integers(0, SECONDS + 1, size=rows)).astype(float)
    columns = {"Time": time, **{f"V{i + 1}": v[:, i] for i in range(28)}, "Amount": amount, "Class": label}
    return pd.DataFrame(columns, columns=list(CREDITCARD_COLUMNS))

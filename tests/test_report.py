"""The comparison report: the baselines get every override that picks the data or its split."""

import pytest

from pipelines import report


class Stop(Exception):
    pass


def test_baselines_get_the_data_and_split_overrides_the_fpml_rows_get(monkeypatch, tmp_path):
    seen = {}

    def fpml_row(name, cfg, split, run_dir, overrides):
        seen["fpml"] = list(overrides)
        return None

    def baseline_rows(split, data_overrides, quick):
        seen["baselines"] = list(data_overrides)
        raise Stop

    monkeypatch.setattr(report, "fpml_row", fpml_row)
    monkeypatch.setattr(report, "baseline_rows", baseline_rows)
    data = ["data=:synthetic", "synthetic.rows=20000", "synthetic.frauds=100", "test-size=5000", "split-seed=3"]
    data += ["label=Class", "data-dir=/tmp/x"]
    with pytest.raises(Stop):
        report.main(["--out", str(tmp_path), *data, "epoch-count=3", "network.1.size=30"])
    assert seen["fpml"] == [*data, "epoch-count=3", "network.1.size=30"]
    assert seen["baselines"] == data

"""Process-level settings made before JAX starts: XLA's own loops for small matrix products."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fpml import config, runtime

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import os, sys
from fpml import runtime
if sys.argv[1] == "inline":
    runtime.use_inline_dots()
import jax, jax.numpy as jnp
text = jax.jit(lambda x, w: jax.nn.relu(x @ w)).lower(jnp.ones((100, 29)), jnp.ones((29, 20))).compile().as_text()
print(os.environ.get("XLA_FLAGS", ""))
print("library call" if "ynn_fusion" in text else "inline")
"""


def _probe(mode: str, xla_flags: str | None = None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if xla_flags is not None:
        env["XLA_FLAGS"] = xla_flags
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.rstrip("\n").split("\n")


def test_use_inline_dots_compiles_products_as_xla_loops_instead_of_library_calls():
    assert _probe("default") == ["", "library call"]
    assert _probe("inline") == [" ".join(runtime.INLINE_DOT_FLAGS), "inline"]


def test_use_inline_dots_leaves_flags_the_user_set():
    flags, how = _probe("inline", "--xla_cpu_experimental_ynn_fusion_type=dot --xla_cpu_enable_fast_math=false")
    assert flags.split() == [
        "--xla_cpu_experimental_ynn_fusion_type=dot",
        "--xla_cpu_enable_fast_math=false",
        "--xla_cpu_multi_thread_eigen=false",
    ]
    assert how == "library call"  # the user's YNNPACK setting won


def test_use_inline_dots_refuses_a_started_backend():
    import jax.numpy as jnp

    jnp.zeros(1).block_until_ready()
    with pytest.raises(RuntimeError, match="before JAX starts its backend"):
        runtime.use_inline_dots()


def test_inline_dots_only_for_a_small_network_on_one_core():
    small = config.load("fraud")["network"]
    big = [{"type": "input", "size": 29}, {"type": "linear", "size": 1024}, {"type": "linear", "size": 2}]
    assert runtime.inline_dots(1, small, 100)
    assert not runtime.inline_dots(None, small, 100) and not runtime.inline_dots(2, small, 100)
    assert not runtime.inline_dots(1, big, 1000)  # one core asked for, but the products are large


def test_inline_dots_only_under_the_jax_release_whose_flags_are_known(monkeypatch):
    small = config.load("fraud")["network"]
    assert tuple(runtime.jax.__version_info__[:2]) == runtime.INLINE_DOTS_JAX  # the release CI installs
    monkeypatch.setattr(runtime.jax, "__version_info__", (0, 9, 0))
    assert not runtime.inline_dots(1, small, 100)  # an older XLA might stop at an unknown flag


def test_inline_dots_on_a_machine_of_one_core(monkeypatch):
    small = config.load("fraud")["network"]
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0})
    assert runtime.inline_dots(None, small, 100)  # nothing to confine, but it runs on one core


def test_prepare_cores_confines_and_sets_inline_dots_as_fpml_train_does(monkeypatch):
    calls = []
    monkeypatch.setattr(runtime, "confine_to_cores", lambda cores, block=0: calls.append(("confine", cores, block)))
    monkeypatch.setattr(runtime, "use_inline_dots", lambda: calls.append(("inline",)))
    small = config.load("fraud")["network"]
    runtime.prepare_cores(1, small, 100, block=3)
    assert calls == [("confine", 1, 3), ("inline",)]
    calls.clear()
    runtime.prepare_cores(1, small, 100_000)  # one core, but a large step: no inline dots
    runtime.prepare_cores(2, small, 100)  # two cores: no inline dots
    assert [c[0] for c in calls] == ["confine", "confine"]


@pytest.mark.parametrize(
    ("flags", "on"),
    [
        (None, True),
        ("--xla_force_host_platform_device_count=8", True),
        (" ".join(runtime.INLINE_DOT_FLAGS), False),
        ("--xla_cpu_experimental_ynn_fusion_type=dot,eltwise", True),
        ("--xla_cpu_experimental_ynn_fusion_type= --xla_cpu_experimental_ynn_fusion_type=dot", True),
        ("--xla_cpu_experimental_ynn_fusion_type=dot --xla_cpu_experimental_ynn_fusion_type=''", False),
    ],
)
def test_ynnpack_products_reads_the_last_fusion_flag_of_xla_flags(monkeypatch, flags, on):
    if flags is None:
        monkeypatch.delenv("XLA_FLAGS", raising=False)
    else:
        monkeypatch.setenv("XLA_FLAGS", flags)
    assert runtime.ynnpack_products() is on

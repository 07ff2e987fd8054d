"""The README stays true: its REPL tour runs, and its config reference is the one the code has."""

import os
import re
import subprocess
import sys
from pathlib import Path

from fpml import config, runtime
from fpml.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_starts_with_the_two_commands():
    first_block = README.split("```sh", 1)[1].split("```", 1)[0]
    assert "make train CONFIG=fraud" in first_block and "make test" in first_block


def test_readme_config_reference_matches_the_code():
    assert config.reference() in README


def test_readme_repl_tour_runs(tmp_path, monkeypatch, capsys):
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "runs" / "repl" / "best.npz").is_file()
    assert "total" in capsys.readouterr().out


def test_cpu_cores_auto_confines_only_small_networks():
    cfg = config.load("fraud", config_dir=ROOT / "configs")
    big = cfg["network"].set(1, cfg["network"][1].set("size", 1024)).set(3, cfg["network"][3].set("size", 1024))
    many = len(os.sched_getaffinity(0)) > 1
    assert runtime.cpu_cores("auto", cfg["network"], 100) == (1 if many else None)
    assert runtime.cpu_cores("auto", big, 1000) is None
    assert runtime.cpu_cores("all", cfg["network"], 100) is None
    assert runtime.cpu_cores(1, cfg["network"], 100) == 1
    assert runtime.cpu_cores(10_000, cfg["network"], 100) == len(os.sched_getaffinity(0))  # no more than there are
    assert runtime.cpu_cores("auto", cfg["network"], 100, multi_process=True) is None  # processes may share a host
    assert runtime.step_flops(cfg["network"], 100) == 6 * 100 * (29 * 20 + 20 * 10 + 10 * 2)
    try:
        runtime.cpu_cores(0, cfg["network"], 100)
    except ConfigError as err:
        assert ":cpu-cores" in str(err)
    else:
        raise AssertionError("cpu-cores 0 was accepted")


def test_repl_walkthrough_runs(tmp_path, monkeypatch):
    text = (ROOT / "docs" / "repl.md").read_text()
    code = "\n".join(re.findall(r"```python\n(.*?)```", text, re.S))
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "docs/repl.md", "exec"), scope)
    assert len(scope["more"].history) == 5
    assert "TrainResult(best: epoch" in repr(scope["result"])
    assert repr(scope["net"]).startswith("[{:type :input")


def test_api_doc_names_every_public_object():
    import fpml

    api = (ROOT / "docs" / "api.md").read_text()
    missing = [name for name in fpml.__all__ if name not in api]
    assert not missing, missing


def test_loading_a_config_does_not_start_jax():
    """The CLI picks the backend and CPU cores after reading the config: reading it must not start JAX."""
    code = (
        "from jax._src import xla_bridge; from fpml import config; config.load('fraud'); "
        "print(xla_bridge.backends_are_initialized())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_architecture_lists_every_module_after_the_modules_it_imports():
    """docs/architecture.md: "each module imports only modules above it in this list"."""
    table = (ROOT / "docs" / "architecture.md").read_text()
    order = re.findall(r"^\| `((?:fpml|pipelines)/[\w/]+\.py)` \|", table, re.M)
    listed = {*order, "fpml/__init__.py", "fpml/__main__.py", "fpml/data/__init__.py", "pipelines/__init__.py"}
    modules = {str(p.relative_to(ROOT)) for d in ("fpml", "pipelines") for p in (ROOT / d).rglob("*.py")}
    assert modules == listed, "modules missing from the table, or listed but gone"

    def path_of(name: str) -> str:
        for candidate in (f"{name.replace('.', '/')}.py", f"{name.replace('.', '/')}/__init__.py"):
            if (ROOT / candidate).is_file():
                return candidate
        raise AssertionError(name)

    for position, module in enumerate(order):
        text = (ROOT / module).read_text()
        imported = set()
        for package, names in re.findall(r"^\s*from ((?:fpml|pipelines)[\w.]*) import \(?([\w, ]+)", text, re.M):
            for name in (n.strip() for n in names.split(",")):
                full = f"{package}.{name}"
                imported.add(path_of(full) if (ROOT / f"{full.replace('.', '/')}.py").is_file() else path_of(package))
        for dependency in imported - {"fpml/__init__.py", "fpml/data/__init__.py", "pipelines/__init__.py"}:
            assert order.index(dependency) < position, f"{module} imports {dependency}, listed below it"

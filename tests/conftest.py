"""Scripts under tests/multidevice/ run in their own processes (they set XLA_FLAGS before JAX starts);
pytest must not import them."""

collect_ignore_glob = ["multidevice/*"]

"""EDN reading/writing, config validation, overrides and loading, and a never-crash property test."""

from __future__ import annotations

import math
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyrsistent import PMap, PVector

from fpml import config, edn, layers, network, optim
from fpml.edn import Keyword
from fpml.errors import ConfigError, FpmlError

NET = "[{:type :input :size 4} {:type :linear->relu :size 8} {:type :linear :size 2} {:type :softmax}]"
MINIMAL = "{:network " + NET + "}"


# ------------------------------------------------------------------------------------------------- EDN


def _same(a, b) -> bool:
    """Structural equality that also tells keywords from strings, ints from floats and bools from ints.

    Map keys are compared by name only: ``dumps`` writes string keys as keywords (documented).
    """
    if isinstance(a, PMap) or isinstance(b, PMap):
        return (
            isinstance(a, PMap)
            and isinstance(b, PMap)
            and len(a) == len(b)
            and all(k in b and _same(v, b[k]) for k, v in a.items())
        )
    if isinstance(a, PVector) or isinstance(b, PVector):
        return (
            isinstance(a, PVector)
            and isinstance(b, PVector)
            and len(a) == len(b)
            and all(_same(x, y) for x, y in zip(a, b, strict=True))
        )
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


NESTED = {
    "name": Keyword("adam"),
    "text": 'a "quoted" string with \\ backslash, newline\n and unicode é',
    "rate": 1e-4,
    "neg": -2.5,
    "big": 1.5e300,
    "count": 42,
    "nothing": None,
    "yes": True,
    "no": False,
    "empty-vec": [],
    "empty-map": {},
    "layers": [{"type": Keyword("input"), "size": 3}, {"type": Keyword("linear->relu"), "size": 20, "l2": 0.0}],
    "nested": {"deep": [[1, 2.0, Keyword("k")], {"x": [None, True, "s"]}]},
}


def test_dumps_then_loads_round_trips_nested_data():
    data = edn.freeze(NESTED)
    text = edn.dumps(data)
    back = edn.loads(text)
    assert back == data
    assert _same(back, data)
    assert isinstance(back["name"], Keyword) and not isinstance(back["text"], Keyword)
    assert back["nothing"] is None and back["yes"] is True and back["no"] is False
    assert isinstance(back["rate"], float) and isinstance(back["count"], int)
    # pretty output reads back to the same data too
    assert _same(edn.loads(edn.pretty(data)), data)


def test_loads_gives_immutable_data_and_keywords():
    data = edn.loads('{:type :linear :size 20 :name "x" :v [1 2]}')
    assert isinstance(data, PMap) and isinstance(data["v"], PVector)
    assert data["type"] == "linear" and isinstance(data["type"], Keyword)
    assert repr(data["type"]) == ":linear"
    assert edn.dumps(data) == '{:type :linear :size 20 :name "x" :v [1 2]}'


def test_non_finite_floats_round_trip():
    data = edn.freeze([math.inf, -math.inf, math.nan])
    back = edn.loads(edn.dumps(data))
    assert back[0] == math.inf and back[1] == -math.inf and math.isnan(back[2])


keywords = st.from_regex(r"[a-z][a-z0-9\-]{0,8}(->[a-z]{1,5})?", fullmatch=True).map(Keyword)
plain_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    keywords,
    plain_text,
)
edn_data = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keywords, inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(edn_data)
def test_round_trip_property(value):
    data = edn.freeze(value)
    assert _same(edn.loads(edn.dumps(data)), data)


@pytest.mark.parametrize(
    "text",
    [
        "{:a 1",
        "{:a 1]",
        "[1 2\n :b }",
        "{:network [{:type :input :size 3}\n  {:type :linear :size 2}}",
        '"unterminated',
        "~",
        "[:a :b]}",
        "{:a}",  # a map with an odd number of forms
    ],
)
def test_syntax_errors_name_the_line(text):
    with pytest.raises(ConfigError) as info:
        edn.loads(text, "cfg.edn")
    message = str(info.value)
    assert "line" in message
    assert "cfg.edn" in message
    assert "\n" not in message


def test_syntax_error_points_at_the_right_line():
    with pytest.raises(ConfigError, match="line 3"):
        edn.loads("{:a 1\n :b 2\n :c ]}")


@pytest.mark.parametrize(
    "text, where",
    [
        (";; a comment with ~ tilde\n{:a 1\n :b ~}", "line 3, column 5"),
        (';; it\'s "quoted"\n{:a "open\n :b 2}', "line 2, column 5"),  # the comment holds the character too
    ],
)
def test_an_illegal_character_is_placed_where_the_reader_met_it(text, where):
    with pytest.raises(ConfigError, match=f"cfg.edn: EDN syntax error at {where}: Illegal character") as info:
        edn.loads(text, "cfg.edn")
    assert "\n" not in str(info.value)


def test_loads_wants_exactly_one_form():
    with pytest.raises(ConfigError, match="one EDN form"):
        edn.loads("1 2")
    with pytest.raises(ConfigError, match="one EDN form"):
        edn.loads("   ")


# ---------------------------------------------------------------------------------------------- config


def test_defaults_are_filled():
    cfg = config.from_text(MINIMAL)
    for key, setting in config.SETTINGS.items():
        if key != "network":
            assert cfg[key] == setting.default, key
    assert cfg["batch-size"] == 100 and cfg["epoch-count"] == 30
    assert cfg["optimizer"]["name"] == "adam" and cfg["data"] == "kaggle"
    # the network comes back normalised, with ids
    assert [str(layer["id"]) for layer in cfg["network"]] == ["input-1", "linear-1", "linear-2", "softmax-1"]


def test_given_values_are_kept():
    cfg = config.from_text("{:network " + NET + " :batch-size 50 :epoch-size 1000 :seed 3 :threshold 0.8}")
    assert (cfg["batch-size"], cfg["epoch-size"], cfg["seed"], cfg["threshold"]) == (50, 1000, 3, 0.8)


def test_unknown_key_suggests_nearest():
    with pytest.raises(ConfigError, match=r"did you mean 'epoch-count'") as info:
        config.from_text("{:network " + NET + " :epoch-cont 3}")
    assert ":epoch-cont" in str(info.value)


def test_nested_setting_maps_check_their_keys():
    with pytest.raises(ConfigError, match=r":synthetic has unknown key :row \(did you mean 'rows'\?\)"):
        config.from_text("{:network " + NET + " :synthetic {:row 1000}}")
    with pytest.raises(ConfigError, match=r":synthetic :frauds must be a positive integer, got 2.5"):
        config.from_text("{:network " + NET + " :synthetic {:frauds 2.5}}")
    with pytest.raises(ConfigError, match=r":augment has unknown key :scal \(did you mean 'scale'\?\)"):
        config.from_text("{:network " + NET + " :augment {:scal 2}}")


def test_unknown_layer_type_and_key_suggest_nearest():
    with pytest.raises(ConfigError, match=r"did you mean 'linear'"):
        network.build(edn.loads("[{:type :input :size 3} {:type :lineer :size 2}]"))
    with pytest.raises(ConfigError, match=r"did you mean 'size'"):
        network.build(edn.loads("[{:type :input :size 3} {:type :linear :sise 2}]"))


@pytest.mark.parametrize(
    ("entry", "key", "shown"),
    [
        (':batch-size "big"', "batch-size", '"big"'),
        (":epoch-count -3", "epoch-count", "-3"),
        (":threshold 1.5", "threshold", "1.5"),
        (":standardize 1", "standardize", "1"),
        (":stream :sideways", "stream", ":sideways"),
        (':drop-columns "Time"', "drop-columns", '"Time"'),
        (":data 42", "data", "42"),
        (":loss :hinge", "loss", ":hinge"),
    ],
)
def test_wrong_types_name_key_and_value(entry, key, shown):
    with pytest.raises(ConfigError) as info:
        config.from_text("{:network " + NET + " " + entry + "}")
    message = str(info.value)
    assert f":{key}" in message
    assert shown in message


def test_layer_errors_name_layer_key_and_value():
    with pytest.raises(ConfigError) as info:
        config.from_text("{:network [{:type :input :size 3} {:type :linear :size -2}]}")
    message = str(info.value)
    assert "layer 1" in message and ":size" in message and "-2" in message


def test_epoch_size_must_be_a_multiple_of_batch_size():
    with pytest.raises(ConfigError) as info:
        config.from_text("{:network " + NET + " :epoch-size 1050 :batch-size 100}")
    message = str(info.value)
    assert ":epoch-size" in message and ":batch-size" in message and "1000" in message


def test_missing_network_and_non_map():
    with pytest.raises(ConfigError, match=":network"):
        config.from_text("{:batch-size 10}")
    with pytest.raises(ConfigError, match="map"):
        config.from_text("[1 2 3]")


def test_loss_must_fit_the_head():
    with pytest.raises(ConfigError, match="softmax"):
        config.from_text("{:network [{:type :input :size 3} {:type :linear :size 2}] :loss :softmax-cross-entropy}")
    cfg = config.from_text("{:network " + NET + " :loss :softmax-cross-entropy}")
    assert cfg["loss"] == "softmax-cross-entropy"


def test_class_weights_give_one_weight_per_class_also_for_a_single_logistic_output():
    logistic = "[{:type :input :size 3} {:type :linear->logistic :size 1}]"
    assert config.from_text("{:network " + logistic + " :class-weights [1 10]}")["class-weights"] == [1, 10]
    with pytest.raises(ConfigError, match=r"has 1 entries, the network has 2 classes \(one weight each\)"):
        config.from_text("{:network " + logistic + " :class-weights [10]}")
    with pytest.raises(ConfigError, match=r":class-weights has 2 entries, the network has 3 classes"):
        config.from_text("{:network [{:type :input :size 3} {:type :linear :size 3}] :class-weights [1 10]}")


def test_optimizer_errors():
    with pytest.raises(ConfigError, match=r"did you mean 'adam'"):
        config.from_text("{:network " + NET + " :optimizer {:name :addam}}")
    with pytest.raises(ConfigError, match="learning-rate"):
        config.from_text("{:network " + NET + " :optimizer {:name :adam :learning-rate -1}}")
    with pytest.raises(ConfigError, match="b1"):
        config.from_text("{:network " + NET + " :optimizer {:name :adam :b11 0.9}}")


# ------------------------------------------------------------------------------------ load / overrides


@pytest.fixture()
def config_dir(tmp_path):
    (tmp_path / "fraud.edn").write_text(
        "{:network [{:type :input :size 30}\n {:type :linear->relu :size 16}\n {:type :linear :size 2}\n"
        " {:type :softmax}]\n :epoch-count 5\n :optimizer {:name :adam :learning-rate 1e-3}}\n"
    )
    (tmp_path / "small.edn").write_text(MINIMAL)
    return tmp_path


def test_load_by_name_and_by_path(config_dir):
    by_name = config.load("fraud", config_dir=config_dir)
    by_path = config.load(str(config_dir / "fraud.edn"), config_dir=config_dir)
    assert by_name == by_path
    assert by_name["epoch-count"] == 5 and by_name["network"][1]["size"] == 16


def test_override_top_level_and_dotted_keys(config_dir):
    overrides = [
        "epoch-count=3",
        "batch-size=50",
        "optimizer.learning-rate=1e-4",
        "optimizer.name=:sgd",
        "threshold=0.8",
        "standardize=true",
    ]
    cfg = config.load("fraud", overrides, config_dir=config_dir)
    assert cfg["epoch-count"] == 3 and cfg["batch-size"] == 50
    assert cfg["optimizer"]["learning-rate"] == 1e-4 and cfg["optimizer"]["name"] == "sgd"
    assert cfg["threshold"] == 0.8 and cfg["standardize"] is True


def test_override_vector_index(config_dir):
    cfg = config.load("fraud", ["network.1.size=32"], config_dir=config_dir)
    assert cfg["network"][1]["size"] == 32
    assert cfg["network"][1]["type"] == "linear->relu"
    assert config.load("fraud", config_dir=config_dir)["network"][1]["size"] == 16  # the file is unchanged


def test_override_a_key_absent_from_the_file_uses_the_default_map(config_dir):
    cfg = config.load("small", ["optimizer.learning-rate=0.01"], config_dir=config_dir)
    assert cfg["optimizer"]["learning-rate"] == 0.01 and cfg["optimizer"]["name"] == "adam"


@pytest.mark.parametrize(
    "override",
    [
        "network.9.size=3",  # index out of range
        "network.x.size=3",  # not an index
        "optimizer.foo.bar=1",  # no such key inside
        "epoch-cont=3",  # unknown top-level key
        "epoch-count.x=3",  # cannot set inside a number
        "epoch-count=[1",  # unparsable value
        "batch-size={:a",  # unparsable value
        "epoch-count",  # no '='
        "=3",  # no key
        'epoch-count="three"',  # parses, fails validation
    ],
)
def test_bad_overrides_raise_config_error(config_dir, override):
    with pytest.raises(ConfigError) as info:
        config.load("fraud", [override], config_dir=config_dir)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "override, message",
    [
        ("network.1.size=0", "network layer 1 (linear->relu): :size must be a positive integer, got 0"),
        ("optimizer.name=:adma", ":optimizer :name :adma is unknown (did you mean 'adam'?)"),
        ("loss=:binary-cross-entropy", ":loss :binary-cross-entropy needs a network ending in a :logistic layer"),
        ("threshold=:tune", ":threshold :tune needs a :validation-size"),
        ("num-processes=2", ':num-processes is set but it needs a :coordinator "HOST:PORT"'),
        ("batch-size=7", ":epoch-size 200000 is not a multiple of :batch-size 7"),
        ("epoch-cont=3", "unknown key :epoch-cont (did you mean 'epoch-count'?)"),  # the nearest spelling
        ("epochs=3", "unknown key :epochs (did you mean 'epoch-count'?)"),  # what other libraries call it
        ("num_epochs=3", "unknown key :num_epochs (did you mean 'epoch-count'?)"),
        ("lr=0.1", "unknown key :lr (did you mean :optimizer {:learning-rate ...}, or optimizer.learning-rate=..."),
    ],
)
def test_network_loss_and_optimizer_errors_blame_the_override(config_dir, override, message):
    with pytest.raises(ConfigError) as info:
        config.load("fraud", [override], config_dir=config_dir)
    assert str(info.value).startswith(f"override {override!r}: {message}")


def test_an_error_in_the_file_is_blamed_on_the_file_not_on_an_override(config_dir):
    bad = config_dir / "bad.edn"
    bad.write_text((config_dir / "fraud.edn").read_text().replace("{:type :linear :size 2}", "{:type :linear :size 0}"))
    with pytest.raises(ConfigError, match=rf"^{bad}: network layer 2 \(linear\): :size must be a positive integer"):
        config.load(str(bad), ["network.1.size=32"], config_dir=config_dir)
    assert config.load(str(bad), ["network.2.size=2"], config_dir=config_dir)["network"][2]["size"] == 2  # mended


def test_several_overrides_of_one_key_are_named_together(config_dir):
    with pytest.raises(
        ConfigError, match=r"^overrides 'network\.1\.size=-3' and 'network\.2\.size=5': network layer 1"
    ):
        config.load("fraud", ["network.1.size=-3", "network.2.size=5"], config_dir=config_dir)


def test_a_multi_process_run_needs_steps_per_call_before_any_process_waits(config_dir):
    processes = ['coordinator="127.0.0.1:1234"', "num-processes=2", "process-id=0"]
    with pytest.raises(ConfigError, match=r"^override 'coordinator=.*': a multi-process run .* set :steps-per-call"):
        config.load("fraud", processes, config_dir=config_dir)
    with pytest.raises(ConfigError, match="set :steps-per-call"):
        config.load("fraud", ["coordinator=:auto"], config_dir=config_dir)
    assert config.load("fraud", [*processes, "steps-per-call=100"], config_dir=config_dir)["steps-per-call"] == 100
    one = ['coordinator="127.0.0.1:1234"', "num-processes=1", "process-id=0"]
    assert config.load("fraud", one, config_dir=config_dir)["num-processes"] == 1  # one process: no chunks needed


@pytest.mark.parametrize("path", ["path/to/x.csv", "data/creditcard.csv", "./x.csv", "/abs/file.csv"])
def test_path_like_override_becomes_a_string(config_dir, path):
    cfg = config.load("fraud", [f"data={path}"], config_dir=config_dir)
    assert cfg["data"] == path
    assert type(cfg["data"]) is str


def test_parse_value():
    assert config.parse_value("3") == 3
    assert config.parse_value("1e-4") == 1e-4
    assert config.parse_value(":adam") == "adam" and isinstance(config.parse_value(":adam"), Keyword)
    assert config.parse_value("true") is True and config.parse_value("nil") is None
    assert config.parse_value('"Time"') == "Time"
    assert config.parse_value("[1 2]") == edn.freeze([1, 2])
    assert type(config.parse_value("runs/exp")) is str
    assert config.parse_value("2024/creditcard.csv") == "2024/creditcard.csv"  # starts like a number, is a name
    assert config.parse_value("3days.csv") == "3days.csv"
    assert config.parse_value("-0.5") == -0.5


def test_unknown_config_name_lists_known_configs(config_dir):
    with pytest.raises(ConfigError) as info:
        config.load("fraude", config_dir=config_dir)
    message = str(info.value)
    assert "fraud" in message and "small" in message
    assert "did you mean 'fraud'" in message
    assert f"configs in {config_dir.resolve()}/ (a config name is looked up there" in message


def test_missing_config_path(config_dir):
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(str(config_dir / "nope.edn"), config_dir=config_dir)


def test_config_file_syntax_error_names_file_and_line(tmp_path):
    (tmp_path / "broken.edn").write_text("{:network [{:type :input :size 3}\n {:type :linear :size 2}}\n")
    with pytest.raises(ConfigError) as info:
        config.load("broken", config_dir=tmp_path)
    assert "broken.edn" in str(info.value) and "line 2" in str(info.value)


# ------------------------------------------------------------------------------- never crash: property


def _only_fpml_errors(fn, *args) -> None:
    try:
        fn(*args)
    except FpmlError as err:
        assert str(err)  # a message is always given


layer_type_names = st.one_of(st.sampled_from(sorted(layers.LAYER_TYPES)), keywords, plain_text)
layer_key_names = st.sampled_from(
    ["type", "id", "size", "init", "l1", "l2", "alpha", "keep", "rate", "variance", "sise"]
)
numbers = st.one_of(st.integers(-5, 50), st.integers(), st.floats(), st.sampled_from([0, 1, 0.5, 1.0, 0.0, -1]))
values = st.one_of(scalars, numbers, st.sampled_from([Keyword(k) for k in ("he", "glorot", "lecun", "data")]))
layer_maps = st.fixed_dictionaries({"type": layer_type_names}, optional={"size": numbers}).flatmap(
    lambda base: st.dictionaries(layer_key_names, values, max_size=3).map(lambda extra: {**extra, **base})
)
layer_like = st.one_of(layer_maps, edn_data)
networks = st.one_of(
    st.lists(layer_like, max_size=5).map(lambda rest: [{"type": Keyword("input"), "size": 3}, *rest]),
    st.lists(layer_like, max_size=5),
    edn_data,
)
optimizer_maps = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(sorted(optim.OPTIMIZERS)), keywords)},
    optional={
        "learning-rate": st.one_of(
            numbers,
            st.fixed_dictionaries(
                {"schedule": st.one_of(st.sampled_from(sorted(optim.SCHEDULES)), keywords)},
                optional={
                    "init-value": numbers,
                    "decay-steps": numbers,
                    "value": numbers,
                    "end-value": numbers,
                    "transition-steps": numbers,
                    "boundaries-and-scales": edn_data,
                },
            ),
        ),
        "clip-global-norm": numbers,
        "momentum": values,
        "b1": values,
    },
)
PROPERTY = settings(
    max_examples=200, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
config_maps = st.fixed_dictionaries(
    {},
    optional={
        "network": networks,
        "optimizer": st.one_of(optimizer_maps, edn_data),
        "batch-size": numbers,
        "epoch-size": numbers,
        "loss": st.one_of(
            st.sampled_from([Keyword(k) for k in ("auto", "mse", "softmax-cross-entropy", "binary-cross-entropy")]),
            values,
        ),
        "test-size": numbers,
        "drop-columns": edn_data,
        "data": values,
        "threshold": numbers,
        "stream": values,
        "synthetic": edn_data,
        "seed": numbers,
        "epoch-cont": values,
    },
)


@PROPERTY
@given(st.one_of(config_maps, edn_data))
def test_validate_never_raises_anything_but_fpml_errors(data):
    _only_fpml_errors(config.validate, edn.freeze(data))


@PROPERTY
@given(networks)
def test_network_build_never_raises_anything_but_fpml_errors(description):
    _only_fpml_errors(network.build, edn.freeze(description))


edn_alphabet = string.ascii_letters + string.digits + " \n\t{}[]()#:\"\\;,.-+/_*!?<>=^~@%&'`$|é"
edn_fragments = st.sampled_from(
    [
        "{",
        "}",
        "[",
        "]",
        ":type",
        ":input",
        ":linear",
        ":size",
        "3",
        "0.5",
        "nil",
        "true",
        '"s"',
        "#{",
        "#_",
        "#inst",
        "#uuid",
        "1/0",
        "1/2",
        "1.5M",
        "7N",
        "\\a",
        "##NaN",
        "##Inf",
        ":network",
        "-",
        "/",
        ".",
        " ",
        "\n",
        "1e999",
    ]
)
random_text = st.one_of(
    st.text(alphabet=edn_alphabet, max_size=40),
    st.lists(edn_fragments, max_size=15).map(" ".join),
    st.lists(edn_fragments, max_size=15).map("".join),
    st.text(max_size=20),
)


@PROPERTY
@given(random_text)
def test_loads_and_validate_of_random_text_raise_only_fpml_errors(text):
    def read_and_validate(t):
        config.validate(edn.loads(t))

    def read_and_build(t):
        network.build(edn.loads(t))

    _only_fpml_errors(read_and_validate, text)
    _only_fpml_errors(read_and_build, text)


MUTATED_BASE = "{:network " + NET + " :batch-size 10 :epoch-size 100 :optimizer {:name :adam :learning-rate 1e-3}}"


@PROPERTY
@given(
    st.integers(0, len(MUTATED_BASE)),
    st.integers(0, 6),
    st.one_of(st.just(""), st.text(alphabet=edn_alphabet, max_size=4), edn_fragments),
)
def test_mutated_config_text_raises_only_fpml_errors(start, span, insert):
    text = MUTATED_BASE[:start] + insert + MUTATED_BASE[start + span :]
    _only_fpml_errors(config.from_text, text)


# --------------------------------------------------------------- regressions found by the property tests


@pytest.mark.parametrize("text", ["1/0", "0/0", "{:network [{:type :input :size 1/0}]}"])
def test_ratio_with_zero_denominator_is_a_config_error(text):
    # edn_format builds fractions.Fraction(n, 0), which raises ZeroDivisionError inside the lexer
    with pytest.raises(ConfigError):
        edn.loads(text)


def test_huge_prelu_alpha_is_a_config_error():
    # is_number accepts any int; jnp.full(..., 10**400, float32) raises OverflowError in build
    text = "[{:type :input :size 3} {:type :prelu :alpha 1" + "0" * 400 + "}]"
    with pytest.raises(ConfigError):
        network.build(edn.loads(text))


def test_bad_schedule_argument_is_a_config_error():
    # optax raises AttributeError for a non-map :boundaries-and-scales; optim._call only converts
    # TypeError/ValueError into ConfigError
    text = (
        "{:network " + NET + " :optimizer {:name :adam :learning-rate {:schedule :piecewise-constant "
        ":init-value 1 :boundaries-and-scales 3}}}"
    )
    with pytest.raises(ConfigError):
        config.from_text(text)


@pytest.mark.parametrize(
    "text, key, column",
    [
        ("{:a 1 :a 2}", ":a", 7),
        ('{"x" 1 "x" 2}', '"x"', 8),
        ("{:a #{1} :b (1 2) :c {:d 1 :d 2}}", ":d", 28),
        ("{:net [{:a 1}] :seed 1 #_ :x :seed 2}", ":seed", 30),
        ('{:seed 1 "seed" 2}', '"seed"', 10),  # keyword, symbol and string: one key once frozen
        ("{:seed 1 seed 2}", "seed", 10),
        ("{1 :a 1.0 :b}", "1.0", 7),  # equal numbers, as the frozen map compares them
        ("{true :a 1 :b}", "1", 10),
    ],
)
def test_a_key_written_twice_in_one_map_is_an_error(text, key, column):
    with pytest.raises(ConfigError, match=f"the key {key} appears twice in one map, at line 1, column {column}"):
        edn.loads(text)


@pytest.mark.parametrize("text", ["{:a 1 :b {:a 2}}", "{:a [1 :a 2] :b 3}", "[{:a 1} {:a 1}]", "{:a 1 #_ {:z 1} :b 2}"])
def test_the_same_key_in_different_maps_is_fine(text):
    assert edn.loads(text) is not None


def test_keys_that_differ_as_values_are_two_keys():
    big = edn.loads("{100000000000000000000 :a 100000000000000000001 :b}")  # not equal as floats, but as ints
    assert len(big) == 2


@pytest.mark.parametrize("depth", [500, 5_000])
def test_edn_nested_too_deeply_is_a_config_error(depth):
    with pytest.raises(ConfigError, match="nested too deeply"):
        edn.loads("[" * depth + "]" * depth, "deep.edn")


_LOGISTIC = "[{:type :input :size 3} {:type :linear->logistic :size 1}]"


def test_test_size_fraction_must_be_below_one():
    """A fraction 1.0 would leave no training rows."""

    assert config.from_text("{:network " + _LOGISTIC + " :test-size 0.5}")["test-size"] == 0.5
    for bad in ("1.0", "0.0", "-0.5", "0"):
        with pytest.raises(ConfigError, match="test-size"):
            config.from_text("{:network " + _LOGISTIC + " :test-size " + bad + "}")
    with pytest.raises(ConfigError, match="validation-size"):
        config.from_text("{:network " + _LOGISTIC + " :validation-size 1.0}")


def test_class_weights_of_too_many_entries_are_refused():
    """Extra weights are refused, not silently ignored."""

    with pytest.raises(ConfigError, match=r":class-weights has 3 entries, the network has 2 classes"):
        config.from_text("{:network " + _LOGISTIC + " :class-weights [1 10 5]}")


def test_stream_positions_stop_below_2_to_the_31():
    """Exactly 2^31 draws per stream would overflow its int32 positions."""

    # 2^21 / 2 classes = 2^20 draws per epoch
    base = "{:network " + _LOGISTIC + " :batch-size 64 :epoch-size 2097152 :epoch-count %d}"
    assert config.from_text(base % 2047)["epoch-count"] == 2047  # 2^31 - 2^20 positions: fits
    with pytest.raises(ConfigError, match="2,147,483,648 rows per stream"):
        config.from_text(base % 2048)  # exactly 2^31 positions: the last is past int32


def test_a_shuffled_stream_needs_no_multiple_of_the_classes():
    """Only a class-balanced stream interleaves the classes, so only it needs an epoch of whole rounds."""

    cfg = config.from_text("{:network " + _LOGISTIC + " :stream :shuffled :epoch-size 75 :batch-size 25}")
    assert cfg["epoch-size"] == 75
    with pytest.raises(ConfigError, match="2 classes"):
        config.from_text("{:network " + _LOGISTIC + " :stream :class-balanced :epoch-size 75 :batch-size 25}")
    cfg = config.from_text(
        "{:network " + _LOGISTIC + " :stream :shuffled :epoch-size 2147483647 :batch-size 1 :epoch-count 1}"
    )
    assert cfg["epoch-count"] == 1  # 2^31 - 1 positions of one shuffled stream fit

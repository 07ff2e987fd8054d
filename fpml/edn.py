"""EDN text <-> immutable Python data.

Maps become ``pyrsistent.PMap``, vectors and lists ``PVector``, keywords :class:`Keyword` (a ``str``
subclass, so ``Keyword("adam") == "adam"`` and Python users may write plain strings), symbols are read
as keywords too. Strings stay ``str``; numbers, booleans and nil map to their Python twins.

>>> data = loads('{:type :linear :size 20}')
>>> data["type"], data["size"]
(:linear, 20)
>>> dumps(data)
'{:type :linear :size 20}'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import edn_format
from pyrsistent import PMap, PVector, pmap, pvector

from fpml.errors import ConfigError


class Keyword(str):
    """An EDN keyword: equal to, and hashed like, the plain string of its name."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f":{self}"


def _freeze(value: Any, where: str) -> Any:
    if isinstance(value, edn_format.Keyword | edn_format.Symbol):
        return Keyword(value.name)
    if isinstance(value, Mapping):
        return pmap({_freeze(k, where): _freeze(v, where) for k, v in value.items()})
    if isinstance(value, Sequence) and not isinstance(value, str):
        return pvector(_freeze(v, where) for v in value)
    if isinstance(value, frozenset | set):
        return frozenset(_freeze(v, where) for v in value)
    if isinstance(value, Fraction):
        return float(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ConfigError(f"{where}: unsupported EDN value {value!r} (use maps, vectors, keywords, numbers, strings)")


def _position(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def _odd_map(text: str) -> str:
    """Position of the innermost map in ``text`` that does not read on its own (a key without a value)."""
    stack, found = [], ""
    in_string = escaped = False
    for offset, char in enumerate(text):
        if in_string:
            in_string, escaped = (char != '"' or escaped), (char == "\\" and not escaped)
        elif char == '"':
            in_string = True
        elif char == "{":
            stack.append(offset)
        elif char == "}" and stack:
            start = stack.pop()
            try:
                edn_format.loads(text[start : offset + 1])
            except Exception:  # noqa: BLE001 - any failure marks this map as the culprit
                found = found or _position(text, start)
    return found


_OPENERS = {"MAP_START", "SET_START", "VECTOR_START", "LIST_START"}
_CLOSERS = {"MAP_OR_SET_END", "VECTOR_END", "LIST_END"}


def _key_identity(value: Any) -> Any:
    """A key token's value as the map will hold it: :seed, seed and "seed" are one key, and so are 1, 1.0
    and true (Python's equality, which the frozen map uses)."""
    if isinstance(value, edn_format.Keyword | edn_format.Symbol):
        return value.name
    return value


def _duplicate_key(text: str) -> tuple[str, int] | None:
    """The first key written twice in one map of ``text`` (EDN forbids it; edn_format keeps the last), as
    ``(key as written, offset)``.

    Walks edn_format's tokens: each open collection counts its elements; in a map, every even element is
    a key. ``#_`` discards the next element and a ``#tag`` prefixes it, so neither counts.
    """
    lexer = edn_format.edn_lex.lex()
    lexer.input(text)
    frames: list[list] = []  # per open collection: [is a map, elements so far, keys seen, discards outside it]
    skip = 0  # elements still to discard (#_)
    for token in lexer:
        if token.type in _OPENERS:
            frames.append([token.type == "MAP_START", 0, set(), skip])
            skip = 0
            continue
        if token.type in _CLOSERS and frames:
            skip, token = frames.pop()[3], None  # the closed collection is one element of its parent
        elif token.type in ("DISCARD", "TAG"):
            skip += token.type == "DISCARD"
            continue
        if skip:
            skip -= 1
        elif frames:
            is_map, count, keys, _ = frame = frames[-1]
            if is_map and count % 2 == 0 and token is not None:
                key, written = _key_identity(token.value), str(token.value)  # a keyword's str is :name
                if key in keys:
                    return (f'"{written}"' if token.type == "STRING" else written), token.lexpos
                keys.add(key)
            frame[1] += 1
    return None


def _syntax_error(text: str, source: str, err: Exception) -> ConfigError:
    message = " ".join(str(err).split())  # one line: edn_format quotes the text around the error
    token = re.match(r"LexToken\((\w+),'?(.*?)'?,\d+,(\d+)\)", message)
    if token:
        kind, value, offset = token.groups()
        return ConfigError(f"{source}: EDN syntax error at {_position(text, int(offset))}: unexpected {value!r}")
    if "Even number of terms" in message:
        where = _odd_map(text)
        return ConfigError(f"{source}: EDN syntax error{where and ' at ' + where}: a map has a key without a value")
    if "EOF" in message:
        return ConfigError(
            f"{source}: EDN syntax error at {_position(text, len(text.rstrip()))}: "
            "the text ends before a map, vector or string is closed"
        )
    illegal = re.search(r"Illegal character '(.)'(?: with lexpos (\d+))?", message)
    if illegal:  # the lexer's offset; the character's first appearance (maybe in a comment) only without one
        offset = int(illegal.group(2)) if illegal.group(2) else text.find(illegal.group(1))
        return ConfigError(f"{source}: EDN syntax error at {_position(text, offset)}: {message}")
    return ConfigError(f"{source}: EDN syntax error: {message}")


def loads(text: str, source: str = "<edn>") -> Any:
    """Read exactly one EDN form from ``text`` into immutable data; errors are :class:`ConfigError`."""
    try:
        forms = edn_format.loads_all(text)
    except edn_format.EDNDecodeError as err:
        raise _syntax_error(text, source, err) from None
    except NotImplementedError:  # edn_format: "Don't know how to handle tag ..."
        raise ConfigError(f"{source}: EDN cannot be read: an unknown #tag (fpml reads plain data)") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, ZeroDivisionError) as err:
        raise ConfigError(f"{source}: EDN cannot be read: {err}") from None
    except RecursionError:
        raise ConfigError(f"{source}: EDN cannot be read: its maps and vectors are nested too deeply") from None
    if len(forms) != 1:
        raise ConfigError(f"{source}: expected one EDN form, found {len(forms)}")
    duplicate = _duplicate_key(text)
    if duplicate is not None:
        key, offset = duplicate
        raise ConfigError(f"{source}: the key {key} appears twice in one map, at {_position(text, offset)}")
    try:
        return _freeze(forms[0], source)
    except RecursionError:
        raise ConfigError(f"{source}: EDN cannot be read: its maps and vectors are nested too deeply") from None


def _scalar(value: Any) -> str:
    if isinstance(value, Keyword):
        return f":{value}"
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "nil"}[value]
    if isinstance(value, float):
        if not math.isfinite(value):
            return {math.inf: "##Inf", -math.inf: "##-Inf"}.get(value, "##NaN")
        return repr(value)
    if isinstance(value, int | str):
        return edn_format.dumps(value)
    raise TypeError(f"cannot write {type(value).__name__} as EDN: {value!r}")


_FIRST_KEYS = ("type", "id", "size", "name")


def _ordered(mapping: Mapping) -> list[tuple[Any, Any]]:
    """Map entries in a stable order (``:type :id :size :name`` first, then by name) so output diffs cleanly."""
    rank = {k: i for i, k in enumerate(_FIRST_KEYS)}
    return sorted(mapping.items(), key=lambda kv: (rank.get(kv[0], len(rank)), str(kv[0])))


def dumps(value: Any) -> str:
    """Write data as compact EDN. Map keys that are strings are written as keywords."""
    if isinstance(value, Mapping):
        items = (f"{dumps(Keyword(k) if isinstance(k, str) else k)} {dumps(v)}" for k, v in _ordered(value))
        return "{" + " ".join(items) + "}"
    if isinstance(value, frozenset | set):
        return "#{" + " ".join(dumps(v) for v in value) + "}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[" + " ".join(dumps(v) for v in value) + "]"
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy / jax scalars
        return _scalar(value.item())
    return _scalar(value)


def pretty(value: Any, indent: int = 0) -> str:
    """EDN with one entry per line for maps and vectors of maps (how configs and networks are read by people)."""
    pad = " " * (indent + 1)
    if isinstance(value, Mapping) and any(isinstance(v, Mapping | PVector | list) for v in value.values()):
        lines = [
            f"{dumps(Keyword(k) if isinstance(k, str) else k)} {pretty(v, indent + len(str(k)) + 3)}"
            for k, v in _ordered(value)
        ]
        return "{" + ("\n" + pad).join(lines) + "}"
    if isinstance(value, PVector | list) and any(isinstance(v, Mapping) for v in value):
        return "[" + ("\n" + pad).join(pretty(v, indent + 1) for v in value) + "]"
    return dumps(value)


def freeze(value: Any) -> Any:
    """Python data (dicts, lists, strings) -> the immutable form :func:`loads` returns."""
    if isinstance(value, PMap | PVector) and not value:
        return value
    return _freeze(value, "<python>")

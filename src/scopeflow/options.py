"""Stage options: frozen dataclasses that mirror the config schema.

Every stage of every technique takes one frozen dataclass of options. Its fields carry their
documentation, units and bounds in ``dataclasses.field(metadata=...)`` through :func:`opt`, so
there is one source of truth: the JSON-Schema files under ``workflow/schemas/`` are generated
from these classes (``python -m scopeflow schema``) and a test keeps them in sync, and the CLI
validates a parameter dict against the same metadata (:func:`from_dict`) with errors that name
the offending key.

Supported field types: ``bool``, ``int``, ``float``, ``str`` (optionally with ``choices``),
``tuple[float, ...]`` / ``tuple[int, ...]`` / ``tuple[str, ...]``, ``float | None`` style
optionals, and nested option dataclasses.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

__all__ = ["OptionsError", "opt", "from_dict", "to_dict", "json_schema"]


class OptionsError(ValueError):
    """A parameter set does not fit its options class (unknown key, bad type or value)."""


def opt(
    default: Any,
    doc: str,
    *,
    units: str | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: float | None = None,
    choices: tuple[str, ...] | None = None,
    min_items: int | None = None,
) -> Any:
    """Declare one option field with its documentation, units and bounds.

    Parameters
    ----------
    default : Any
        Default value (tuples for sequences; ``None`` for "not set").
    doc : str
        One-line description, copied into the JSON schema.
    units : str, optional
        Physical units, e.g. ``"nm"``, ``"mrad"``, ``"e/px"``.
    minimum, maximum, exclusive_minimum : float, optional
        Inclusive/exclusive numeric bounds (applied to every item of a tuple).
    choices : tuple of str, optional
        Allowed values of a string option.
    min_items : int, optional
        Minimum length of a tuple option.
    """
    meta = {
        "doc": doc,
        "units": units,
        "minimum": minimum,
        "maximum": maximum,
        "exclusive_minimum": exclusive_minimum,
        "choices": choices,
        "min_items": min_items,
    }
    if isinstance(default, (list, dict)):
        raise TypeError("option defaults must be immutable: use a tuple")
    if dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _split_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _check_number(value: Any, meta: dict, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise OptionsError(f"{where}: {value!r} is not a finite number")
    lo, hi, xlo = meta.get("minimum"), meta.get("maximum"), meta.get("exclusive_minimum")
    if lo is not None and value < lo:
        raise OptionsError(f"{where}: {value!r} is below the minimum {lo}")
    if hi is not None and value > hi:
        raise OptionsError(f"{where}: {value!r} is above the maximum {hi}")
    if xlo is not None and value <= xlo:
        raise OptionsError(f"{where}: {value!r} must be greater than {xlo}")


def _convert(tp: Any, value: Any, meta: dict, where: str) -> Any:
    tp, optional = _split_optional(tp)
    if value is None:
        if optional:
            return None
        raise OptionsError(f"{where}: a value is required (got null)")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise OptionsError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where=where)
    if tp is bool:
        if not isinstance(value, bool):
            raise OptionsError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise OptionsError(f"{where}: expected an integer, got {value!r}")
        _check_number(value, meta, where)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionsError(f"{where}: expected a number, got {value!r}")
        value = float(value)
        _check_number(value, meta, where)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise OptionsError(f"{where}: expected a string, got {value!r}")
        choices = meta.get("choices")
        if choices and value not in choices:
            raise OptionsError(f"{where}: {value!r} is not one of {list(choices)}")
        return value
    if typing.get_origin(tp) is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise OptionsError(f"{where}: expected a list, got {value!r}")
        n_min = meta.get("min_items")
        if n_min is not None and len(value) < n_min:
            raise OptionsError(f"{where}: needs at least {n_min} items, got {len(value)}")
        return tuple(_convert(item_tp, v, meta, f"{where}[{i}]") for i, v in enumerate(value))
    raise TypeError(f"{where}: unsupported option type {tp!r}")


def from_dict(cls: type, params: dict | None, *, where: str = "params") -> Any:
    """Build an options dataclass from a (JSON/YAML) mapping, validating every value.

    Parameters
    ----------
    cls : type
        A (frozen) dataclass whose fields were declared with :func:`opt`.
    params : dict or None
        The parameters; missing keys take the defaults.
    where : str
        A dotted location used in error messages, e.g. ``"ltem.samples.a.reconstruct"``.

    Raises
    ------
    OptionsError
        Naming the unknown key (with the allowed ones) or the invalid value and where it is.
    """
    params = dict(params or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise OptionsError(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(fields)}")
    hints = _hints(cls)
    kwargs = {}
    for name, value in params.items():
        kwargs[name] = _convert(hints[name], value, dict(fields[name].metadata), f"{where}.{name}")
    return cls(**kwargs)


def to_dict(options: Any) -> dict:
    """Options dataclass -> plain JSON-compatible dict (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v

    out = {}
    for f in dataclasses.fields(options):
        v = getattr(options, f.name)
        out[f.name] = to_dict(v) if dataclasses.is_dataclass(v) else plain(v)
    return out


def _schema_of(tp: Any, meta: dict, default: Any) -> dict:
    tp, optional = _split_optional(tp)
    if dataclasses.is_dataclass(tp):
        sch = json_schema(tp)
    elif tp is bool:
        sch = {"type": "boolean"}
    elif tp is int:
        sch = {"type": "integer"}
    elif tp is float:
        sch = {"type": "number"}
    elif tp is str:
        sch = {"type": "string"}
        if meta.get("choices"):
            sch["enum"] = list(meta["choices"])
    elif typing.get_origin(tp) is tuple:
        item_tp = typing.get_args(tp)[0]
        sch = {"type": "array", "items": _schema_of(item_tp, meta, None)}
        sch["items"].pop("description", None)
        sch["items"].pop("default", None)
        if meta.get("min_items") is not None:
            sch["minItems"] = meta["min_items"]
    else:
        raise TypeError(f"unsupported option type {tp!r}")
    if tp in (int, float) or (
        typing.get_origin(tp) is tuple and typing.get_args(tp)[0] in (int, float)
    ):
        target = sch["items"] if sch["type"] == "array" else sch
        for key, skey in (
            ("minimum", "minimum"),
            ("maximum", "maximum"),
            ("exclusive_minimum", "exclusiveMinimum"),
        ):
            if meta.get(key) is not None:
                target[skey] = meta[key]
    if optional:
        sch = {"anyOf": [sch, {"type": "null"}]}
    doc = meta.get("doc")
    if doc:
        units = meta.get("units")
        sch["description"] = f"{doc} [{units}]" if units else doc
    if default is not None and not dataclasses.is_dataclass(default):
        sch["default"] = list(default) if isinstance(default, tuple) else default
    return sch


def json_schema(cls: type) -> dict:
    """JSON-Schema (draft 2020-12 subset) of an options dataclass.

    Every property has a description, bounds and a default; ``additionalProperties`` is false so a
    misspelt key fails validation with its name.
    """
    hints = _hints(cls)
    props = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        props[f.name] = _schema_of(hints[f.name], dict(f.metadata), default)
    doc = (cls.__doc__ or "").strip().splitlines()
    out = {"type": "object", "additionalProperties": False, "properties": props}
    if doc:
        out["description"] = doc[0]
    return out

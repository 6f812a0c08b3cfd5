"""Options dataclasses: validation with errors that name the key, and schema generation."""

from dataclasses import dataclass

import jsonschema
import pytest

from scopeflow.options import OptionsError, from_dict, json_schema, opt, to_dict


@dataclass(frozen=True)
class Inner:
    """Inner options."""

    weight: float = opt(1.0, "a weight", minimum=0.0)


@dataclass(frozen=True)
class Demo:
    """Demo options."""

    n: int = opt(64, "grid size", units="px", minimum=8, maximum=4096)
    defocus: tuple[float, ...] = opt((-1.0, 0.0, 1.0), "defocus values", units="mm", min_items=2)
    likelihood: str = opt("poisson", "noise model", choices=("poisson", "gaussian"))
    dose: float | None = opt(None, "dose; null = noise-free", units="e/px", exclusive_minimum=0)
    inner: Inner = opt(Inner(), "nested")
    flag: bool = opt(False, "a switch")


def test_defaults_and_round_trip():
    o = from_dict(Demo, {"n": 128, "inner": {"weight": 2}})
    assert o.n == 128 and o.inner.weight == 2.0 and o.defocus == (-1.0, 0.0, 1.0)
    assert from_dict(Demo, to_dict(o)) == o


@pytest.mark.parametrize(
    "params, message",
    [
        ({"nn": 3}, r"demo: unknown key\(s\) \['nn'\]; allowed keys are"),
        ({"inner": {"wieght": 1}}, r"demo\.inner: unknown key\(s\) \['wieght'\]"),
        ({"n": 4}, r"demo\.n: 4 is below the minimum 8"),
        ({"n": 2.5}, r"demo\.n: expected an integer"),
        ({"dose": 0}, r"demo\.dose: 0\.0 must be greater than 0"),
        ({"dose": float("nan")}, r"demo\.dose: nan is not a finite number"),
        ({"likelihood": "l2"}, r"demo\.likelihood: 'l2' is not one of"),
        ({"defocus": [1.0]}, r"demo\.defocus: needs at least 2 items"),
        ({"flag": "yes"}, r"demo\.flag: expected true/false"),
    ],
)
def test_errors_name_the_key(params, message):
    with pytest.raises(OptionsError, match=message):
        from_dict(Demo, params, where="demo")


def test_json_schema_mirrors_dataclass():
    sch = json_schema(Demo)
    assert sch["additionalProperties"] is False
    assert sch["properties"]["n"]["minimum"] == 8
    assert sch["properties"]["n"]["description"] == "grid size [px]"
    assert sch["properties"]["inner"]["additionalProperties"] is False
    jsonschema.validate({"n": 64, "dose": None, "inner": {"weight": 0.5}}, sch)
    with pytest.raises(jsonschema.ValidationError, match="'nn' was unexpected"):
        jsonschema.validate({"nn": 64}, sch)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"defocus": [0.0]}, sch)

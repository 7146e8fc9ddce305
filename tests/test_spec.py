import pytest

from gradfuzz.spec import DEFAULT_DOMAIN, ArgSpec, SpecError, parse_spec


@pytest.mark.parametrize(
    "text, expected",
    [
        ("float64[]", ArgSpec("float64", (), *DEFAULT_DOMAIN)),
        ("float32[3,5]@-50..50", ArgSpec("float32", (3, 5), -50.0, 50.0)),
        ("bfloat16[2] @ 0..1e2", ArgSpec("bfloat16", (2,), 0.0, 100.0)),
        ("float16[0]@-1.5..2.5", ArgSpec("float16", (0,), -1.5, 2.5)),
    ],
)
def test_parses_the_documented_forms(text, expected):
    assert parse_spec(text) == expected


def test_integer_and_boolean_specs_pass_through():
    assert parse_spec("int32[2]@-3.5..7.2") == ArgSpec("int32", (2,), -3.0, 7.0)
    assert parse_spec("bool[]") == ArgSpec("bool", (), 0.0, 1.0)
    assert not parse_spec("int64[]").differentiable and parse_spec("float16[]").differentiable


def test_complex_specs_bound_both_components():
    spec = parse_spec("complex64[2]@-3..3")
    assert spec.is_complex and spec.differentiable and spec.info.name == "float32"
    assert str(spec.numpy_dtype) == "complex64" and spec.component.dtype == "float32"


def test_str_round_trips():
    spec = parse_spec("float32[3,5]@-50..50")
    assert parse_spec(str(spec)) == spec


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("float32", "Did you mean 'float32[]'"),
        ("float99[]", "unsupported dtype 'float99'"),
        ("int8[]", "unsupported dtype 'int8'"),
        ("float32[a]", "dimensions must be whole numbers"),
        ("float32[2]@5..1", "LO < HI"),
        ("float16[]@-1e6..1", "exceeds the largest finite float16"),
        ("float32[2]@-1..", "Malformed input spec"),
        ("", "Malformed input spec"),
    ],
)
def test_malformed_specs_say_what_is_wrong(text, fragment):
    with pytest.raises(SpecError) as error:
        parse_spec(text)
    assert fragment in str(error.value)

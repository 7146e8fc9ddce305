import pytest

from gradfuzz.spec import DEFAULT_DOMAIN, ArgSpec, SpecError, parse_spec, spec_variants


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


def test_symbolic_dimensions_take_typical_size_one_and_zero_together():
    from gradfuzz.spec import spec_variants

    variants = spec_variants(["float32[n,3]@-1..1", "float64[n]"])
    assert [tuple(s.shape for s in v) for v in variants] == [((3, 3), (3,)), ((1, 3), (1,)), ((0, 3), (0,))]
    assert all(v[0].dtype == "float32" and v[0].low == -1 and v[1].dtype == "float64" for v in variants)
    assert spec_variants(["float64[]"]) == [(parse_spec("float64[]"),)]


def test_star_dimensions_are_broadcastable_and_cover_the_edge_cases():
    import numpy as np

    from gradfuzz.spec import spec_variants

    variants = spec_variants(["float32[*]", "float32[*]"])
    shapes = [tuple(s.shape for s in v) for v in variants]
    assert 2 <= len(shapes) <= 4
    for pair in shapes:
        np.broadcast_shapes(*pair)  # raises if not broadcastable
    assert any(len(a) != len(b) for a, b in shapes), "ranks differ in some variant"
    assert any(0 in a + b for a, b in shapes), "a zero-size variant"
    assert shapes == [tuple(s.shape for s in v) for v in spec_variants(["float32[*]", "float32[*]"])], "deterministic"


@pytest.mark.parametrize("text", ["float32[3,n-1]", "float32[*,3]", "float32[2.5]"])
def test_malformed_dimensions_say_what_a_dimension_can_be(text):
    from gradfuzz.spec import spec_variants

    with pytest.raises(SpecError, match="dimension"):
        spec_variants([text])


def test_module_examples_run():
    import doctest

    import gradfuzz.spec

    assert doctest.testmod(gradfuzz.spec).failed == 0


@pytest.mark.parametrize("texts", [["float64[100000,100000]"], ["float32[n,100000,100000]"], ["float32[99999999999999999999]"]])
def test_a_huge_spec_is_a_clear_error_naming_the_limit(texts):
    """Before: accepted, then a numpy MemoryError (or worse) deep inside the first batch."""
    with pytest.raises(SpecError, match=r"more than gradfuzz checks \(at most 16,777,216.*smaller shape"):
        spec_variants(texts)
    assert spec_variants(["float32[4096,4096]"]) and spec_variants(["float32[0,100000000000]"])

import numpy as np
import pytest

from eotasks.errors import ExpressionError
from eotasks.raster import expression as ex
from eotasks.raster.indices import available_indices, compile_expressions
from eotasks.sensors import SENSORS

S2, L8 = SENSORS["sentinel2"], SENSORS["landsat8"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a-b-c", "((a - b) - c)"),
        ("-x**2", "(-(x ** 2.0))"),
        ("2^3^2", "(2.0 ** (3.0 ** 2.0))"),
        ("a+b*c", "(a + (b * c))"),
        ("(a+b)*c", "((a + b) * c)"),
        ("max(a, b, 1)", "max(a, b, 1.0)"),
        ("1e3/.5", "(1000.0 / 0.5)"),
    ],
)
def test_precedence(text, expected):
    assert ex.to_text(ex.parse(text)[0]) == expected


def test_commas_split_expressions_but_not_function_arguments():
    assert len(ex.parse("min(a,b), c, sqrt(d)")) == 3
    assert ex.split_expressions("min(a,b), c") == ["min(a,b)", "c"]


def test_evaluation_matches_numpy():
    a, b = np.array([1.0, 4.0, 9.0]), np.array([2.0, 0.5, 3.0])
    node = ex.parse("sqrt(a) * 2 - b ^ 2 / abs(-b) + max(a, b) + min(a, b)")[0]
    expected = np.sqrt(a) * 2 - b**2 / np.abs(-b) + np.maximum(a, b) + np.minimum(a, b)
    np.testing.assert_allclose(ex.evaluate(node, {"a": a, "b": b}), expected)


@pytest.mark.parametrize(
    "text, token",
    [
        ("__import__('os')", "'"),
        ("a +", None),
        ("(a", None),
        ("a b", "b"),
        ("foo(a)", "foo"),
        ("sqrt(a, b)", "sqrt"),
        ("a; b", ";"),
        ("1e999", "1e999"),
        ("a $ b", "$"),
    ],
)
def test_parse_errors_name_the_token(text, token):
    with pytest.raises(ExpressionError) as err:
        ex.parse(text)
    if token:
        assert err.value.token == token
        assert token in err.value.message


def test_hostile_input_is_bounded():
    with pytest.raises(ExpressionError, match="nested too deeply"):
        ex.parse("(" * 500 + "a" + ")" * 500)
    with pytest.raises(ExpressionError, match="nested too deeply"):
        ex.parse("-" * 500 + "a")
    with pytest.raises(ExpressionError, match="longer than"):
        ex.parse("a+" * 5000 + "a")
    # Huge exponents are evaluated in float64: +inf, never a hang or a Python big integer.
    node = ex.parse("9**9**9**9")[0]
    with np.errstate(all="ignore"):
        assert np.isinf(ex.evaluate(node, {}))


def test_dunder_names_are_unknown_names_not_code():
    with pytest.raises(ExpressionError, match="Unknown band or index '__import__'") as err:
        compile_expressions("__import__", S2)
    assert err.value.token == "__import__"
    with pytest.raises(ExpressionError, match=r"Unexpected character '\.'"):
        compile_expressions("B04.__class__", S2)


def test_band_names_generic_names_and_b4_for_b04():
    [p] = compile_expressions("b4 + RED + B04 + nir", S2)
    assert p.bands == ("B04", "B08")
    [p] = compile_expressions("NIR - RED", L8)
    assert p.bands == ("B5", "B4")


def test_aliases_resolve_per_sensor():
    [s2] = compile_expressions("NDVI", S2)
    [l8] = compile_expressions("ndvi", L8)
    assert ex.to_text(s2.ast) == "((B08 - B04) / (B08 + B04))"
    assert ex.to_text(l8.ast) == "((B5 - B4) / (B5 + B4))"


# The reference API's 15 aliases written out by hand from their textbook definitions, on one pixel
# of Sentinel-2 reflectances (A coastal, B blue, G green, R red, E red edge 1, N NIR, S1/S2 SWIR).
PIXEL = {"B01": 0.041, "B02": 0.052, "B03": 0.083, "B04": 0.061, "B05": 0.127, "B08": 0.362, "B11": 0.218, "B12": 0.131}
_A, _B, _G, _R, _E, _N, _S1, _S2 = (PIXEL[b] for b in ("B01", "B02", "B03", "B04", "B05", "B08", "B11", "B12"))
TEXTBOOK = {
    "NDVI": (_N - _R) / (_N + _R),
    "NDWI": (_G - _N) / (_G + _N),
    "NDSI": (_G - _S1) / (_G + _S1),
    "EVI": 2.5 * (_N - _R) / (_N + 6 * _R - 7.5 * _B + 1),
    "MSAVI": (2 * _N + 1 - ((2 * _N + 1) ** 2 - 8 * (_N - _R)) ** 0.5) / 2,
    "SIPI": (_N - _A) / (_N - _R),
    "NDMI": (_N - _S1) / (_N + _S1),
    "NDRE": (_N - _E) / (_N + _E),
    "RECI": _N / _E - 1,
    "SAVI": (1 + 0.5) * (_N - _R) / (_N + _R + 0.5),
    "ARVI": (_N - (2 * _R - _B)) / (_N + (2 * _R - _B)),
    "GCI": _N / _G - 1,
    "NBR": (_N - _S2) / (_N + _S2),
    "MSI": _S1 / _N,
    "CCCI": ((_N - _E) / (_N + _E)) / ((_N - _R) / (_N + _R)),
}


@pytest.mark.parametrize("name", sorted(TEXTBOOK))
def test_every_required_alias_computes_its_textbook_formula(name):
    [program] = compile_expressions(name, S2)
    bands = {b: np.array([PIXEL[b]]) for b in program.bands}
    with np.errstate(all="ignore"):
        value = ex.evaluate(program.ast, bands)
    assert float(np.asarray(value)[0]) == pytest.approx(TEXTBOOK[name], rel=1e-12), name


def test_alias_needing_a_missing_band_names_it():
    with pytest.raises(ExpressionError, match="RE1") as err:
        compile_expressions("NDRE", L8)
    assert err.value.token == "NDRE"


def test_spyndex_catalogue_indices_are_available_as_data():
    # BAI = 1 / ((0.1 - R)^2 + (0.06 - N)^2), from the Awesome Spectral Indices JSON.
    [p] = compile_expressions("BAI", S2)
    r, n = np.array([0.05]), np.array([0.3])
    np.testing.assert_allclose(ex.evaluate(p.ast, {"B04": r, "B08": n}), 1 / ((0.1 - r) ** 2 + (0.06 - n) ** 2))
    assert len(available_indices(S2)) > 200


def test_evi_against_its_textbook_formula():
    [p] = compile_expressions("EVI", S2)
    b, r, n = np.array([0.04]), np.array([0.05]), np.array([0.4])
    np.testing.assert_allclose(ex.evaluate(p.ast, {"B02": b, "B04": r, "B08": n}), 2.5 * (n - r) / (n + 6 * r - 7.5 * b + 1))

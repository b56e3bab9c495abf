"""Warning model specs: loading, validation messages, explanations, selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from rescity.monitor.specs import (
    KINDS,
    GradedSpec,
    SpecError,
    WarningLevel,
    load_catalogue,
    load_specs,
    parse_model,
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_default_catalogue_loads_and_every_model_explains_itself():
    cat = load_catalogue()
    assert len(cat.models) >= 15
    kinds = {m.kind for m in cat.models.values()}
    assert {"threshold", "rate", "step", "silence", "stuck", "drift", "composite", "cluster"} <= kinds
    for m in cat.models.values():
        text = m.explain()
        assert m.name in text and "level 1 = red" in text
        assert m.source, f"{m.name} documents no source or assumption"
        if isinstance(m, GradedSpec):
            assert any(p.name.startswith("thresholds.") and p.unit for p in m.parameters()), m.name
    assert [r.target for r in cat.inhibit if r.source == "main_break"]
    rows = cat.rows()
    assert {r["name"] for r in rows} == set(cat.models)


def test_levels_speak_the_national_convention():
    assert WarningLevel.RED == 1 and WarningLevel.BLUE == 4
    assert WarningLevel.from_severity(4) is WarningLevel.RED
    assert WarningLevel.RED.describe() == "level 1 (red)" and WarningLevel.RED.label_zh == "红色"


def test_thresholds_out_of_order_name_the_file_the_model_and_the_rule(tmp_path):
    p = write(tmp_path, "bad.yaml", """
models:
  - name: p_high
    kind: threshold
    select: {quantity: pressure}
    thresholds: {blue: 70, yellow: 60, red: 90}
""")
    with pytest.raises(SpecError) as e:
        load_specs(p)
    msg = str(e.value)
    assert str(p) in msg and "'p_high'" in msg
    assert "thresholds must increase blue < yellow < red" in msg and "yellow=60" in msg


def test_low_direction_needs_decreasing_thresholds(tmp_path):
    with pytest.raises(SpecError, match="thresholds must decrease blue > yellow .* for direction low"):
        parse_model({"name": "p_low", "kind": "threshold", "select": {}, "direction": "low",
                     "thresholds": {"blue": 10, "yellow": 14}}, "f.yaml")


@pytest.mark.parametrize("data, fragment", [
    ({"name": "x", "kind": "nope", "select": {}}, "unknown kind 'nope'; known kinds: "),
    ({"name": "x", "kind": "threshold", "select": {"quantity": "pressur"}, "thresholds": {"red": 1}},
     "select.quantity: unknown quantity 'pressur'"),
    ({"name": "x", "kind": "threshold", "select": {}, "thresholds": {}}, "give at least one of blue"),
    ({"name": "x", "kind": "threshold", "select": {}, "thresholds": {"red": 1}, "hysteresis": -1},
     "hysteresis: Input should be greater than or equal to 0"),
    ({"name": "X-1", "kind": "threshold", "select": {}, "thresholds": {"red": 1}}, "name: String should match"),
    ({"name": "x", "kind": "threshold", "select": {}, "thresholds": {"red": 1}, "colour": 1}, "colour: Extra inputs"),
    ({"name": "x", "kind": "rate", "select": {}, "direction": "fall", "thresholds": {"blue": -1}}, "magnitudes"),
    ({"name": "x", "kind": "composite", "select": {}, "thresholds": {"red": 1}}, "at least one require or raise"),
    ({"name": "x", "kind": "drift", "select": {}, "thresholds": {"red": 1}, "fast_tau_s": 10, "slow_tau_s": 5},
     "fast_tau_s (10.0) must be shorter"),
    ({"name": "x", "kind": "threshold", "select": {"quantity": "pressure"}, "unit": "kV", "thresholds": {"red": 1}},
     "unit: 'kV' converts to 'V', but this model grades 'm'"),
    ({"name": "x", "kind": "silence", "select": {}, "thresholds": {"red": 0}}, "must be > 0"),
])
def test_invalid_specs_say_what_was_expected(data, fragment):
    with pytest.raises(SpecError) as e:
        parse_model(data, "models.yaml")
    assert "models.yaml" in str(e.value) and fragment in str(e.value)


def test_thresholds_in_other_units_are_converted_to_si():
    m = parse_model({"name": "p", "kind": "threshold", "select": {"quantity": "pressure"}, "direction": "low",
                     "unit": "kPa", "thresholds": {"red": 98.0665}, "hysteresis": 9.80665})
    assert m.si_thresholds().red == pytest.approx(10.0)
    assert m.si_hysteresis() == pytest.approx(1.0)


def test_catalogue_cross_checks(tmp_path):
    a = write(tmp_path, "a.yaml", "models:\n  - {name: p, kind: threshold, select: {}, thresholds: {red: 1}}\n")
    b = write(tmp_path, "b.yaml", "models:\n  - {name: p, kind: threshold, select: {}, thresholds: {red: 2}}\n")
    with pytest.raises(SpecError, match=r"b\.yaml: model 'p' is already declared in .*a\.yaml"):
        load_catalogue([a, b])
    c = write(tmp_path, "c.yaml", "models:\n  - {name: mb, kind: cluster, of_model: nope, within_m: 100, thresholds: {red: 2}}\n")
    with pytest.raises(SpecError, match="of_model: unknown model 'nope'"):
        load_catalogue([c])
    d = write(tmp_path, "d.yaml", "inhibit:\n  - {source: p, target: q}\n")
    with pytest.raises(SpecError, match="target: unknown model 'q'"):
        load_catalogue([a, d])
    e = write(tmp_path, "e.yaml", "modles: []\n")
    with pytest.raises(SpecError, match="unknown top-level key"):
        load_catalogue([e])
    with pytest.raises(SpecError, match="no such warning model file"):
        load_catalogue([tmp_path / "missing.yaml"])


def test_kinds_are_registered():
    assert {"threshold", "rate", "step", "silence", "stuck", "drift", "composite", "cluster"} <= set(KINDS)


def test_selection_by_network_type_asset_kind_and_ids():
    from tests.monitor.test_engine import coupling_city

    city, reg = coupling_city()

    def sel(**kw):
        spec = parse_model({"name": "s", "kind": "threshold", "select": kw, "thresholds": {"red": 1}})
        return [reg.ids[i] for i in spec.select.resolve(reg, city)]

    assert sel(quantity="methane", network="drainage") == ["drainage.m_far.methane", "drainage.m_near.methane"]
    assert sel(network="bridge") == ["bridges.span.strain", "bridges.span.traffic"]  # by network type
    assert sel(quantity="methane", asset_kind="outfall") == ["drainage.m_far.methane"]
    assert sel(sensors=["water.n1.pressure", "nope"]) == ["water.n1.pressure"]
    assert len(sel(quantity="pressure", exclude=["water.n0.pressure"])) == 3
    with pytest.raises(SpecError, match="needs the city"):
        parse_model({"name": "s", "kind": "threshold", "select": {"asset_kind": "x"},
                     "thresholds": {"red": 1}}).select.resolve(reg, None)

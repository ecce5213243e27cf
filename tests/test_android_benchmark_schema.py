"""The benchmark JSON the Android app writes follows android_app/benchmark-result.schema.json.

The Kotlin test BenchmarkReportTest asserts that dev.sfmobile.core.bench.BenchmarkReport writes
exactly the committed examples below; this test validates those examples against the schema that
benchmarks/adb_bench.py reads them with, so the two sides cannot drift apart unnoticed.
"""

import copy
import json
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "android_app" / "benchmark-result.schema.json"
EXAMPLES = ROOT / "android_app" / "core" / "src" / "test" / "resources" / "bench"


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", ["benchmark-ok.json", "benchmark-failed.json"])
def test_kotlin_written_example_validates(name: str) -> None:
    report = json.loads((EXAMPLES / name).read_text())
    errors = sorted(_validator().iter_errors(report), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_examples_cover_both_outcomes() -> None:
    ok = json.loads((EXAMPLES / "benchmark-ok.json").read_text())
    failed = json.loads((EXAMPLES / "benchmark-failed.json").read_text())
    assert ok["status"] == "ok" and "error" not in ok
    assert len(ok["runs"]) == ok["settings"]["runs"]
    # cfg_batch 2: one UNet call per step
    assert len(ok["runs"][0]["unet_ms"]) == ok["settings"]["steps"]
    assert failed["status"] == "failed" and failed["error"] and failed["runs"] == []


def test_tile_decoder_settings_are_optional_and_take_the_apps_values() -> None:
    ok = json.loads((EXAMPLES / "benchmark-ok.json").read_text())
    assert ok["settings"]["tile_decoder"] == "auto"
    validator = _validator()
    for choice, decoder in [("auto", "decoder_tile"), ("on", "decoder_tile"), ("off", "decoder")]:
        report = copy.deepcopy(ok)
        report["settings"].update(tile_decoder=choice, decoder=decoder)
        assert not list(validator.iter_errors(report)), choice
    older = copy.deepcopy(ok)  # an app that predates the extra
    del older["settings"]["tile_decoder"]
    assert not list(validator.iter_errors(older))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("device"), "'device' is a required property"),
        (lambda r: r["backend"].update(name="qnn"), "is not one of"),
        (lambda r: r["runs"][0].update(total_ms=-1), "less than the minimum"),
        (lambda r: r.update(extra=1), "Additional properties"),
        (lambda r: r["settings"].update(tile_decoder="yes"), "is not one of"),
        (lambda r: r["settings"].update(tile_decoder=True), "is not one of"),
        (lambda r: r["settings"].update(decoder="encoder"), "is not one of"),
    ],
)
def test_schema_refuses_a_broken_report(mutate, message: str) -> None:
    report = copy.deepcopy(json.loads((EXAMPLES / "benchmark-ok.json").read_text()))
    mutate(report)
    errors = [e.message for e in _validator().iter_errors(report)]
    assert any(message in e for e in errors), errors

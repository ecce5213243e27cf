"""The export recipe: what each (format, precision, quantization) is called in a manifest, and
refusals that name the CLI option at fault."""

import numpy as np
import pytest

from sfmobile.errors import InputError
from sfmobile.export.recipe import LABELS, Recipe


@pytest.mark.parametrize(
    ("format", "precision", "quantization", "label"),
    [
        ("onnx", "fp32", None, "fp32"),
        ("tflite", "fp16", None, "fp16"),
        ("onnx", "int8", None, "int8-dynamic"),
        ("tflite", "int8", "static", "int8-static"),
        ("qnn", "w8a16", None, "w8a16"),
        ("qnn", "w8a8", None, "w8a8"),
        ("qnn", "fp16", None, "fp16"),
    ],
)
def test_label_of_each_recipe_the_cli_accepts(format, precision, quantization, label):
    recipe = Recipe.from_options(format, precision, quantization)
    assert recipe.label == label and label in LABELS
    assert recipe.calibrated == (label in ("int8-static", "w8a16", "w8a8"))


@pytest.mark.parametrize(
    ("format", "precision", "quantization", "message"),
    [
        ("coreml", "fp32", None, "--format 'coreml': expected one of onnx, tflite, qnn"),
        ("onnx", "int4", None, "--precision 'int4': expected one of fp32, fp16, int8"),
        ("qnn", "int8", None, "--precision 'int8': --format qnn takes w8a16, w8a8, fp16"),
        ("qnn", "w8a8", "static", "--quantization does not apply to --format qnn"),
        ("onnx", "fp16", "dynamic", "--quantization 'dynamic' applies to --precision int8 only"),
        ("tflite", "int8", "weights-only", "--quantization 'weights-only': --precision int8 needs"),
    ],
)
def test_bad_recipe_names_the_option(format, precision, quantization, message):
    with pytest.raises(InputError, match=f"^{message}"):
        Recipe.from_options(format, precision, quantization)


def test_int8_given_to_a_converter_needs_its_quantization_spelled_out():
    """Only the CLI's options default int8 to dynamic; a converter gets an explicit recipe."""
    with pytest.raises(InputError, match="--quantization None: --precision int8 needs"):
        Recipe("onnx", "int8", None)


def test_static_recipes_refuse_missing_calibration_naming_the_component():
    sample = [(np.zeros((1, 4, 8, 8), np.float32),)]
    Recipe("qnn", "w8a16").check_calibration("unet", sample)
    Recipe("onnx", "int8", "dynamic").check_calibration("unet", None)
    with pytest.raises(InputError, match="calibration: int8-static of decoder needs"):
        Recipe("tflite", "int8", "static").check_calibration("decoder", [])

"""The SoC table and the QNN plugin's loading (sfmobile.qnn)."""

from __future__ import annotations

import re
import sys

import pytest

import sfmobile.qnn.provider as provider
from sfmobile.errors import BundleError, InputError
from sfmobile.qnn.provider import check_context_sdk
from sfmobile.qnn.socs import SOCS, soc


def test_soc_lookup_is_case_insensitive_and_unknown_names_list_the_table():
    assert soc("sm8650") == SOCS["SM8650"]
    assert (SOCS["SM8650"].htp_arch, SOCS["SM8650"].soc_model) == (75, 57)
    with pytest.raises(InputError, match=r"SM8999.*SM8450, SM8475, SM8550, SM8650, SM8750"):
        soc("SM8999")


def test_missing_plugin_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(provider, "_registered", False)
    monkeypatch.setitem(sys.modules, "onnxruntime_qnn", None)  # import raises ImportError
    with pytest.raises(InputError, match=r"pip install 'sfmobile\[qnn\]'"):
        provider.qnn_devices()


def test_plugin_offers_an_htp_session_option_set():
    pytest.importorskip("onnxruntime_qnn")
    assert provider.qnn_devices()
    options = provider.htp_options(SOCS["SM8550"])
    assert options["htp_arch"] == "73" and options["soc_model"] == "43"


@pytest.mark.parametrize(
    ("compiled", "runtime", "accepted"),
    [
        ("v2.51.0.260929181845", "2.51.0", True),
        ("v2.51.0.260929181845", "2.51.3", True),
        ("2.51", "2.51.0", True),
        ("v2.50.0.1", "2.51.0", False),
        ("v3.51.0", "2.51.0", False),
        ("unknown", "2.51.0", False),
        ("v2.51.0\n", "2.51.0", True),
        ("2.5", "2.51.0", False),
    ],
)
def test_contexts_load_only_on_the_same_qnn_major_minor(compiled, runtime, accepted, tmp_path):
    if accepted:
        check_context_sdk(compiled, runtime, tmp_path)
    else:
        with pytest.raises(BundleError, match=f"compiled with QNN SDK {re.escape(compiled)}"):
            check_context_sdk(compiled, runtime, tmp_path)

"""The SoC table and the QNN plugin's loading (sfmobile.qnn)."""

from __future__ import annotations

import sys

import pytest

import sfmobile.qnn.provider as provider
from sfmobile.errors import InputError
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

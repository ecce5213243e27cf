"""quiet_third_party_logs: defaults for the converter stack's logging, never over the user's."""

import logging
import os

from sfmobile.quiet_logs import CHATTY_LOGGERS, NATIVE_LOG_DEFAULTS, quiet_third_party_logs


def test_sets_native_log_levels_only_where_the_user_has_not(monkeypatch):
    first, second = list(NATIVE_LOG_DEFAULTS)
    monkeypatch.delenv(first, raising=False)
    monkeypatch.setenv(second, "0")  # the user's choice
    quiet_third_party_logs()

    assert os.environ[first] == NATIVE_LOG_DEFAULTS[first]
    assert os.environ[second] == "0"


def test_raises_chatty_loggers_to_error_unless_already_set():
    own, untouched = (logging.getLogger(name) for name in CHATTY_LOGGERS)
    saved = own.level, untouched.level
    try:
        own.setLevel(logging.NOTSET)
        untouched.setLevel(logging.DEBUG)
        quiet_third_party_logs()
        assert own.level == logging.ERROR
        assert untouched.level == logging.DEBUG
    finally:
        own.setLevel(saved[0])
        untouched.setLevel(saved[1])

"""Keep third-party chatter out of sfmobile's output.

The TFLite converter stack logs info lines from C++ (TensorFlow/absl) on every conversion,
torchao notices optional kernels it cannot load, torch notes a pytree registration: noise that
buries the progress bars of `sfmobile export` and `sfmobile demo`. The native settings are read
when the libraries first load, so the CLI calls this first thing. Defaults only: a variable or
logger level the user has set is kept.
"""

from __future__ import annotations

import logging
import os

NATIVE_LOG_DEFAULTS = {"TF_CPP_MIN_LOG_LEVEL": "2", "GLOG_minloglevel": "2"}
CHATTY_LOGGERS = ("torchao", "torch.utils._pytree")


def quiet_third_party_logs() -> None:
    for name, value in NATIVE_LOG_DEFAULTS.items():
        os.environ.setdefault(name, value)
    for name in CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.ERROR)

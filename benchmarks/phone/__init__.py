"""The phone benchmark behind benchmarks/adb_bench.py: drive an Android phone over adb.

device.py (adb and device choice), probes.py (model, SoC, memory, storage, temperatures),
push.py (bundles, skipping files the phone already has), app_run.py (one session of the app's
benchmark mode), runner.py (every session, keeping what was measured when the run stops),
results.py (the app's result files and the host's records), perf_tools.py
(onnxruntime_perf_test / benchmark_model without the app), references.py (published numbers),
report.py (Markdown, JSON and a chart).
"""

"""The phone benchmark behind benchmarks/adb_bench.py: drive an Android phone over adb.

device.py (adb and device choice), probes.py (model, SoC, memory, storage, temperatures),
push.py (bundles, skipping files the phone already has), app_run.py (the app's benchmark mode),
perf_tools.py (onnxruntime_perf_test / benchmark_model without the app), report.py (Markdown,
JSON and a chart beside published reference points).
"""

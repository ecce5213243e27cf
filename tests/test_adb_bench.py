"""The phone benchmark (benchmarks/adb_bench.py) without a phone: an `adb` stand-in first on PATH
plays back transcripts written from real adb, am, getprop, dumpsys, df, pm and sha256sum output
(tests/adb_transcripts/) and keeps a small device filesystem for push, pull and sha256sum; it logs
every command, so the tests check what was (not) sent to the phone as well as what came back.
"""

import json
import re
import statistics
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` from this checkout

from test_bundle import write_bundle

from benchmarks.adb_bench import app
from benchmarks.phone.device import ListedDevice, choose_device, classify_failure, parse_devices
from benchmarks.phone.perf_tools import parse_benchmark_model, parse_ort_perf_test
from benchmarks.phone.report import chart_rows, summarize
from benchmarks.phone.results import validate_result
from sfmobile.errors import DeviceError

TRANSCRIPTS = Path(__file__).parent / "adb_transcripts"
SERIAL = "R5CW21ABCDE"
BUNDLE = "snapfusion-onnx-int8"
APP_FILES = "/sdcard/Android/data/dev.sfmobile.sample/files"
RESULTS = f"{APP_FILES}/benchmarks"


def response(stdout=None, stderr=None, rc=0, writes=None, disconnect=False, app_result=None):
    out = {"rc": rc, "disconnect": disconnect, "writes": writes or {}}
    if stdout is not None:
        out["stdout"] = stdout
    if stderr is not None:
        out["stderr"] = stderr
    if app_result is not None:
        out["app_result"] = {"dir": RESULTS, "file": app_result}
    return out


def app_writes(result_file, writes=None):
    """`am start` answered as the app does later: the result of the session the command named
    appears as benchmarks/<session_id>.json (and `writes`, other files, beside it)."""
    return response("am_start_ok.txt", writes=writes, app_result=result_file)


def as_written_for(session, result_file):
    """The transcript as the app writes it for the host's `session` record: its id and the
    cooldown the host passed."""
    result = fixture_result(result_file)
    result["session_id"] = session["session_id"]
    cooldown = session["cooldown"]
    result["cooldown"] = {
        "thermal_status_before": cooldown["status_before"],
        "thermal_status_after": cooldown["status_after"],
        "waited_s": cooldown["waited_s"],
    }
    return result


def phone_rules(
    devices="devices_one.txt",
    thermal=("thermalservice_0.txt",),
    df="df_sdcard.txt",
    packages="pm_list_packages.txt",
    am_start=(),
    extra=(),
):
    """A healthy S23 Ultra unless told otherwise; `extra` rules are tried first."""
    return [
        *extra,
        {"match": "devices -l", "responses": [response(devices)]},
        {"match": "shell getprop", "responses": [response("getprop_s23ultra.txt")]},
        {"match": "shell cat /proc/meminfo", "responses": [response("meminfo.txt")]},
        {"match": "shell df -k /sdcard", "responses": [response(df)]},
        {"match": "shell df -k /data", "responses": [response("df_data.txt")]},
        {"match": "shell dumpsys thermalservice", "responses": [response(t) for t in thermal]},
        {"match": "shell dumpsys battery", "responses": [response("battery.txt")]},
        {"match": "shell pm list packages dev.sfmobile.sample", "responses": [response(packages)]},
        {"match": "install -r *", "responses": [response("install_success.txt")]},
        {"match": "shell am start *", "responses": list(am_start) or [response("am_start_ok.txt")]},
    ]


class Phone:
    """The stand-in's scenario, device storage and command log for one test."""

    def __init__(self, root: Path, monkeypatch) -> None:
        self.root = root
        self.device = root / "device"
        self.scenario = root / "scenario.json"
        self.log = root / "adb.log"
        bin_dir = root / "bin"
        bin_dir.mkdir()
        wrapper = bin_dir / "adb"
        standin = TRANSCRIPTS / "adb_standin.py"
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{standin}" "$@"\n')
        wrapper.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
        monkeypatch.setenv("ADB_STANDIN_SCENARIO", str(self.scenario))
        monkeypatch.setenv("ADB_STANDIN_LOG", str(self.log))

    def run(self, rules, *args):
        """Run adb_bench.py ARGS against a phone answering by `rules` (fresh rule counters)."""
        self.scenario.write_text(json.dumps({"device_root": str(self.device), "rules": rules}))
        self.scenario.with_suffix(".state.json").unlink(missing_ok=True)
        self.log.unlink(missing_ok=True)
        return CliRunner().invoke(app, [str(a) for a in args])

    def commands(self):
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def pushed(self):
        return [Path(c[3]).name for c in self.commands() if c[2:3] == ["push"]]

    def shell_lines(self):
        return [" ".join(c[3:]) for c in self.commands() if c[2:3] == ["shell"]]

    def file(self, device_path: str) -> Path:
        return self.device / device_path.lstrip("/")


@pytest.fixture
def phone(tmp_path, monkeypatch):
    (tmp_path / "phone").mkdir()
    return Phone(tmp_path / "phone", monkeypatch)


@pytest.fixture
def bundle(tmp_path):
    return write_bundle(tmp_path / BUNDLE)


def app_args(bundle, out, *more):
    """`app` polling without pause; a bounded wait so a regression fails instead of hanging."""
    return ["app", "--bundle", bundle, "--out", out, "--poll", "0", "--timeout", "30", *more]


def error_line(result):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def fixture_result(name):
    return json.loads((TRANSCRIPTS / name).read_text())


# --- the happy path -----------------------------------------------------------------------


def test_app_run_pushes_the_bundle_runs_each_backend_and_reports_the_app_numbers(
    phone, bundle, tmp_path
):
    out = tmp_path / "out"
    thermal = [
        "thermalservice_0.txt",
        "thermalservice_0.txt",
        "thermalservice_2.txt",
        "thermalservice_1.txt",
        "thermalservice_0.txt",
    ]
    am_start = [
        app_writes("result_qnn_ok.json"),
        app_writes("result_cpu_ok.json"),
    ]
    result = phone.run(
        phone_rules(thermal=thermal, am_start=am_start),
        *app_args(bundle, out, "--backend", "ort-qnn", "--backend", "ort-cpu"),
    )
    assert result.exit_code == 0, result.output

    # The bundle is on the phone, byte for byte, manifest.json pushed last.
    local = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert sorted(phone.pushed()) == sorted(Path(n).name for n in local)
    assert phone.pushed()[-1] == "manifest.json"
    for name in local:
        on_phone = phone.file(f"{APP_FILES}/bundles/{BUNDLE}/{name}")
        assert on_phone.read_bytes() == (bundle / name).read_bytes()

    # The app was started with the session's extras, once per backend.
    starts = [line for line in phone.shell_lines() if line.startswith("am start")]
    assert len(starts) == 2
    assert (
        "-n dev.sfmobile.sample/dev.sfmobile.app.BenchmarkActivity --es bundle "
        f"{BUNDLE} --es backend ort-qnn --ei runs 5 --ei warmup 1 --ei steps 8"
    ) in starts[0]
    assert "--el seed 0" in starts[0] and "--es backend ort-cpu" in starts[1]
    assert all(start.count(" --es tile_decoder auto ") == 1 for start in starts), starts

    report = json.loads((out / "phone-report.json").read_text())
    assert report["error"] is None
    assert report["device"]["model"] == "SM-S918B" and report["device"]["soc"] == "SM8550"
    assert report["device"]["android_version"] == "14" and report["device"]["battery_c"] == 29.6
    assert report["device"]["memory_total_mb"] == pytest.approx(11583192 / 1024)
    assert report["device"]["storage_free_mb"] == pytest.approx(140087316 / 1024)
    first, second = report["sessions"]
    assert (first["status"], second["status"]) == ("ok", "ok")
    # Each session has its own id, passed to the app, its result file's name and inside it.
    assert first["session_id"] != second["session_id"]
    for session, start in zip((first, second), starts, strict=True):
        assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}-ort-(qnn|cpu)", session["session_id"])
        assert f"--es session_id {session['session_id']}" in start
        assert session["result_file"] == f"raw/{session['session_id']}.json"
        assert session["result"]["session_id"] == session["session_id"]
    assert first["result"] == as_written_for(first, "result_qnn_ok.json")
    assert json.loads((out / first["result_file"]).read_text()) == first["result"]
    # Cooled down before the second session: status 2 -> 1 -> 0, back to where it started.
    assert first["cooldown"]["status_before"] == 0
    assert second["cooldown"]["status_before"] == 2
    assert second["cooldown"]["status_after"] == 0 and second["cooldown"]["reached"]
    assert second["cooldown"]["battery_c"] == 29.6
    # The cooldown went to the app as extras, so its result file records it too.
    waited = second["cooldown"]["waited_s"]
    assert (
        "--ei cooldown_status_before 2 --ei cooldown_status_after 0 "
        f"--ef cooldown_waited_s {waited}"
    ) in starts[1]
    assert second["result"]["cooldown"] == {
        "thermal_status_before": 2,
        "thermal_status_after": 0,
        "waited_s": waited,
    }

    # The app's numbers flow into the Markdown table.
    qnn_runs = fixture_result("result_qnn_ok.json")["runs"]
    median_total = statistics.median(r["total_ms"] for r in qnn_runs)
    median_decoder = statistics.median(r["decoder_ms"] for r in qnn_runs)
    all_calls = [call for r in qnn_runs for call in r["unet_ms"]]
    assert first["summary"]["total_ms"] == median_total
    assert first["summary"]["decoder_ms"] == median_decoder
    assert first["summary"]["unet_call_ms"] == statistics.median(all_calls)
    assert first["summary"]["unet_total_ms"] == statistics.median(
        sum(r["unet_ms"]) for r in qnn_runs
    )
    assert first["summary"]["peak_memory_mb"] == max(r["peak_memory_mb"] for r in qnn_runs)
    markdown = (out / "phone-report.md").read_text()
    row = next(line for line in markdown.splitlines() if "| ort-qnn (htp) |" in line)
    assert f"| {median_total:,.0f} (" in row and f"| {median_decoder:,.0f} |" in row
    google = (
        f"against Google's 11.5 s (SD-1.4, 20 steps, S23 Ultra GPU) {11500 / median_total:.2f}x"
    )
    assert google in markdown
    assert (out / "phone-report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_second_run_pushes_only_files_whose_sha256_differs_on_the_phone(phone, bundle, tmp_path):
    def run_once():
        result = phone.run(
            phone_rules(am_start=[app_writes("result_qnn_ok.json")]),
            *app_args(bundle, tmp_path / "out"),
        )
        assert result.exit_code == 0, result.output
        return phone.pushed()

    assert len(run_once()) == len([p for p in bundle.rglob("*") if p.is_file()])
    assert run_once() == []  # everything already there
    phone.file(f"{APP_FILES}/bundles/{BUNDLE}/unet.onnx").write_bytes(b"cut short")
    assert run_once() == ["unet.onnx"]


@pytest.mark.parametrize("choice", ["on", "off"])
def test_tile_decoder_is_passed_to_the_app_as_an_extra(phone, bundle, tmp_path, choice):
    result = phone.run(
        phone_rules(am_start=[app_writes("result_qnn_ok.json")]),
        *app_args(bundle, tmp_path / "out", "--tile-decoder", choice),
    )
    assert result.exit_code == 0, result.output
    starts = [line for line in phone.shell_lines() if line.startswith("am start")]
    assert len(starts) == 1 and f" --es tile_decoder {choice}" in starts[0], starts
    assert starts[0].count("tile_decoder") == 1


def test_a_bad_tile_decoder_choice_is_refused_before_the_phone_is_asked(phone, bundle, tmp_path):
    result = phone.run(phone_rules(), *app_args(bundle, tmp_path / "out", "--tile-decoder", "yes"))
    assert "--tile-decoder yes: not one of auto, on, off" in error_line(result)
    assert not phone.log.exists() or phone.commands() == []  # adb never ran


# --- choosing the device ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ("devices_none.txt", "no device: `adb devices` lists none"),
        ("devices_unauthorized.txt", f"device {SERIAL} is unauthorized"),
        (
            "devices_two.txt",
            "several devices (R5CW21ABCDE (device), emulator-5554 (device)): "
            "choose one with --serial",
        ),
        ("devices_no_permissions.txt", "is in state 'no permissions', not ready"),
    ],
)
def test_device_problems_are_one_line_errors_and_nothing_is_sent(
    phone, bundle, tmp_path, devices, message
):
    result = phone.run(phone_rules(devices=devices), *app_args(bundle, tmp_path / "out"))
    assert message in error_line(result)
    assert all(c[:1] != ["-s"] for c in phone.commands())  # no command reached any phone


def test_serial_chooses_one_of_several_devices(phone):
    result = phone.run(phone_rules(devices="devices_two.txt"), "info", "--serial", SERIAL)
    assert result.exit_code == 0, result.output
    assert "samsung SM-S918B (SM8550), Android 14" in result.stdout
    assert all(c[:2] == ["-s", SERIAL] for c in phone.commands()[1:])


def test_a_serial_that_is_not_listed_is_named(phone):
    result = phone.run(phone_rules(), "info", "--serial", "XYZ")
    assert "--serial XYZ: no such device (adb devices lists: R5CW21ABCDE)" in error_line(result)


def test_devices_listing_parses_states_and_details():
    listed = parse_devices((TRANSCRIPTS / "devices_two.txt").read_text())
    assert listed[0] == ListedDevice(
        SERIAL,
        "device",
        {
            "usb": "1-1",
            "product": "dm3qxeea",
            "model": "SM_S918B",
            "device": "dm3q",
            "transport_id": "3",
        },
    )
    assert listed[1].serial == "emulator-5554" and listed[1].state == "device"
    with pytest.raises(DeviceError, match="several devices"):
        choose_device(listed, None)
    assert choose_device(listed, "emulator-5554").serial == "emulator-5554"


@pytest.mark.parametrize(
    ("output", "failure"),
    [  # adb 1.0.41's own words, from a real adb with the device gone
        ("error: device 'XYZ' not found\n", "gone"),
        ("adb: error: failed to get feature set: device 'XYZ' not found\n", "gone"),
        ("error: no devices/emulators found\n", "gone"),
        ("adb: device offline\n", "gone"),
        ("error: closed\n", "gone"),
        ("adb: error: failed to read copy response: EOF\n", "gone"),
        ((TRANSCRIPTS / "err_unauthorized.txt").read_text(), "unauthorized"),
        # the phone's own commands failing are not adb's business
        ("sha256sum: /sdcard/x/unet.onnx: No such file or directory\n", None),
        (
            "ls: /sdcard/Android/data/dev.sfmobile.sample/files/benchmarks: No such file or "
            "directory\n",
            None,
        ),
        ((TRANSCRIPTS / "push_no_space.txt").read_text(), None),
    ],
)
def test_adb_failures_are_told_apart_from_the_phone_commands_own(output, failure):
    assert classify_failure(output) == failure


# --- failures mid-run keep what was measured -----------------------------------------------


def test_a_disconnect_mid_run_keeps_and_reports_the_finished_sessions(phone, bundle, tmp_path):
    out = tmp_path / "out"
    am_start = [
        app_writes("result_qnn_ok.json"),
        response("am_start_ok.txt", disconnect=True),
    ]
    result = phone.run(
        phone_rules(am_start=am_start),
        *app_args(bundle, out, "--backend", "ort-qnn", "--backend", "ort-cpu"),
    )
    line = error_line(result)
    assert f"device {SERIAL} disconnected" in line and "1 completed session(s) kept" in line
    report = json.loads((out / "phone-report.json").read_text())
    assert [s["status"] for s in report["sessions"]] == ["ok", "disconnected"]
    first = report["sessions"][0]
    assert first["result"] == as_written_for(first, "result_qnn_ok.json")
    assert (out / first["result_file"]).is_file()
    assert "The run stopped early" in (out / "phone-report.md").read_text()


def test_ctrl_c_mid_run_still_writes_the_report_with_the_finished_sessions(
    phone, bundle, tmp_path, monkeypatch
):
    import benchmarks.phone.runner as runner

    started = []

    def start_then_interrupt(adb, spec):
        started.append(spec.backend)
        if len(started) == 2:
            raise KeyboardInterrupt
        real_start(adb, spec)

    real_start = runner.start_session
    monkeypatch.setattr(runner, "start_session", start_then_interrupt)
    out = tmp_path / "out"
    am_start = [app_writes("result_qnn_ok.json")]
    result = phone.run(
        phone_rules(am_start=am_start),
        *app_args(bundle, out, "--backend", "ort-qnn", "--backend", "ort-cpu"),
    )
    assert "interrupted (Ctrl-C); 1 completed session(s) kept" in error_line(result)
    report = json.loads((out / "phone-report.json").read_text())
    assert [s["status"] for s in report["sessions"]] == ["ok", "interrupted"]


def test_a_full_phone_is_refused_before_anything_is_pushed(phone, bundle, tmp_path):
    result = phone.run(phone_rules(df="df_sdcard_full.txt"), *app_args(bundle, tmp_path / "out"))
    line = error_line(result)
    assert f"device {SERIAL} storage full: bundle {BUNDLE} needs" in line and "40 MiB free" in line
    assert phone.pushed() == []
    assert not any(line.startswith("am start") for line in phone.shell_lines())


def test_a_phone_that_fills_up_during_the_push_is_a_clear_error(phone, bundle, tmp_path):
    full = {"match": "push *unet.onnx *", "responses": [response(stderr="push_no_space.txt", rc=1)]}
    result = phone.run(phone_rules(extra=[full]), *app_args(bundle, tmp_path / "out"))
    assert f"device {SERIAL} storage full while pushing" in error_line(result)
    # The phone never holds the manifest of a partly pushed bundle.
    assert "manifest.json" not in phone.pushed()
    assert (tmp_path / "out" / "phone-report.json").is_file()


def test_an_app_that_is_not_installed_is_named_with_the_fix(phone, bundle, tmp_path):
    result = phone.run(phone_rules(packages="text:"), *app_args(bundle, tmp_path / "out"))
    assert "app dev.sfmobile.sample is not installed on R5CW21ABCDE (pass --apk" in (
        error_line(result)
    )
    assert phone.pushed() == []


def test_an_apk_is_installed_before_the_app_is_looked_for(phone, bundle, tmp_path):
    apk = tmp_path / "app-release.apk"
    apk.write_bytes(b"PK\x03\x04")
    result = phone.run(
        phone_rules(am_start=[app_writes("result_qnn_ok.json")]),
        *app_args(bundle, tmp_path / "out", "--apk", apk),
    )
    assert result.exit_code == 0, result.output
    commands = [c[2:] for c in phone.commands()]
    install = commands.index(["install", "-r", str(apk)])
    assert install < commands.index(["shell", "pm list packages dev.sfmobile.sample"])


def test_a_bundle_the_app_refuses_ends_the_run_with_its_error_and_keeps_the_result(
    phone, bundle, tmp_path
):
    out = tmp_path / "out"
    result = phone.run(
        phone_rules(am_start=[app_writes("result_refused.json")]),
        *app_args(bundle, out, "--backend", "ort-qnn", "--backend", "ort-cpu"),
    )
    line = error_line(result)
    assert f"status failed for bundle {BUNDLE} on ort-qnn" in line
    assert "dynamic input shape" in line
    report = json.loads((out / "phone-report.json").read_text())
    assert [s["status"] for s in report["sessions"]] == ["failed"]  # ort-cpu never started
    assert report["sessions"][0]["summary"] is None


def test_no_result_within_the_timeout_is_a_clear_error(phone, bundle, tmp_path):
    result = phone.run(phone_rules(), *app_args(bundle, tmp_path / "out", "--timeout", "0.3"))
    assert "no result from the app within 0.3 s" in error_line(result)


# --- only this session's result file is taken -----------------------------------------------


def test_a_result_file_of_another_session_is_not_taken_as_ours(phone, bundle, tmp_path):
    # A session started by hand (or by another host) finishes while ours runs: its file sorts
    # first and is new, but its name and id are not ours.
    stray = {f"{RESULTS}/0-by-hand.json": "result_cpu_ok.json"}
    out = tmp_path / "out"
    result = phone.run(
        phone_rules(am_start=[app_writes("result_qnn_ok.json", writes=stray)]),
        *app_args(bundle, out),
    )
    assert result.exit_code == 0, result.output
    (session,) = json.loads((out / "phone-report.json").read_text())["sessions"]
    assert session["result"] == as_written_for(session, "result_qnn_ok.json")
    assert session["result"]["backend"]["name"] == "ort-qnn"
    assert not (out / "raw" / "0-by-hand.json").exists()


def test_only_another_session_finishing_is_a_timeout_not_a_result(phone, bundle, tmp_path):
    stray = response("am_start_ok.txt", writes={f"{RESULTS}/0-by-hand.json": "result_cpu_ok.json"})
    out = tmp_path / "out"
    result = phone.run(phone_rules(am_start=[stray]), *app_args(bundle, out, "--timeout", "0.3"))
    assert "no result from the app within 0.3 s" in error_line(result)
    (session,) = json.loads((out / "phone-report.json").read_text())["sessions"]
    assert session["status"] == "error" and session["result"] is None


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        # The app wrote our file name but another id inside: not this session's result.
        (
            "ours-ort-qnn.json",
            "result_cpu_ok.json",
            "holds session_id '20261201T032117Z-b7e204-ort-cpu', not this session's 'ours-ort-qnn'",
        ),
        # The app could not read the extras: its one line ends the run at once.
        (
            "ours-ort-qnn.error",
            "text:--ei runs must be >= 1, got 0\n",
            "the app refused session ours-ort-qnn's extras: --ei runs must be >= 1, got 0",
        ),
    ],
)
def test_what_the_app_leaves_under_our_session_id_is_checked(
    phone, bundle, tmp_path, monkeypatch, name, content, message
):
    import benchmarks.phone.runner as runner

    monkeypatch.setattr(runner, "new_session_id", lambda backend: f"ours-{backend}")
    result = phone.run(
        phone_rules(am_start=[response("am_start_ok.txt", writes={f"{RESULTS}/{name}": content})]),
        *app_args(bundle, tmp_path / "out"),
    )
    assert message in error_line(result)


def test_a_missing_benchmark_activity_is_reported_from_am(phone, bundle, tmp_path):
    am_start = [response("am_start_no_activity.txt")]
    result = phone.run(phone_rules(am_start=am_start), *app_args(bundle, tmp_path / "out"))
    assert (
        "Activity class {dev.sfmobile.sample/dev.sfmobile.app.BenchmarkActivity} does not "
        "exist" in error_line(result)
    )


def test_a_result_that_breaks_the_schema_is_named_with_its_field():
    broken = fixture_result("result_qnn_ok.json")
    del broken["runs"][2]["decoder_ms"]
    with pytest.raises(DeviceError, match=r"s\.json: not a valid benchmark result at runs/2"):
        validate_result(broken, "s.json")


# --- the runtimes' own tools ----------------------------------------------------------------


def test_ort_perf_test_summary_lines_are_parsed():
    new = parse_ort_perf_test((TRANSCRIPTS / "ort_perf_test_qnn_unet.txt").read_text(), "unet")
    assert new == {
        "avg_ms": 118.62431,
        "first_ms": 161.0,
        "init_ms": pytest.approx(9841.32),
        "p50_ms": pytest.approx(118.353),
        "peak_memory_mb": 1297362944 / 2**20,
    }
    old = parse_ort_perf_test((TRANSCRIPTS / "ort_perf_test_old_cpu.txt").read_text(), "unet")
    assert old["avg_ms"] == 1630.408 and old["first_ms"] is None
    with pytest.raises(
        DeviceError,
        match=r"unet: onnxruntime_perf_test printed no 'Average.*"
        "disable_cpu_ep_fallback is set",
    ):
        parse_ort_perf_test((TRANSCRIPTS / "ort_perf_test_failed.txt").read_text(), "unet")


def test_benchmark_model_summary_lines_are_parsed():
    gpu = parse_benchmark_model((TRANSCRIPTS / "benchmark_model_gpu.txt").read_text(), "unet")
    assert gpu == {
        "avg_ms": pytest.approx(286.934),
        "first_ms": pytest.approx(301.544),
        "init_ms": pytest.approx(6843.12),
        "p50_ms": None,
        "peak_memory_mb": 1711.03,
    }
    old = parse_benchmark_model((TRANSCRIPTS / "benchmark_model_cpu_old.txt").read_text(), "dec")
    assert old["avg_ms"] == pytest.approx(1815.62) and old["peak_memory_mb"] == 398.125
    with pytest.raises(DeviceError, match="dec: benchmark_model printed no 'Inference timings"):
        parse_benchmark_model("ERROR: Failed to allocate tensors!\n", "dec")


def test_tool_mode_pushes_the_tool_and_times_each_component(phone, bundle, tmp_path):
    binary = tmp_path / "tools" / "onnxruntime_perf_test"
    binary.parent.mkdir()
    binary.write_bytes(b"\x7fELF")
    library = tmp_path / "tools" / "libonnxruntime.so"
    library.write_bytes(b"\x7fELF")
    timing = [
        {
            "match": "shell cd /data/local/tmp/sfmobile-bench && * ./onnxruntime_perf_test -e qnn "
            "-i backend_type|htp -m times -r 50 -I -s *unet.onnx",
            "responses": [response("ort_perf_test_qnn_unet.txt")],
        },
        {
            "match": "shell cd /data/local/tmp/sfmobile-bench && * ./onnxruntime_perf_test *",
            "responses": [response("ort_perf_test_qnn_small.txt")],
        },
    ]
    out = tmp_path / "out"
    result = phone.run(
        phone_rules(extra=timing),
        "tool",
        "--binary",
        binary,
        "--lib",
        library,
        "--bundle",
        bundle,
        "--accelerator",
        "qnn",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    assert phone.pushed()[:2] == ["onnxruntime_perf_test", "libonnxruntime.so"]
    assert phone.file(f"/data/local/tmp/sfmobile-bench/bundles/{BUNDLE}/unet.onnx").is_file()
    report = json.loads((out / "phone-report.json").read_text())
    times = {t["component"]: t["avg_ms"] for t in report["tool_results"]}
    assert times == {"text_encoder": 7.83012, "unet": 118.62431, "decoder": 7.83012}
    assert "| unet | unet.onnx | onnxruntime_perf_test | qnn | 118.6 |" in (
        (out / "phone-report.md").read_text()
    )


def test_tool_mode_refuses_a_bundle_of_the_other_format(phone, bundle, tmp_path):
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF")
    result = phone.run(
        phone_rules(),
        "tool",
        "--binary",
        binary,
        "--bundle",
        bundle,
        "--accelerator",
        "gpu",
        "--out",
        tmp_path / "out",
    )
    assert "holds onnx models; benchmark_model runs tflite models" in error_line(result)


# --- the report from result files ------------------------------------------------------------


def synthetic_sd15(steps):
    """A schema-valid sd15 session: 2 UNet calls per step (CFG), numbers chosen by hand."""
    result = fixture_result("result_qnn_ok.json")
    result["session_id"] = f"sd15-{steps}"
    result["bundle"]["name"] = "sd15-onnx-int8"
    result["settings"]["steps"] = steps
    result["runs"] = [
        {
            "text_encoder_ms": 9.0,
            "unet_ms": [150.0] * (2 * steps),
            "decoder_ms": 210.0,
            "total_ms": 9.0 + 300.0 * steps + 210.0 + extra,
        }
        for extra in (5.0, 7.0, 6.0)
    ]
    return validate_result(result, f"sd15-{steps}")


def test_report_from_result_files_tabulates_charts_and_compares_with_sd15(tmp_path):
    files = []
    tiled = fixture_result("result_qnn_ok.json")
    tiled["settings"].update(tile_decoder="auto", decoder="decoder_tile")
    for name, data in [
        ("qnn.json", tiled),
        ("sd15-20.json", synthetic_sd15(20)),
        ("sd15-50.json", synthetic_sd15(50)),
    ]:
        files.append(tmp_path / name)
        files[-1].write_text(json.dumps(data))
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", *map(str, files), "--out", str(out)])
    assert result.exit_code == 0, result.output
    markdown = (out / "phone-report.md").read_text()
    sd15_20_total = 9.0 + 300.0 * 20 + 210.0 + 6.0  # median of the three runs
    row = next(
        line for line in markdown.splitlines() if "| sd15-onnx-int8 |" in line and "| 20 |" in line
    )
    assert f"| 150.0 | 40 | {150.0 * 40:,.0f} | 210 | {sd15_20_total:,.0f} (" in row
    snap_row = next(line for line in markdown.splitlines() if "| snapfusion" in line)
    assert " (tiles) |" in snap_row and "(tiles)" not in row  # the decoder the app loaded
    snap_total = statistics.median(
        r["total_ms"] for r in fixture_result("result_qnn_ok.json")["runs"]
    )
    assert (
        f"against sd15-onnx-int8 · ort-qnn · 20 steps on this phone: "
        f"{sd15_20_total / snap_total:.2f}x"
    ) in markdown
    assert "SnapFusion (arXiv 2306.00980)" in markdown and "| 76.7 |" in markdown
    assert (out / "phone-report.png").stat().st_size > 10_000


def test_chart_bars_add_up_to_each_total_and_draw_per_call_references_as_8_step_runs():
    result = synthetic_sd15(20)
    report = {
        "sessions": [
            {"bundle": "sd15", "backend": "ort-qnn", "steps": 20, "summary": summarize(result)}
        ]
    }
    rows = dict(chart_rows(report))
    assert sum(rows["sd15 · ort-qnn · 20 steps (measured)"].values()) == pytest.approx(
        summarize(result)["total_ms"] / 1000
    )
    assert sum(rows["AI Hub SD-1.5 w8a16, S24 (implied, 8 steps)"].values()) == pytest.approx(
        (2.3 + 16 * 76.7 + 203) / 1000
    )
    assert rows["Google, SD-1.4, S23 Ultra GPU, 20 steps"] == {"whole run": 11.5}

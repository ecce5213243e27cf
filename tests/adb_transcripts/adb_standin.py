"""A stand-in for `adb` that plays back recorded transcripts, for tests without a phone.

Put first on PATH (as `adb`, through a wrapper script). Reads the scenario named by
$ADB_STANDIN_SCENARIO (JSON) and appends every command it receives, as a JSON list, to
$ADB_STANDIN_LOG. Scenario:

    {"device_root": "/tmp/x/device",          # the phone's storage: /sdcard/a -> ROOT/sdcard/a
     "rules": [{"match": "shell dumpsys thermalservice",   # fnmatch on the command line
                "responses": [{"stdout": "thermal_0.txt"}, {"stdout": "thermal_2.txt"}]}]}

The command line matched is adb's arguments after `-s SERIAL`, with a `shell` command split as
the phone's shell would split it and joined by single spaces. Each rule answers with its
responses in turn (the last one repeats). A response has stdout / stderr (a transcript file in
this folder, or text with "text:" in front), rc, `writes` {device path: transcript file} (what
the app writes when started), `app_result` {"dir": device folder, "file": transcript}: what the
app writes for the session the command started, as BenchmarkReport does (the result as
DIR/<session_id>.json, its session_id set to the `--es session_id` extra and its cooldown to the
cooldown extras, when the command has them), and `disconnect` (from then on every command fails
as adb does for a device that went away). Commands no rule matches: push, pull,
`shell sha256sum`, `shell ls`, `shell chmod` act on device_root like a phone; anything else
fails loudly (exit 99).
"""

import fnmatch
import hashlib
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    scenario_path = Path(os.environ["ADB_STANDIN_SCENARIO"])
    scenario = json.loads(scenario_path.read_text())
    state_path = scenario_path.with_suffix(".state.json")
    state = json.loads(state_path.read_text()) if state_path.exists() else {"counts": {}}
    argv = sys.argv[1:]
    with open(os.environ["ADB_STANDIN_LOG"], "a") as log:
        log.write(json.dumps(argv) + "\n")
    serial = None
    if argv[:1] == ["-s"]:
        serial, argv = argv[1], argv[2:]
    if serial is not None and state.get("disconnected"):  # as adb 1.0.41 answers
        prefix = "adb: error: failed to get feature set: " if argv[0] in ("push", "pull") else ""
        sys.stderr.write(f"{prefix or 'error: '}device '{serial}' not found\n")
        return 1
    line = command_line(argv)
    for index, rule in enumerate(scenario["rules"]):
        if fnmatch.fnmatchcase(line, rule["match"]):
            count = state["counts"].get(str(index), 0)
            state["counts"][str(index)] = count + 1
            response = rule["responses"][min(count, len(rule["responses"]) - 1)]
            state["disconnected"] = state.get("disconnected") or response.get("disconnect", False)
            state_path.write_text(json.dumps(state))
            return respond(response, Path(scenario["device_root"]), intent_extras(argv))
    return device_fs(argv, Path(scenario["device_root"]))


def command_line(argv: list[str]) -> str:
    if argv[:1] == ["shell"]:
        return " ".join(["shell", *shlex.split(" ".join(argv[1:]))])
    return " ".join(argv)


def intent_extras(argv: list[str]) -> dict[str, str]:
    """The `--es/--ei/--ef/--el KEY VALUE` extras of an `am start` shell command, by key."""
    words = shlex.split(" ".join(argv[1:])) if argv[:1] == ["shell"] else []
    return {
        words[i + 1]: words[i + 2]
        for i in range(len(words) - 2)
        if words[i] in ("--es", "--ei", "--ef", "--el")
    }


def app_result(spec: dict, extras: dict[str, str], root: Path) -> None:
    """The app's result file for the session `extras` started (see the module docstring)."""
    result = json.loads(transcript(spec["file"]))
    session_id = extras.get("session_id", result["session_id"])
    result["session_id"] = session_id
    if "cooldown_status_before" in extras:
        result["cooldown"] = {
            "thermal_status_before": int(extras["cooldown_status_before"]),
            "thermal_status_after": int(extras["cooldown_status_after"]),
            "waited_s": float(extras["cooldown_waited_s"]),
        }
    target = on_device(root, f"{spec['dir']}/{session_id}.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n")


def transcript(value: str) -> str:
    return value[5:] if value.startswith("text:") else (HERE / value).read_text()


def respond(response: dict, root: Path, extras: dict[str, str]) -> int:
    for device_path, source in response.get("writes", {}).items():
        target = on_device(root, device_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(transcript(source))
    if "app_result" in response:
        app_result(response["app_result"], extras, root)
    sys.stdout.write(transcript(response["stdout"]) if "stdout" in response else "")
    sys.stderr.write(transcript(response["stderr"]) if "stderr" in response else "")
    return response.get("rc", 0)


def on_device(root: Path, device_path: str) -> Path:
    return root / device_path.lstrip("/")


def device_fs(argv: list[str], root: Path) -> int:
    """push, pull, sha256sum, ls and chmod as a phone answers them (toybox formats)."""
    if argv[:1] == ["push"] and len(argv) == 3:
        local, remote = Path(argv[1]), argv[2]
        target = on_device(root, remote)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, target)
        size = local.stat().st_size
        print(f"{local}: 1 file pushed, 0 skipped. 41.3 MB/s ({size} bytes in 0.001s)")
        return 0
    if argv[:1] == ["pull"] and len(argv) == 3:
        source = on_device(root, argv[1])
        if not source.is_file():
            sys.stderr.write(
                f"adb: error: failed to stat remote object '{argv[1]}': No such file or directory\n"
            )
            return 1
        shutil.copyfile(source, argv[2])
        size = source.stat().st_size
        print(f"{argv[1]}: 1 file pulled, 0 skipped. 2.1 MB/s ({size} bytes in 0.001s)")
        return 0
    words = shlex.split(" ".join(argv[1:])) if argv[:1] == ["shell"] else []
    if words[:1] == ["sha256sum"]:
        missing = False
        for path in words[1:]:
            file = on_device(root, path)
            if file.is_file():
                print(f"{hashlib.sha256(file.read_bytes()).hexdigest()}  {path}")
            else:
                sys.stderr.write(f"sha256sum: {path}: No such file or directory\n")
                missing = True
        return 1 if missing else 0
    if words[:1] == ["ls"] and len(words) == 2:
        folder = on_device(root, words[1])
        if not folder.is_dir():
            sys.stderr.write(f"ls: {words[1]}: No such file or directory\n")
            return 1
        for name in sorted(p.name for p in folder.iterdir()):
            print(name)
        return 0
    if words[:1] == ["chmod"]:
        return 0
    sys.stderr.write(f"adb stand-in: no transcript for: adb {' '.join(argv)}\n")
    return 99


if __name__ == "__main__":
    sys.exit(main())

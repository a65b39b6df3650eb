"""What every command shares: --version, --quiet, --device auto, no runtime import to parse."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

COMMANDS = {
    "qtseg-train": ("qtseg.cli.train", ["--data", "d"]),
    "qtseg-predict": ("qtseg.cli.predict", []),
    "qtseg-val": ("qtseg.cli.val", []),
    "qtseg-bench": ("qtseg.bench.cli", []),
    "qtseg-export": ("qtseg.export.cli", ["--target", "onnx"]),
    "qtseg-calib": ("qtseg.calibration.cli", ["build", "--data", "d", "--out", "o"]),
}
RUNS_MODELS = ("qtseg-train", "qtseg-predict", "qtseg-val", "qtseg-bench")


@pytest.mark.parametrize("prog", COMMANDS)
def test_version_quiet_and_device_default(prog, capsys):
    module, required = COMMANDS[prog]
    parser = importlib.import_module(module).build_parser()
    args = parser.parse_args([*required, "--quiet"])
    assert args.quiet is True
    if prog in RUNS_MODELS:
        assert args.device == "auto"
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"{prog} 0.1.0"


@pytest.mark.parametrize("prog", COMMANDS)
def test_parsing_imports_no_runtime(prog):
    module, required = COMMANDS[prog]
    code = (
        "import sys\n"
        f"from {module} import build_parser\n"
        f"build_parser().parse_args({required!r})\n"
        "print(sorted(m for m in ('torch', 'onnxruntime', 'openvino', 'tensorrt_rtx',"
        " 'matplotlib') if m in sys.modules))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"

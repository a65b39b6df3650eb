"""``qtseg-bench`` argument handling: usage errors exit 2, parsing imports no runtime."""

from __future__ import annotations

import subprocess
import sys

import pytest

from qtseg.bench.cli import main


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--device", "tpu"], "--device must be cpu or cuda"),
        (["--iters", "0"], "--iters"),
        (["--threads", "-1"], "--threads"),
        (["--batch", "0,8"], "--batch"),
        (["--data", "/no/such/folder"], "folder not found"),
        (["--checkpoint", "/no/such/ckpt"], "folder not found"),
        (["--current", "x.json"], "--current needs --compare"),
        (["/no/such/exports"], "not found"),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "rep"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "rep").exists()


def test_empty_export_dir_says_what_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["--quiet"]) == 2
    assert "qtseg-export --target all" in capsys.readouterr().err


def test_malformed_batch_list_is_an_argparse_error():
    with pytest.raises(SystemExit) as exc:
        main(["--batch", "1,x"])
    assert exc.value.code == 2


def test_parsing_imports_no_runtime():
    code = (
        "import sys\n"
        "from qtseg.bench.cli import build_parser\n"
        "build_parser().parse_args(['exports', '--batch', '1,8', '--device', 'cuda'])\n"
        "names = ('torch', 'onnxruntime', 'openvino', 'tensorrt', 'tensorrt_rtx', 'matplotlib')\n"
        "heavy = [m for m in names"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""The README's Python API block runs as written and does what its comments say."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def _api_block() -> str:
    text = README.read_text()
    section = text[text.index("## Python API"):]
    match = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert match, "no python block under '## Python API'"
    return match.group(1)


def test_readme_python_block_runs_as_written():
    namespace: dict = {}
    exec(compile(_api_block(), str(README), "exec"), namespace)  # noqa: S102 - our own README
    image, spec = namespace["image"], namespace["spec"]
    logits = namespace["logits"]
    mask = namespace["mask"]
    assert tuple(logits.shape) == (1, spec.num_classes, *spec.input_size)
    assert mask.shape == (1, *image.shape[:2]) and mask.dtype == np.uint8
    assert 0.0 < float((mask > 0).mean()) < 1.0  # a real polyp, not an empty mask

"""``qtseg-predict`` writes exactly the masks ``qtseg_infer --output`` writes for one artifact.

Both run the OpenVINO artifact one image at a time on the bundled samples; the
PNG pixels must be identical (binary masks, 0/255).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from qtseg.cli.predict import main as predict
from tests.cpp.helpers import cli_args, run_checked

pytestmark = [pytest.mark.slow, pytest.mark.openvino]


def test_predict_masks_equal_qtseg_infer(cpp_build, ov_artifact, sample_jpegs, tmp_path):
    cpp_dir = tmp_path / "cpp"
    cpp_dir.mkdir()
    for image in sample_jpegs:
        run_checked(
            [cpp_build.cli, "--artifact", ov_artifact.path,
             *cli_args([image], [cpp_dir / f"{image.stem}.png"])],
            what="qtseg_infer",
        )
    out = tmp_path / "py"
    source = sample_jpegs[0].parent.parent  # the samples folder: images/ + masks/
    assert predict([str(source), "--artifact", str(ov_artifact.path), "--out", str(out),
                    "--batch", "1", "--no-overlay", "--quiet"]) == 0
    python = sorted((out / "masks").glob("*.png"))
    assert [p.name for p in python] == [f"{i.stem}.png" for i in sample_jpegs]
    for mask in python:
        ours = np.asarray(Image.open(mask))
        theirs = np.asarray(Image.open(cpp_dir / mask.name))
        assert ours.dtype == theirs.dtype == np.uint8 and ours.shape == theirs.shape
        assert np.array_equal(ours, theirs), f"{mask.name}: {int((ours != theirs).sum())} pixels differ"

"""The stable Python API on the bundled checkpoint and samples."""

import numpy as np
import pytest
import torch

import qtseg
from qtseg.data.folder import discover
from qtseg.evaluation import torch_predictor
from qtseg.imageio import read_image
from qtseg.validation import evaluate


def test_load_preprocess_forward_postprocess(samples_dir):
    model, spec = qtseg.load()
    assert not model.training and model.model_name == "qtseg-v2"
    path = sorted((samples_dir / "images").glob("*.jpg"))[0]
    image = read_image(path)
    x = spec.preprocess(image)
    assert np.array_equal(x, spec.preprocess(path))
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
    assert logits.shape == (1, 2, *spec.input_size)
    mask = spec.postprocess(logits, image.shape[:2])
    assert mask.shape == (1, *image.shape[:2]) and mask.dtype == np.uint8


@pytest.mark.slow
def test_bundled_model_segments_the_bundled_samples():
    """The bundled checkpoint must still segment real polyps (measured: mean Dice 0.899)."""
    model, spec = qtseg.load()
    result = evaluate(torch_predictor(model), spec, discover(qtseg.SAMPLES_DIR))
    assert len(result.names) == 12
    assert result.mean.dice > 0.85, result.mean
    assert min(s.dice for s in result.per_image) > 0.5

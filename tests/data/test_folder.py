import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from qtseg.data.augment import AugmentConfig, augment_batch
from qtseg.data.folder import DatasetError, discover, load_pair, split_samples
from qtseg.imageio import ImageReadError


def test_split_file_is_used_exactly(kvasir_mini):
    samples = discover(kvasir_mini)
    assert len(samples) == 48
    splits = split_samples(samples, split_file=kvasir_mini / "splits.json")
    assert [len(splits[k]) for k in ("train", "val", "test")] == [24, 16, 8]
    names = [{s.name for s in splits[k]} for k in ("train", "val", "test")]
    assert not names[0] & names[1] and not names[0] & names[2] and not names[1] & names[2]


def test_full_kvasir_split_file(kvasir_full, kvasir_mini):
    """The full set's split is 720/90/90, and the mini set keeps each image in its full-set split."""
    splits = split_samples(discover(kvasir_full), split_file=kvasir_full / "splits.json")
    assert [len(splits[k]) for k in ("train", "val", "test")] == [720, 90, 90]
    assert not {s.name for s in splits["train"]} & {s.name for s in splits["test"]}
    mini = json.loads((kvasir_mini / "splits.json").read_text())
    for split in ("train", "val", "test"):
        assert {Path(n).stem for n in mini[split]} <= {s.name for s in splits[split]}


def test_seeded_split_is_deterministic(kvasir_mini):
    samples = discover(kvasir_mini)
    a = split_samples(samples, seed=7)
    b = split_samples(list(reversed(samples)), seed=7)
    c = split_samples(samples, seed=8)
    assert [s.name for s in a["val"]] == [s.name for s in b["val"]]
    assert [s.name for s in a["val"]] != [s.name for s in c["val"]]
    assert sum(len(v) for v in a.values()) == 48


def test_empty_and_incomplete_folders(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        discover(tmp_path / "nope")
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        discover(tmp_path)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    with pytest.raises(DatasetError, match="no masks"):
        discover(tmp_path)
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "masks" / "b.png")
    with pytest.raises(DatasetError, match="have no mask"):
        discover(tmp_path)


def test_mismatched_image_and_mask_sizes(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(tmp_path / "masks" / "a.png")
    with pytest.raises(ImageReadError, match="is 8x9 but image"):
        load_pair(discover(tmp_path)[0])


def test_jpeg_masks_are_binary(kvasir_mini, tmp_path):
    """A Kvasir-style JPEG mask (compression ringing around the edge) still reads as 0/1."""
    sample = discover(kvasir_mini)[0]
    _, truth = load_pair(sample)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    shutil.copy(sample.image, tmp_path / "images" / sample.image.name)
    Image.fromarray(truth * 255).save(tmp_path / "masks" / f"{sample.name}.jpg", quality=75)
    raw = np.asarray(Image.open(tmp_path / "masks" / f"{sample.name}.jpg"))
    assert len(np.unique(raw)) > 2  # the JPEG really is not binary on disk
    image, mask = load_pair(discover(tmp_path)[0])
    assert image.shape[:2] == mask.shape and set(np.unique(mask)) == {0, 1}
    assert (mask != truth).mean() < 0.01


def test_full_kvasir_jpeg_masks_are_binary(kvasir_full):
    image, mask = load_pair(discover(kvasir_full)[0])
    assert image.shape[:2] == mask.shape and set(np.unique(mask)) <= {0, 1}


def test_augmentation_keeps_labels_integral_and_is_seeded():
    images = torch.rand(4, 3, 64, 64)
    masks = (torch.rand(4, 64, 64) > 0.5).to(torch.uint8)
    a = augment_batch(images, masks, AugmentConfig(), torch.Generator().manual_seed(1))
    b = augment_batch(images, masks, AugmentConfig(), torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].shape == images.shape and a[1].dtype == torch.uint8
    assert set(a[1].unique().tolist()) <= {0, 1}
    assert 0.0 <= float(a[0].min()) and float(a[0].max()) <= 1.0


def test_identity_augmentation_is_identity():
    off = AugmentConfig(hflip=0, vflip=0, rot90=0, rotate_deg=0, scale=(1, 1), translate=0,
                        brightness=0, contrast=0, saturation=0, gamma=0)
    images = torch.rand(2, 3, 32, 32)
    masks = (torch.rand(2, 32, 32) > 0.5).to(torch.uint8)
    out_i, out_m = augment_batch(images, masks, off, torch.Generator().manual_seed(0))
    assert torch.allclose(out_i, images, atol=1e-5) and torch.equal(out_m, masks)

import numpy as np
from PIL import Image

from qtseg.cli.predict import main


def test_predict_writes_masks_overlays_and_dice(tmp_path, samples_dir, tiny_checkpoint, capsys):
    out = tmp_path / "pred"
    assert main([str(samples_dir), "--checkpoint", str(tiny_checkpoint), "--out", str(out)]) == 0
    names = sorted(p.stem for p in (samples_dir / "images").glob("*.jpg"))
    masks = sorted((out / "masks").glob("*.png"))
    assert [p.stem for p in masks] == names
    first = np.asarray(Image.open(masks[0]))
    src = Image.open(samples_dir / "images" / f"{names[0]}.jpg")
    assert first.shape == (src.height, src.width) and set(np.unique(first)) <= {0, 255}
    assert len(list((out / "overlays").glob("*.jpg"))) == len(names)
    printed = capsys.readouterr().out
    assert "mean dice" in printed and printed.count("dice") == len(names) + 1


def test_single_image_and_bad_inputs(tmp_path, samples_dir, tiny_checkpoint, capsys):
    img = sorted((samples_dir / "images").glob("*.jpg"))[0]
    assert main([str(img), "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "one")]) == 0
    assert len(list((tmp_path / "one" / "masks").glob("*.png"))) == 1
    assert main([str(tmp_path / "none"), "--checkpoint", str(tiny_checkpoint)]) == 2
    assert "not found" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.jpg").write_bytes(img.read_bytes()[:500])
    assert main([str(broken), "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "b")]) == 2
    assert "cannot decode image" in capsys.readouterr().err

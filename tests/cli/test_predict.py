"""``qtseg-predict`` end to end: checkpoint and exported artifacts, batches, failures, names."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from qtseg.backends import open_backend
from qtseg.cli.predict import main
from qtseg.evaluation import infer_logits, masks_of
from qtseg.imageio import read_image
from qtseg.manifest import read_manifest_file

from .conftest import labelled_folder


def _masks(folder):
    return {p.stem: np.asarray(Image.open(p)) for p in sorted((folder / "masks").glob("*"))}


def _expected(artifact, images):
    """Masks by the bench/val path: open_backend, infer_logits, postprocess at original size."""
    spec = read_manifest_file(artifact).preprocess
    decoded = [read_image(p) for p in images]
    with open_backend(artifact) as be:
        logits = infer_logits(be, spec.preprocess(decoded))
    return {p.stem: m for p, m in zip(images, masks_of(logits, [d.shape[:2] for d in decoded], spec))}


def test_checkpoint_writes_masks_overlays_and_dice(tmp_path, samples_dir, tiny_checkpoint, capsys):
    out = tmp_path / "pred"
    assert main([str(samples_dir), "--checkpoint", str(tiny_checkpoint), "--out", str(out),
                 "--limit", "3"]) == 0
    names = sorted(p.stem for p in (samples_dir / "images").glob("*.jpg"))[:3]
    masks = _masks(out)
    assert list(masks) == names
    src = Image.open(samples_dir / "images" / f"{names[0]}.jpg")
    assert masks[names[0]].shape == (src.height, src.width)
    assert set(np.unique(masks[names[0]])) <= {0, 255}
    assert len(list((out / "overlays").glob("*.jpg"))) == 3
    assert not list(out.rglob("*.tmp")), "atomic writes leave no temporary files"
    printed = capsys.readouterr().out
    assert "mean dice" in printed and printed.count("dice") == 3 + 1


@pytest.mark.parametrize("target", ["qtseg-v2_onnx", "qtseg-v2_openvino-fp32"])
def test_artifact_masks_are_the_bench_masks(target, tmp_path, samples_dir, tiny_exports):
    artifact = tiny_exports / target
    images = sorted((samples_dir / "images").glob("*.jpg"))[:3]
    out = tmp_path / "pred"
    assert main([str(samples_dir), "--artifact", str(artifact), "--out", str(out), "--limit", "3",
                 "--threads", "1", "--no-overlay", "--quiet"]) == 0
    expected = _expected(artifact, images)
    got = _masks(out)
    assert list(got) == list(expected)
    for name, mask in expected.items():
        assert np.array_equal(got[name], mask.astype(np.uint8) * 255), name
    assert not (out / "overlays").exists()


def test_batches_with_a_dynamic_artifact_and_labels(tmp_path, samples_dir, tiny_exports):
    artifact = tiny_exports / "qtseg-v2_onnx"
    one, three = tmp_path / "b1", tmp_path / "b3"
    common = [str(samples_dir), "--artifact", str(artifact), "--limit", "4", "--quiet",
              "--mask-values", "labels", "--no-overlay"]
    assert main([*common, "--out", str(one)]) == 0
    assert main([*common, "--out", str(three), "--batch", "3"]) == 0  # a call of 3, then of 1
    a, b = _masks(one), _masks(three)
    assert list(a) == list(b) and len(a) == 4
    for name in a:
        assert set(np.unique(a[name])) <= {0, 1}
        assert (a[name] == b[name]).mean() > 0.999  # same model, batch of 1 vs 3


def test_batch_refused_for_static_and_beyond_dynamic_max(
    tmp_path, samples_dir, tiny_exports, static_ov_artifact, capsys
):
    out = tmp_path / "p"
    assert main([str(samples_dir), "--artifact", str(static_ov_artifact), "--batch", "2",
                 "--out", str(out)]) == 2
    assert "static batch of 1" in capsys.readouterr().err
    assert main([str(samples_dir), "--artifact", str(tiny_exports / "qtseg-v2_onnx"),
                 "--batch", "5", "--out", str(out)]) == 2
    assert "1..4" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit) as exc:
        main([str(samples_dir), "--batch", "0"])
    assert exc.value.code == 2


def test_undecodable_image_is_reported_and_the_rest_written(
    tmp_path, samples_dir, tiny_checkpoint, capsys
):
    folder = labelled_folder(tmp_path / "data", samples_dir, 3)
    good = sorted((folder / "images").glob("*.jpg"))
    (folder / "images" / "0broken.jpg").write_bytes(good[0].read_bytes()[:500])
    out = tmp_path / "pred"
    rc = main([str(folder), "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 1
    assert sorted(_masks(out)) == sorted(p.stem for p in good)
    assert "error: 0broken: cannot decode image" in captured.err
    assert "wrote 3 of 4 masks" in captured.out and "1 image(s) failed: 0broken" in captured.out
    # --strict stops at the first failure (the broken image sorts first: nothing written)
    strict = tmp_path / "strict"
    rc = main([str(folder), "--checkpoint", str(tiny_checkpoint), "--out", str(strict), "--strict",
               "--quiet"])
    assert rc == 1 and "--strict" in capsys.readouterr().err
    assert not (strict / "masks").exists()


def test_same_stem_is_an_error_before_any_work(tmp_path, samples_dir, tiny_checkpoint, capsys):
    folder = tmp_path / "dup"
    folder.mkdir()
    image = min((samples_dir / "images").glob("*.jpg"))
    shutil.copy(image, folder / "a.jpg")
    Image.open(image).save(folder / "a.png")
    out = tmp_path / "pred"
    assert main([str(folder), "--checkpoint", str(tiny_checkpoint), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "a.jpg and a.png have the same name" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_single_image_and_bad_paths(tmp_path, samples_dir, tiny_checkpoint, capsys):
    img = min((samples_dir / "images").glob("*.jpg"))
    assert main([str(img), "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "one"),
                 "--quiet"]) == 0
    assert len(list((tmp_path / "one" / "masks").glob("*.png"))) == 1
    assert main([str(tmp_path / "none"), "--checkpoint", str(tiny_checkpoint)]) == 2
    assert "not found" in capsys.readouterr().err
    assert main([str(img), "--artifact", str(tmp_path)]) == 2
    assert "neither an artifact" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("qtseg-predict ")


def test_max_pixels_refuses_large_images(tmp_path, samples_dir, tiny_checkpoint, capsys):
    folder = labelled_folder(tmp_path / "data", samples_dir, 2)
    out = tmp_path / "pred"
    rc = main([str(folder), "--checkpoint", str(tiny_checkpoint), "--out", str(out),
               "--max-pixels", "1000", "--quiet"])
    assert rc == 1 and "pixels" in capsys.readouterr().err
    assert not (out / "masks").exists()
    assert main([str(folder), "--checkpoint", str(tiny_checkpoint), "--out", str(out),
                 "--max-pixels", "1000000", "--quiet"]) == 0


def test_non_finite_logits_fail_the_image_not_the_run(tmp_path, samples_dir, tiny_exports, capsys):
    import dataclasses

    import onnx
    from onnx import numpy_helper

    from qtseg.manifest import describe_files, write_manifest

    src = tiny_exports / "qtseg-v2_onnx"
    bad = tmp_path / "qtseg-v2_nan"
    shutil.copytree(src, bad)
    model = onnx.load(str(bad / "model.onnx"))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    values = numpy_helper.to_array(init).copy()
    values.flat[:] = np.nan
    init.CopyFrom(numpy_helper.from_array(values, init.name))
    onnx.save(model, str(bad / "model.onnx"))
    manifest = read_manifest_file(src)
    roles = {role: f.path for role, f in manifest.files.items()}
    write_manifest(bad, dataclasses.replace(manifest, files=describe_files(bad, roles)))
    out = tmp_path / "pred"
    rc = main([str(samples_dir), "--artifact", str(bad), "--out", str(out), "--limit", "2",
               "--quiet"])
    captured = capsys.readouterr()
    assert rc == 1 and "2 image(s) failed" in captured.out
    assert captured.err.count("error: ") == 2 and "nan/inf" in captured.err.lower()
    assert not (out / "masks").exists()  # no all-background mask written for a NaN result

import pytest

from qtseg.models import UnknownModelError, create, list_models


def test_registry_lists_models_and_rejects_unknown():
    assert "qtseg-v2" in list_models()
    with pytest.raises(UnknownModelError, match="available: .*qtseg-v2"):
        create("unet")


def test_created_model_records_name_and_config():
    model = create("qtseg-v2", width=8, img_size=(64, 64), num_classes=3)
    assert model.model_name == "qtseg-v2"
    assert model.config.num_classes == 3 and model.config.img_size == (64, 64)


@pytest.mark.parametrize("name", ["qtseg-v2", "qtseg-v1", "hrmedseg", "icmoe"])
def test_every_model_takes_img_size_as_int_pair_or_list(name):
    from qtseg.models import make_config

    assert make_config(name, img_size=256).img_size == (256, 256)
    assert make_config(name, img_size=[256, 256]).img_size == (256, 256)
    with pytest.raises(ValueError, match="int or \\(height, width\\)"):
        make_config(name, img_size=(256, 256, 3))

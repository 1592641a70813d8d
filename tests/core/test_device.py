import pytest
import torch

from napari_cosine_embed.core.device import available_devices, resolve_device
from napari_cosine_embed.core.errors import InputError


def test_auto_picks_the_best_available_device():
    assert resolve_device("auto") == torch.device(available_devices()[0])
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the error on a machine without CUDA")
def test_missing_gpu_is_a_clear_error_not_a_crash():
    with pytest.raises(InputError, match="no CUDA GPU is available"):
        resolve_device("cuda")


def test_unknown_device_names_the_choices():
    with pytest.raises(InputError, match="choose one of"):
        resolve_device("tpu9")

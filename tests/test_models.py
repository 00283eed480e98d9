"""The model family: the paper configuration's size, the plug-in contract, every registry model."""

import torch
from torch import nn

from pip_filters.models import PIPNet, build_model, count_parameters
from pip_filters.registry import MODELS, get_spec


def test_paper_configuration_has_the_papers_parameter_count():
    model = build_model(get_spec("pip-restormer").config)
    assert abs(count_parameters(model) / 27.4e6 - 1) < 0.03


def test_every_registered_model_restores_a_batch_with_per_image_tasks():
    weights = torch.tensor([[1.0, 0, 0, 0, 0], [0, 0.5, 0.5, 0, 0]])
    for name, spec in MODELS.items():
        model = build_model(spec.config).eval()
        x = torch.rand(2, 3, 4 * model.multiple, 5 * model.multiple)  # sides the network takes
        with torch.no_grad():
            assert model(x, weights).shape == x.shape, name
            assert model.detect(x).shape == (2, 5)


class TwoLevelUNet(nn.Module):
    """A minimal U-shaped backbone written for this test: PIP plugs in without touching it."""

    skip_channels = (8, 16)
    multiple = 4

    def __init__(self):
        super().__init__()
        self.inp, self.down1, self.down2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 16, 2, 2), nn.Conv2d(16, 32, 2, 2)
        self.up2, self.up1 = nn.ConvTranspose2d(32, 16, 2, 2), nn.ConvTranspose2d(16, 8, 2, 2)
        self.out = nn.Conv2d(8, 3, 3, padding=1)

    def encode(self, x):
        s1 = self.inp(x)
        s2 = self.down1(s1)
        return self.down2(s2), [s1, s2]

    def decode(self, latent, skips, x):
        y = self.up2(latent) + skips[1]
        return x + self.out(self.up1(y) + skips[0])


def test_pip_plugs_into_any_u_shaped_backbone_in_one_line():
    model = PIPNet(TwoLevelUNet(), prompt_dims=(8, 16), prompt_sizes=(8, 4))
    x = torch.rand(1, 3, 16, 24)
    out = model(x, torch.tensor([[0.0, 0, 1, 0, 0]]))
    assert out.shape == x.shape
    # the prompts reach the output: another task gives another result
    assert not torch.allclose(out, model(x, torch.tensor([[0.0, 0, 0, 0, 1]])))
    out.mean().backward()
    assert model.pip[0].degradation_prompts.grad is not None


def test_prompt_regulariser_pushes_degradation_prompts_apart():
    model = PIPNet(TwoLevelUNet(), prompt_dims=(8, 16), prompt_sizes=(8, 4))
    for block in model.pip:
        block.degradation_prompts.data[:] = 1.0  # all prompts identical: maximal penalty
    assert torch.isclose(model.prompt_separation_loss(), torch.tensor(1.0))
    for block in model.pip:
        block.degradation_prompts.data = torch.eye(5, block.prompt_dim)  # orthogonal: no penalty
    assert model.prompt_separation_loss() == 0


def test_reused_prompts_give_the_same_output_as_computing_them():
    model = build_model(get_spec("pip-nafnet-t").config).eval()
    x, w = torch.rand(1, 3, 32, 32), torch.tensor([[0.0, 1, 0, 0, 0]])
    with torch.no_grad():
        prompts = model.universal_prompts(x, w)
        assert [p.shape[-1] for p in prompts] == get_spec("pip-nafnet-t").config["prompt_sizes"]
        torch.testing.assert_close(model(x, w, prompts), model(x, w))


def test_sensor_sharpness_scales_auto_weights_and_old_weights_read_as_plain_softmax():
    model = build_model(get_spec("pip-nafnet-t").config).eval()
    model.sensor.head.bias.data = torch.tensor([0.5, 0.2, 0.0, 0.0, -0.2])  # an opinion, hedged
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        plain = model.detect(x)
        model.sensor.sharpness.fill_(8.0)
        sharp = model.detect(x)
    assert torch.allclose(sharp.sum(-1), torch.ones(2))
    assert torch.equal(sharp.argmax(-1), plain.argmax(-1)) and (sharp.max(-1).values > plain.max(-1).values).all()
    saved_before = {k: v for k, v in model.state_dict().items() if k != "sensor.sharpness"}
    model.load_state_dict(saved_before)
    assert model.sensor.sharpness == 1.0
    with torch.no_grad():
        torch.testing.assert_close(model.detect(x), plain)

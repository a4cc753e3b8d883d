"""The fixed UNet: shapes for any size, identity at initialisation, parameter count."""

from __future__ import annotations

import pytest
import torch

from benchmark.model import UNet, count_parameters


def expected_parameters(width: int, depth: int) -> int:
    """Parameter count from the architecture written out by hand (weights + biases)."""

    def conv(c_in: int, c_out: int, k: int = 3) -> int:
        return k * k * c_in * c_out + c_out

    chans = [width * 2**i for i in range(depth + 1)]
    total = conv(3, width) + conv(width, width) + conv(width, 3)  # stem + head
    for i in range(depth):
        total += conv(chans[i], chans[i + 1]) + conv(chans[i + 1], chans[i + 1])  # down
        total += conv(chans[i + 1], chans[i], k=2)  # transposed up-convolution
        total += conv(2 * chans[i], chans[i]) + conv(chans[i], chans[i])  # fuse
    return total


@pytest.mark.parametrize(("width", "depth"), [(8, 4), (16, 4), (32, 4), (4, 2)])
def test_parameter_count_matches_the_architecture(width: int, depth: int) -> None:
    model = UNet(width, depth)
    assert count_parameters(model) == expected_parameters(width, depth)
    assert model.count_parameters() == count_parameters(model)


def test_paper_width_is_a_small_unet() -> None:
    # README/protocol docs quote 7.8 M parameters for width 32
    assert round(UNet(32, 4).count_parameters() / 1e6, 1) == 7.8


@pytest.mark.parametrize(
    "shape", [(1, 3, 1, 1), (2, 3, 17, 33), (1, 3, 64, 64), (1, 3, 5, 200), (1, 3, 129, 7)]
)
def test_any_size_comes_back_the_same_size(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = UNet(4, 4)
    torch.nn.init.normal_(model.head.weight, std=0.1)  # make the output depend on the network
    x = torch.rand(shape)
    y = model(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_identity_at_initialisation_and_no_clamp() -> None:
    torch.manual_seed(0)
    model = UNet(8, 4)
    x = torch.rand(2, 3, 23, 41) * 1.5 - 0.25  # outside [0, 1] on purpose: no clamp, no sigmoid
    assert torch.equal(model(x), x)


def test_residual_learns_after_one_step() -> None:
    torch.manual_seed(0)
    model = UNet(8, 3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.rand(2, 3, 32, 32)
    for _ in range(2):  # step 1 moves only the zero-initialised head, step 2 reaches the rest
        loss = (model(x) - (x + 0.3)).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not torch.equal(model(x), x)
    assert model.stem[0][0].weight.grad.abs().sum() > 0


def test_same_seed_same_weights() -> None:
    torch.manual_seed(3)
    a = UNet(8, 4).state_dict()
    torch.manual_seed(3)
    b = UNet(8, 4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_inputs_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match=r"UNet: expected N x 3 x H x W input, got \(1, 4, 8, 8\)"):
        UNet(4, 2)(torch.rand(1, 4, 8, 8))
    with pytest.raises(ValueError, match="UNet: width and depth must be >= 1, got 0 and 4"):
        UNet(0, 4)

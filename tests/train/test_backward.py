"""backward_mean: the parameter gradients of a mean loss, bit for bit, with O(1) rows inside."""
import pytest
import torch

from gnnsys.train.backward import backward_mean


def test_gradients_equal_the_plain_mean_bit_for_bit():
    grads = []
    for scaled in (False, True):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(),
                                    torch.nn.Linear(32, 4))
        x, y = torch.randn(300, 16), torch.randint(0, 4, (300,))
        loss_sum = torch.nn.functional.cross_entropy(model(x), y, reduction="sum")
        if scaled:
            backward_mean(loss_sum, 100_000, model.parameters())
        else:
            (loss_sum / 100_000).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*grads))


def test_rows_inside_the_pass_are_scaled_by_the_power_of_two_nearest_the_count():
    h = torch.ones(3, 2, requires_grad=True)
    seen = []
    h.register_hook(lambda grad: seen.append(grad.clone()))
    weight = torch.nn.Parameter(torch.ones(2, 1))
    backward_mean((h @ weight).sum(), 100_000, [weight])  # nearest power of two: 2^17
    assert torch.equal(seen[0], torch.full((3, 2), 2.0 ** 17 / 100_000))
    assert torch.equal(weight.grad, torch.full((2, 1), 3 / 100_000))


def test_set_gradients_are_refused_not_rescaled():
    weight = torch.nn.Parameter(torch.ones(2))
    weight.grad = torch.ones(2)
    with pytest.raises(ValueError, match="unset"):
        backward_mean((weight * 2).sum(), 4, [weight])
    assert torch.equal(weight.grad, torch.ones(2))

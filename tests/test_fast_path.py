"""The fast paths compute the same numbers as the straightforward ones (issue 7).

- a device-resident crop equals the same crop decoded from disk (PIL / OpenCV, not lossbench);
- the real training step and a plain PyTorch step on the same batch give the same losses and the
  same updated weights (exactly, fp32 on CPU, in either memory format); at bf16 (the CPU default
  where the CPU computes bf16 natively) within bf16 tolerance of the plain fp32 NCHW step, and the
  convolutions really run in bf16;
- several perceptual terms on one trunk pass equal separate computations;
- evaluation and validation (device-side, one host copy) equal one-image-at-a-time scoring, per
  image, exactly on CPU; batches of equal-size images (CUDA's default) agree to float rounding;
- CUDA (marked ``cuda``, skipped without a GPU): no host synchronisation inside a step, and the
  bf16/channels_last CUDA step within bf16 tolerance of the fp32 CPU step.
"""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from benchmark import metrics as metrics_mod
from benchmark.data import pairs as data_mod
from benchmark.losses.perceptual import PerceptualLoss
from benchmark.model import UNet
from benchmark.protocol import Protocol
from benchmark.recipes.mix import LossMix, build_mix, load_recipe
from benchmark.recipes.schema import recipe_names
from benchmark.run import evaluate as evaluation
from benchmark.run.evaluate import (
    as_float,
    enhance,
    evaluate_test,
    fit_resolution,
    size_batches,
    validate,
)
from benchmark.run.loop import Trainer, sample_batch, to_storage
from benchmark.run.spec import RunOptions, RunSpec

CPU = torch.device("cpu")
TINY = Protocol(
    name="tiny", width=4, depth=2, patch=48, batch=3, iterations=4, lr=1e-3, min_lr=1e-4,
    warmup=1, val_every=2, n_val=2, ckpt_every=2, log_every=2, eval_resolution=64,
    precision="fp32",
)  # fmt: skip
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _write_pairs(folder: Path, sizes: list[tuple[int, int]], seed: int = 0) -> list:
    """8-bit PNG pairs (high = a smooth image, low = a dark noisy copy) -> data.Pair objects."""
    rng = np.random.default_rng(seed)
    pairs = []
    for k, (h, w) in enumerate(sizes):
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([np.sin(xx / (5 + k)), np.cos(yy / 7), np.sin((xx + yy) / 11)], -1)
        high = np.clip((base * 0.4 + 0.5) * 255 + rng.normal(0, 6, (h, w, 3)), 0, 255)
        low = np.clip(high * 0.2 + rng.normal(0, 2, (h, w, 3)), 0, 255)
        paths = []
        for side, img in (("low", low), ("high", high)):
            path = folder / side / f"{k:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img.astype(np.uint8)).save(path)
            paths.append(path)
        pairs.append(data_mod.Pair(name=f"{k:03d}.png", low=paths[0], high=paths[1]))
    return pairs


def _disk(path: Path) -> np.ndarray:
    """Independent decode (PIL 8-bit, OpenCV 16-bit) as float32 HxWx3 RGB in [0, 1]."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img.dtype == np.uint16:
        return (img[:, :, ::-1].astype(np.float32) / np.float32(65535.0)).copy()
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / np.float32(255.0)


# -- data --------------------------------------------------------------------------------------


def test_device_crop_equals_the_crop_decoded_from_disk(tmp_path: Path) -> None:
    pairs = _write_pairs(tmp_path, [(70, 90), (64, 64), (80, 66)])
    # one 16-bit low image: stored as float32, still an exact crop of the file
    rng = np.random.default_rng(3)
    deep = rng.integers(0, 65536, (64, 64, 3), dtype=np.uint16)
    cv2.imwrite(str(pairs[1].low), deep)
    lows, highs = data_mod.load_pairs(pairs)
    lo, hi = (to_storage(x, CPU) for x in (lows, highs))
    assert [t.dtype for t in lo] == [torch.uint8, torch.float32, torch.uint8]
    patch, batch = 40, 16
    gen = torch.Generator().manual_seed(11)
    draws = torch.Generator().manual_seed(11)  # the same stream, read the way sample_batch reads it
    low_b, high_b = sample_batch(lo, hi, patch, batch, gen)
    index = torch.randint(len(lo), (batch,), generator=draws).tolist()
    uv = torch.rand(batch, 2, generator=draws, dtype=torch.float64).tolist()
    flips = torch.randint(8, (batch,), generator=draws).tolist()
    assert len(set(flips)) > 4 and len(set(index)) == 3
    for n, (i, (u, v), f) in enumerate(zip(index, uv, flips, strict=True)):
        for got, path in ((low_b[n], pairs[i].low), (high_b[n], pairs[i].high)):
            full = _disk(path)
            y, x = int(u * (full.shape[0] - patch + 1)), int(v * (full.shape[1] - patch + 1))
            crop = full[y : y + patch, x : x + patch]
            if f & 1:
                crop = crop[:, ::-1]
            if f & 2:
                crop = crop[::-1]
            if f & 4:
                crop = crop.transpose(1, 0, 2)
            expect = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))
            assert torch.equal(got, expect), (n, i, f)


# -- the training step -------------------------------------------------------------------------


def _plain_step(model, mix, opt, d_opts, low, high, channels_last=False) -> list[float]:
    """A straightforward step: fp32 forward, the mix, backward, Adam, discriminator updates.
    ``channels_last``: the network (already converted by the caller) gets a channels_last input
    and the losses a contiguous prediction, the protocol's memory format done by hand."""
    if channels_last:
        pred = model(low.contiguous(memory_format=torch.channels_last)).contiguous()
    else:
        pred = model(low)
    total, terms = mix(pred, high, low=low)
    opt.zero_grad()
    total.backward()
    opt.step()
    for (_, term), d_opt in zip(mix.adversarial_terms(), d_opts, strict=True):
        d_loss = term.discriminator_loss(pred.detach(), high)
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
    return [float(v.detach()) for v in terms.values()] + [float(total.detach())]


@pytest.mark.parametrize("channels_last", [True, False], ids=["channels_last", "nchw"])
@pytest.mark.parametrize("recipe", ["flw", "s3net", "srgan"])
def test_fast_step_equals_a_plain_step_on_the_same_batch(
    recipe: str, channels_last: bool, planted_weights
) -> None:
    proto = Protocol(**{**TINY.to_dict(), "channels_last": channels_last, "seeds": (0,)})
    rng = np.random.default_rng(5)
    lows = [(rng.integers(0, 256, (60, 72, 3)) / 255.0).astype(np.float32) for _ in range(4)]
    highs = [np.clip(x * 3.0, 0, 1).astype(np.float32) for x in lows]
    torch.manual_seed(0)
    model, mix = UNet(TINY.width, TINY.depth), build_mix(load_recipe(recipe))
    ref_model, ref_mix = copy.deepcopy(model), copy.deepcopy(mix)
    if channels_last:  # as benchmark.run.execute converts the run's network
        model = model.to(memory_format=torch.channels_last)
        ref_model = ref_model.to(memory_format=torch.channels_last)
    parts: list[str] = []
    trainer = Trainer(
        proto, model, mix, CPU, torch.Generator().manual_seed(2),
        (to_storage(lows, CPU), to_storage(highs, CPU)), ([], []), mark=parts.append,
    )  # fmt: skip
    opt = torch.optim.Adam(ref_model.parameters(), lr=TINY.lr, betas=(0.9, 0.999), foreach=False)
    d_opts = [
        torch.optim.Adam(t.discriminator.parameters(), lr=t.d_lr, betas=t.d_betas, foreach=False)
        for _, t in ref_mix.adversarial_terms()
    ]
    batches = torch.Generator().manual_seed(2)
    stored = (to_storage(lows, CPU), to_storage(highs, CPU))
    for it in (1, 2, 3):
        for group in opt.param_groups:
            group["lr"] = TINY.lr_at(it)
        low, high = sample_batch(*stored, TINY.patch, TINY.batch, batches)
        expect = _plain_step(ref_model, ref_mix, opt, d_opts, low, high, channels_last)
        record = trainer._step(it)
        n = len(expect)
        assert record[:n].tolist() == expect, it  # exactly: same fp32 ops on the same batch
    for a, b in zip(model.parameters(), ref_model.parameters(), strict=True):
        assert torch.equal(a, b)
    for (_, t), (_, u) in zip(mix.adversarial_terms(), ref_mix.adversarial_terms(), strict=True):
        for a, b in zip(t.discriminator.parameters(), u.discriminator.parameters(), strict=True):
            assert torch.equal(a, b)
    one = ["data", "forward", "loss", "backward", "optimiser"]
    one += ["discriminator"] if recipe == "srgan" else []
    logged = one[:3] + ["shares"] + one[3:]  # iteration 2 logs: gradient shares, same numbers
    assert parts == one + logged + one


def _conv_dtypes(model: UNet) -> tuple[list[torch.dtype], object]:
    seen: list[torch.dtype] = []
    hook = model.stem[0][0].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    return seen, hook


@pytest.mark.parametrize("recipe", ["l1", "flw", "s3net"])
def test_bf16_step_is_within_bf16_tolerance_of_the_plain_fp32_step(
    recipe: str, planted_weights
) -> None:
    proto = Protocol(**{**TINY.to_dict(), "precision": "bf16", "seeds": (0,)})
    rng = np.random.default_rng(6)
    lows = [(rng.integers(0, 256, (60, 72, 3)) / 255.0).astype(np.float32) for _ in range(4)]
    highs = [np.clip(x * 3, 0, 1).astype(np.float32) for x in lows]
    ref_model = _trained_unet().train()  # not the identity: the head's output matters
    model = copy.deepcopy(ref_model).to(memory_format=torch.channels_last)
    mix = build_mix(load_recipe(recipe))
    ref_mix = copy.deepcopy(mix)
    stored = (to_storage(lows, CPU), to_storage(highs, CPU))
    trainer = Trainer(proto, model, mix, CPU, torch.Generator().manual_seed(2), stored, ([], []))
    low, high = sample_batch(*stored, TINY.patch, TINY.batch, torch.Generator().manual_seed(2))
    pred = ref_model(low)  # fp32, NCHW
    total, terms = ref_mix(pred, high, low=low)
    expect = torch.stack([*terms.values(), total]).detach()
    seen, hook = _conv_dtypes(model)
    record = trainer._step(1)[: len(expect)]
    hook.remove()
    assert seen == [torch.bfloat16]  # the convolutions really ran in bf16
    torch.testing.assert_close(record, expect, rtol=2e-2, atol=2e-3)
    assert not torch.equal(record, expect)  # bf16 moved the values: the tolerance is needed
    total.backward()
    ref_grads = [p.grad for p in ref_model.parameters()]
    # one Adam step moves every weight by about lr; bf16 may flip the sign of a tiny gradient
    for a, b, g in zip(model.parameters(), ref_model.parameters(), ref_grads, strict=True):
        assert (a.detach() - b.detach()).abs().max() <= 2.5 * TINY.lr, g.abs().max()


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_evaluation_runs_the_network_at_the_protocol_precision(precision: str) -> None:
    proto = Protocol(**{**TINY.to_dict(), "precision": precision, "seeds": (0,)})
    model = _trained_unet()
    x = torch.rand(1, 3, 40, 52, generator=torch.Generator().manual_seed(1))
    seen, hook = _conv_dtypes(model)
    out = enhance(model, x, CPU, proto)
    hook.remove()
    assert seen == [torch.bfloat16 if precision == "bf16" else torch.float32]
    assert out.dtype == torch.float32 and out.is_contiguous()
    fp32 = enhance(model, x, CPU, TINY)
    torch.testing.assert_close(out, fp32, rtol=0, atol=0 if precision == "fp32" else 2e-2)


# -- shared VGG trunk --------------------------------------------------------------------------


def test_perceptual_terms_share_one_trunk_pass_and_equal_separate_calls(planted_weights) -> None:
    terms = {
        "drn": PerceptualLoss(preset="drn"),
        "content": PerceptualLoss(preset="srgan"),
        "edsr": PerceptualLoss(preset="edsr22"),  # normalised input: its own pass
        "deep": PerceptualLoss(layers=[3, 8], criterion="l2", normalize=True),
    }
    mix = LossMix(terms, {"drn": 1.0, "content": 0.5, "edsr": 2.0, "deep": 0.25})
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 40, 48, generator=gen)
    pred = (target + 0.1 * torch.randn(2, 3, 40, 48, generator=gen)).requires_grad_(True)
    first = terms["drn"].trunk(CPU)[0]
    calls: list[int] = []
    handle = first.register_forward_hook(lambda *a: calls.append(1))
    try:
        total, values = mix(pred, target)
    finally:
        handle.remove()
    assert len(calls) == 4  # (pred, target) x (plain, normalised) instead of 8
    (grad,) = torch.autograd.grad(total, pred)
    sep_pred = pred.detach().clone().requires_grad_(True)
    separate = {label: term(sep_pred, target) for label, term in terms.items()}
    for label, value in separate.items():
        assert torch.equal(values[label], value), label
    sep_total = sum(mix.weights[k] * v for k, v in separate.items())
    assert torch.equal(total, sep_total)
    (sep_grad,) = torch.autograd.grad(sep_total, sep_pred)
    torch.testing.assert_close(grad, sep_grad, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match=r"perceptual: layers \[1, 6, 11\] need inputs of at "
                                         r"least 4x4, got 3x3"):  # fmt: skip
        mix(torch.rand(1, 3, 3, 3), torch.rand(1, 3, 3, 3))


# -- evaluation --------------------------------------------------------------------------------


def test_size_batches_groups_equal_sizes_within_the_budget() -> None:
    sizes = [(4, 5), (6, 6), (4, 5), (4, 5), (6, 6), (3, 3)]
    assert size_batches(sizes, max_pixels=1000) == [[0, 2, 3], [1, 4], [5]]
    assert size_batches(sizes, max_pixels=40) == [[0, 2], [3], [1], [4], [5]]
    assert size_batches(sizes, max_pixels=1) == [[0], [2], [3], [1], [4], [5]]
    assert size_batches([], max_pixels=10) == []


def _trained_unet(width: int = 4) -> UNet:
    torch.manual_seed(3)
    model = UNet(width, 2)
    with torch.no_grad():  # away from the identity so that outputs differ from inputs
        model.head.weight.normal_(0, 0.05)
        model.head.bias.fill_(0.05)
    return model.eval()


@pytest.mark.parametrize(("resolution", "budget"), [("full", None), (48, None), ("full", 7000)])
def test_evaluation_equals_one_image_at_a_time(
    resolution: str | int,
    budget: int | None,
    tmp_path: Path,
    planted_weights,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CPU default (one image per batch): exactly equal. Forced batches: equal to rounding."""
    sizes = [(50, 70), (64, 64), (50, 70), (64, 64), (50, 70), (37, 53)]
    pairs = _write_pairs(tmp_path, sizes, seed=4)
    lows, highs = data_mod.load_pairs(pairs)
    names = [p.name for p in pairs]
    proto = Protocol(**{**TINY.to_dict(), "eval_resolution": resolution, "seeds": (0,)})
    model, chosen = _trained_unet(), ("psnr", "ssim", "lpips")
    if budget is not None:  # batches of 2, 1 of 50x70 and 1 of 64x64, then 37x53 alone
        monkeypatch.setitem(evaluation.EVAL_BATCH_PIXELS, "cpu", budget)
    rows, samples = evaluate_test(model, lows, highs, names, CPU, proto, chosen)
    assert [r["image"] for r in rows] == names
    assert [s[0] for s in samples] == names[: proto.n_samples]
    for k, (name, low, high) in enumerate(zip(names, lows, highs, strict=True)):
        # the one-image-at-a-time path evaluation used before batching
        x = fit_resolution(torch.from_numpy(low).permute(2, 0, 1)[None], resolution)
        y = fit_resolution(torch.from_numpy(high).permute(2, 0, 1)[None], resolution)
        pred = enhance(model, x, CPU, proto).clamp(0.0, 1.0)
        values = metrics_mod.evaluate(pred, y, chosen)
        for key, value in values.items():
            if budget is None:
                assert rows[k][key] == float(value[0]), (name, key)
            else:
                assert rows[k][key] == pytest.approx(float(value[0]), rel=1e-6, abs=1e-7)
        if k < proto.n_samples:
            out = np.round(pred[0].permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)
            if budget is None:
                assert np.array_equal(samples[k][2], out)
            else:  # a rounding difference may move a pixel across a .5 boundary
                assert np.abs(samples[k][2].astype(int) - out).max() <= 1
    no_lpips, _ = evaluate_test(model, lows, highs, names, CPU, proto, None)
    assert all(r["lpips"] is None for r in no_lpips)
    assert [r["psnr"] for r in no_lpips] == [r["psnr"] for r in rows]


def test_batched_validation_equals_the_mean_of_per_image_psnr() -> None:
    rng = np.random.default_rng(8)
    sizes = [(40, 56), (48, 48), (40, 56), (48, 48), (40, 56)]
    lows = [(rng.integers(0, 256, (*s, 3)) / 255.0).astype(np.float32) for s in sizes]
    highs = [np.clip(x * 2.5, 0, 1).astype(np.float32) for x in lows]
    lo, hi = to_storage(lows, CPU), to_storage(highs, CPU)
    model = _trained_unet()
    per_image = []
    for low, high in zip(lo, hi, strict=True):
        x = fit_resolution(as_float(low)[None], 32)
        y = fit_resolution(as_float(high)[None], 32)
        per_image.append(float(metrics_mod.psnr(enhance(model, x, CPU, TINY).clamp(0, 1), y)[0]))
    proto = Protocol(**{**TINY.to_dict(), "eval_resolution": 32, "seeds": (0,)})
    assert validate(model, lo, hi, CPU, proto) == float(np.mean(per_image))
    assert model.training  # validate leaves the network in training mode


# -- CUDA ----------------------------------------------------------------------------------------


def _cuda_trainer(recipe: str, protocol: Protocol, lows, highs) -> Trainer:
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = UNet(protocol.width, protocol.depth).to(dev).to(memory_format=torch.channels_last)
    return Trainer(
        protocol, model, build_mix(load_recipe(recipe)).to(dev), dev,
        torch.Generator().manual_seed(2), (to_storage(lows, dev), to_storage(highs, dev)),
        ([], []),
    )  # fmt: skip


@pytest.mark.parametrize("recipe", recipe_names())
def test_loss_mix_makes_no_tensor_from_host_data(recipe: str, planted_weights) -> None:
    """The CPU stand-in for the CUDA sync test: one forward and backward of the recipe's loss
    mix creates no tensor from Python data (``torch.tensor(list)``, ``new_tensor(list)``: on
    CUDA a host-to-device copy every step) and reads no value back (``.item()``, ``bool()``),
    the operations that would keep a CUDA step from being captured in a graph."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class HostTraffic(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.found: set[str] = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            if func.overloadpacket in (torch.ops.aten.lift_fresh,
                                       torch.ops.aten._local_scalar_dense):
                self.found.add(str(func))
            return func(*args, **(kwargs or {}))

    mix = build_mix(load_recipe(recipe))
    gen = torch.Generator().manual_seed(12)
    pred = torch.rand(1, 3, 176, 176, generator=gen, requires_grad=True)
    high = torch.rand(1, 3, 176, 176, generator=gen)
    low = torch.rand(1, 3, 176, 176, generator=gen)
    mix(pred, high, low=low)[0].backward()  # lazy state (cached windows, buffers) built once
    with HostTraffic() as mode:
        total, _ = mix(pred, high, low=low)
        total.backward()
    assert mode.found == set(), f"{recipe}: {sorted(mode.found)}"


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize(
    "recipe", ["l1", "charbonnier", "flw", "s3net", "srgan", "ms_ssim", "zhao_mix"]
)
def test_cuda_step_never_synchronises_with_the_host(recipe: str, planted_weights) -> None:
    rng = np.random.default_rng(5)
    big = recipe in ("ms_ssim", "zhao_mix")  # MS-SSIM's five scales need crops >= 161 px
    proto = Protocol(**{**TINY.to_dict(), "patch": 176}) if big else TINY
    size = (180, 184) if big else (60, 72)
    lows = [(rng.integers(0, 256, (*size, 3)) / 255.0).astype(np.float32) for _ in range(4)]
    trainer = _cuda_trainer(recipe, proto, lows, [np.clip(x * 3, 0, 1) for x in lows])
    trainer._step(1)  # warm-up: lazy initialisation may synchronise once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for it in (2, 3):
            trainer._step(it)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("recipe", ["flw", "s3net"])
def test_cuda_bf16_step_is_within_bf16_tolerance_of_the_cpu_step(
    recipe: str, planted_weights
) -> None:
    rng = np.random.default_rng(6)
    lows = [(rng.integers(0, 256, (60, 72, 3)) / 255.0).astype(np.float32) for _ in range(4)]
    highs = [np.clip(x * 3, 0, 1).astype(np.float32) for x in lows]
    trainer = _cuda_trainer(recipe, TINY, lows, highs)
    torch.manual_seed(0)
    model, mix = UNet(TINY.width, TINY.depth), build_mix(load_recipe(recipe))
    low, high = sample_batch(
        to_storage(lows, CPU), to_storage(highs, CPU), TINY.patch, TINY.batch,
        torch.Generator().manual_seed(2),
    )  # fmt: skip
    total, terms = mix(model(low), high, low=low)
    expect = torch.stack([*terms.values(), total]).detach()
    record = trainer._step(1)[: len(expect)].cpu()
    torch.testing.assert_close(record, expect, rtol=2e-2, atol=2e-3)


@pytest.mark.cuda
@needs_cuda
def test_cuda_batched_evaluation_is_within_bf16_tolerance(tmp_path: Path, planted_weights) -> None:
    pairs = _write_pairs(tmp_path, [(50, 70), (64, 64), (50, 70)], seed=4)
    lows, highs = data_mod.load_pairs(pairs)
    names = [p.name for p in pairs]
    model = _trained_unet()
    dev = torch.device("cuda")
    cpu_rows, _ = evaluate_test(model, lows, highs, names, CPU, TINY, None)
    gpu_rows, _ = evaluate_test(
        copy.deepcopy(model).to(dev), lows, highs, names, dev, TINY, None
    )
    for a, b in zip(cpu_rows, gpu_rows, strict=True):
        assert b["psnr"] == pytest.approx(a["psnr"], abs=0.05)
        assert b["ssim"] == pytest.approx(a["ssim"], abs=2e-3)


# -- TF32 policy, --compile, CUDA graphs (issue 26) ----------------------------------------------


def test_tf32_policy_is_recorded_and_hashed_only_when_on(tmp_path: Path) -> None:
    """Off (the default) leaves the config hash of runs made before the field existed; on is
    refused on the CPU with a message naming the option."""
    from benchmark.errors import UserError
    from benchmark.record import hashed_part
    from benchmark.run.setup import prepare

    setup = prepare(RunSpec("l1", "smoke", 0, None, tmp_path,
                            options=RunOptions(device="cpu", metrics=("psnr", "ssim"))), quiet=True)
    assert setup.config["protocol"]["tf32"] is False
    assert "tf32" not in setup.hashed["protocol"]
    on = {**setup.config, "protocol": {**setup.config["protocol"], "tf32": True}}
    assert hashed_part(on)["protocol"]["tf32"] is True  # a TF32 run is another configuration
    with pytest.raises(UserError, match="--tf32 on: TF32 is a format of NVIDIA tensor cores"):
        prepare(RunSpec("l1", "smoke", 0, None, tmp_path,
                        options=RunOptions(device="cpu", tf32=True)), quiet=True)


def test_tf32_settings_set_every_cuda_operator_class_and_restore() -> None:
    from benchmark.protocol import tf32_settings

    try:
        on, off = tf32_settings(True), tf32_settings(False)
    finally:
        tf32_settings(False)
    assert on["tf32"] is True and off["tf32"] is False
    if off["api"] == "fp32_precision":  # torch >= 2.9: never a mix of the two APIs
        assert {on[k] for k in ("cudnn.conv", "cudnn.rnn", "cuda.matmul")} == {"tf32"}
        assert {off[k] for k in ("cudnn.conv", "cudnn.rnn", "cuda.matmul")} == {"ieee"}
    else:
        assert off["cudnn.allow_tf32"] is False and on["cudnn.allow_tf32"] is True


def test_compare_keeps_tf32_runs_apart() -> None:
    from benchmark.analysis.frames import config_precision

    assert config_precision({"protocol": {"precision": "bf16", "tf32": False}}) == "bf16"
    assert config_precision({"protocol": {"precision": "bf16", "tf32": True}}) == "bf16+tf32"


def test_run_compile_trains_through_the_compiled_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """``run --compile`` (the CLI) trains through the compiled module: its ``bool()`` used to
    raise ``TypeError: UNet does not support len()``. Dynamo's "eager" backend keeps the test
    seconds long (Inductor's code generation takes minutes on 2 cores); the call path is the
    same. --cuda-graphs on the CPU says why it stays eager."""
    from benchmark.cli import main

    calls = []
    real_compile = torch.compile

    def compile_eagerly(model: torch.nn.Module, **kwargs: object) -> object:
        compiled = real_compile(model, backend="eager")
        calls.append(compiled)
        return compiled

    monkeypatch.setattr(torch, "compile", compile_eagerly)
    code = main(["run", "l1", "--profile", "smoke", "--device", "cpu", "--results",
                 str(tmp_path), "--metrics", "psnr,ssim", "--compile", "--cuda-graphs"])
    assert code == 0 and len(calls) == 1
    out = capsys.readouterr().out
    assert "CUDA graphs: not used, the step stays eager: CUDA graphs need a CUDA device" in out
    import yaml

    folder = tmp_path / "runs" / "l1" / "smoke" / "seed0"
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["compile"] is True and config["cuda_graphs"] is True


def _fake_cuda_trainer(**overrides: object) -> object:
    from types import SimpleNamespace

    base = {"device": torch.device("cuda"), "adversarial": [], "share_labels": [],
            "forward": None, "protocol": TINY}
    return SimpleNamespace(**{**base, **overrides})


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({}, None),
        ({"device": CPU}, "CUDA graphs need a CUDA device; this run is on cpu"),
        ({"adversarial": [("adv", None)]}, "the recipe trains a discriminator (adv)"),
        ({"share_labels": ["a", "b"]}, "gradient shares are logged every 2 steps"),
        ({"forward": object()}, "--compile is on"),
    ],
)
def test_capture_blocker_names_what_keeps_a_step_eager(overrides: dict, reason: str | None
                                                       ) -> None:
    from benchmark.run.graphs import capture_blocker

    got = capture_blocker(_fake_cuda_trainer(**overrides))
    assert got == reason if reason is None else got.startswith(reason)


#: torch 2.11's texts as the H200 run logged them: the notice given when the debug mode is switched
#: on (once a process), and the report of an operation that synchronises
PROTOTYPE_NOTICE = ("Synchronization debug mode is a prototype feature and does not yet detect all "
                    "synchronizing operations (Triggered internally at "
                    "/pytorch/torch/csrc/cuda/Module.cpp:1034.)")
SYNC_REPORT = ("called a synchronizing CUDA operation (Triggered internally at "
               "/pytorch/c10/cuda/CUDAFunctions.cpp:162.)")


def test_only_torchs_sync_report_counts_as_a_host_synchronisation() -> None:
    from benchmark.run.graphs import is_sync_warning

    assert is_sync_warning(SYNC_REPORT)
    assert not is_sync_warning(PROTOTYPE_NOTICE)
    assert not is_sync_warning("some other UserWarning")


@pytest.mark.parametrize("syncs_at", [None, 2, 3])
def test_graph_warm_up_falls_back_only_for_a_real_sync(
    monkeypatch: pytest.MonkeyPatch, syncs_at: int | None
) -> None:
    """The warm-up with torch's CUDA calls simulated on the CPU: switching the debug mode on
    warns the prototype notice (as torch does, the first time in a process); a step that
    synchronises warns the sync report. Only the report keeps the step eager; the notice is
    neither a reason nor shown again, other warnings of the step are passed on."""
    import contextlib
    import warnings as warnings_mod

    from benchmark.run import graphs as graphs_mod

    class FakeStream:
        def __init__(self, *args: object) -> None:
            pass

        def wait_stream(self, other: object) -> None:
            pass

    def set_sync_debug_mode(mode: str) -> None:
        if mode == "warn":
            warnings_mod.warn(PROTOTYPE_NOTICE, UserWarning, stacklevel=2)

    monkeypatch.setattr(torch.cuda, "Stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda *a: FakeStream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", set_sync_debug_mode)

    def compute(it: int, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        if it == syncs_at:
            warnings_mod.warn(SYNC_REPORT, UserWarning, stacklevel=2)
        warnings_mod.warn(f"unrelated warning {it}", RuntimeWarning, stacklevel=2)
        return torch.full((2,), float(it))

    lines: list[str] = []
    trainer = _fake_cuda_trainer(log=lines.append, mark=None, _compute=compute)
    runner = graphs_mod.GraphStep(trainer)
    x = torch.zeros(1)
    with warnings_mod.catch_warnings(record=True) as shown:
        warnings_mod.simplefilter("always")
        records = [runner.step(it, x, x) for it in range(1, graphs_mod.WARMUP + 1)]
    assert [float(r[0]) for r in records] == [1.0, 2.0, 3.0]
    texts = [str(w.message) for w in shown]
    assert not any("prototype" in t for t in texts)
    assert [t for t in texts if t.startswith("unrelated")] == [
        f"unrelated warning {it}" for it in range(1, graphs_mod.WARMUP + 1)]
    if syncs_at is None:
        assert not runner.eager and runner.eager_steps == graphs_mod.WARMUP and lines == []
    else:
        assert runner.eager
        assert lines == [f"CUDA graphs: not used, the step stays eager: the step synchronises "
                         f"with the host at iteration {syncs_at} ({SYNC_REPORT[:160]})"]


@pytest.mark.parametrize("recipe", ["l1", "srgan"])
def test_graph_fallback_gives_the_eager_numbers(recipe: str, planted_weights) -> None:
    """Where the step cannot be captured (here: the CPU) ``graphs=True`` trains exactly as
    without it, and the log line says why."""
    rng = np.random.default_rng(8)
    lows = [(rng.integers(0, 256, (60, 72, 3)) / 255.0).astype(np.float32) for _ in range(3)]
    highs = [np.clip(x * 3, 0, 1).astype(np.float32) for x in lows]
    records, lines = [], []
    for graphs in (False, True):
        torch.manual_seed(0)
        trainer = Trainer(
            TINY, UNet(TINY.width, TINY.depth), build_mix(load_recipe(recipe)), CPU,
            torch.Generator().manual_seed(3), (to_storage(lows, CPU), to_storage(highs, CPU)),
            ([], []), graphs=graphs, log=lines.append,
        )  # fmt: skip
        records.append(torch.stack([trainer._step(it) for it in (1, 2, 3)]))
    assert torch.equal(records[0], records[1])
    assert lines == ["CUDA graphs: not used, the step stays eager: CUDA graphs need a CUDA "
                     "device; this run is on cpu"]


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("recipe", ["l1", "flw", "ssim"])
def test_cuda_graph_step_matches_the_eager_step(recipe: str) -> None:
    """The captured step (after its eager warm-up) against the eager step on the same batches:
    loss records and final weights within float32 tolerance (the same kernels, the learning
    rate read from a float32 tensor); whether they are bit-identical is recorded."""
    from benchmark.run.determinism import configure_determinism
    from tests.loss_helpers import record_cuda_figure

    configure_determinism(torch.device("cuda"), True)
    rng = np.random.default_rng(9)
    lows = [(rng.integers(0, 256, (60, 72, 3)) / 255.0).astype(np.float32) for _ in range(4)]
    highs = [np.clip(x * 3, 0, 1).astype(np.float32) for x in lows]
    proto = Protocol(**{**TINY.to_dict(), "grad_shares": False, "iterations": 10,
                        "seeds": (0,)})
    runs, lines = [], []
    for graphs in (False, True):
        trainer = _cuda_trainer(recipe, proto, lows, highs)
        trainer.graphs, trainer.log = graphs, lines.append
        trainer.__post_init__()  # rebuild with the option (optimiser, graph runner)
        records = torch.stack([trainer._step(it) for it in range(1, 11)]).cpu()
        weights = torch.cat([p.detach().flatten() for p in trainer.model.parameters()]).cpu()
        runs.append((records, weights, trainer.graph))
    (rec_a, w_a, _), (rec_b, w_b, graph) = runs
    assert graph.graph is not None, lines  # captured
    record_cuda_figure(f"graph vs eager {recipe}", records_equal=bool(torch.equal(rec_a, rec_b)),
                       weights_equal=bool(torch.equal(w_a, w_b)),
                       max_weight_diff=float((w_a - w_b).abs().max()))
    torch.testing.assert_close(rec_b, rec_a, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(w_b, w_a, rtol=1e-4, atol=1e-6)


@pytest.mark.cuda
@needs_cuda
def test_cuda_graphs_fall_back_for_a_discriminator(planted_weights) -> None:
    rng = np.random.default_rng(10)
    lows = [(rng.integers(0, 256, (60, 72, 3)) / 255.0).astype(np.float32) for _ in range(3)]
    lines: list[str] = []
    trainer = _cuda_trainer("srgan", TINY, lows, [np.clip(x * 3, 0, 1) for x in lows])
    trainer.graphs, trainer.log = True, lines.append
    trainer.__post_init__()
    for it in range(1, 6):
        trainer._step(it)
    assert trainer.graph.graph is None
    assert lines and "the recipe trains a discriminator" in lines[0]


def test_checkpoint_of_a_captured_step_resumes_with_a_float_learning_rate() -> None:
    """A captured step keeps the learning rate in a device tensor (Adam ``capturable``); its
    checkpoint loads into a trainer that runs eagerly with a plain float again."""
    rng = np.random.default_rng(11)
    lows = [(rng.integers(0, 256, (60, 72, 3)) / 255.0).astype(np.float32) for _ in range(3)]
    highs = [np.clip(x * 3, 0, 1).astype(np.float32) for x in lows]

    def trainer() -> Trainer:
        torch.manual_seed(0)
        return Trainer(TINY, UNet(TINY.width, TINY.depth), build_mix(load_recipe("l1")), CPU,
                       torch.Generator().manual_seed(3),
                       (to_storage(lows, CPU), to_storage(highs, CPU)), ([], []))

    saved = trainer()
    saved._step(1)
    for group in saved.opt.param_groups:  # what GraphStep._capture leaves in the optimiser
        group["lr"], group["capturable"] = torch.tensor(5e-4), True
    ckpt = saved.state_dict()
    resumed = trainer()
    resumed.load_state_dict(ckpt)
    group = resumed.opt.param_groups[0]
    assert type(group["lr"]) is float and group["capturable"] is False
    assert group["lr"] == pytest.approx(5e-4)
    assert torch.isfinite(resumed._step(2)).all()

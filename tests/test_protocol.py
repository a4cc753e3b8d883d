"""Protocol profiles: resolution of ``auto``, the schedule, what each profile admits."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from benchmark import cli, protocol
from benchmark.errors import UserError
from benchmark.protocol import PRECISIONS, PROFILES, Protocol, resolve_precision, resolve_profile
from benchmark.recipes import mix as recipes


def test_auto_is_quick_on_cpu_and_paper_on_cuda_and_says_so() -> None:
    proto, message = resolve_profile("auto", "cpu")
    assert proto is PROFILES["quick"]
    assert "profile auto -> quick" in message and "no CUDA" in message
    proto, message = resolve_profile("auto", "cuda")
    assert proto is PROFILES["paper"]
    assert "profile auto -> paper (CUDA is available" in message


def test_named_profiles_resolve_to_themselves() -> None:
    for name in ("smoke", "quick", "lite", "paper"):
        proto, message = resolve_profile(name, "cpu")
        assert proto.name == name
        assert f"profile {name}: {proto.iterations} iterations" in message


def test_unknown_profile_is_a_user_error_with_a_suggestion() -> None:
    with pytest.raises(UserError, match=r"--profile: unknown profile 'quik'; did you mean 'quick'"):
        resolve_profile("quik", "cpu")


def test_profiles_grow_from_smoke_to_paper() -> None:
    smoke, quick, paper = PROFILES["smoke"], PROFILES["quick"], PROFILES["paper"]
    for field in ("width", "patch", "iterations"):
        assert getattr(smoke, field) < getattr(quick, field) < getattr(paper, field)
    assert paper.eval_resolution == "full" and quick.eval_resolution == "full"
    for proto in (smoke, quick, paper):
        assert proto.precision == "auto" and proto.channels_last
    assert paper.deterministic
    assert quick.patch >= 176  # admits ms_ssim (needs > 160 px)
    lite = PROFILES["lite"]
    assert quick.iterations < lite.iterations < paper.iterations
    assert lite.patch >= 176 and lite.n_val >= 30 > quick.n_val  # docs/PROTOCOL.md: why 30


@pytest.mark.parametrize("name", ["smoke", "quick", "lite", "paper"])
def test_cadences_line_up(name: str) -> None:
    p = PROFILES[name]
    # the last iteration is always validated and checkpointed; intermediate ones divide evenly
    assert p.iterations % p.ckpt_every == 0
    assert p.iterations % p.val_every == 0
    assert p.iterations % p.log_every == 0
    assert p.warmup < p.iterations


def test_schedule_warmup_then_cosine_to_min_lr() -> None:
    p = PROFILES["quick"]
    lrs = [p.lr_at(i) for i in range(1, p.iterations + 1)]
    assert lrs[0] == pytest.approx(p.lr / p.warmup, rel=1e-12)
    assert lrs[p.warmup - 1] == pytest.approx(p.lr, rel=1e-12)
    after = lrs[p.warmup - 1 :]
    assert all(a >= b for a, b in zip(after, after[1:], strict=False))
    assert lrs[-1] == pytest.approx(p.min_lr, rel=1e-12)
    # half way through the decay: the cosine midpoint
    mid = p.warmup + (p.iterations - p.warmup) // 2
    expect = p.min_lr + 0.5 * (p.lr - p.min_lr) * (1 + math.cos(math.pi * 0.5))
    assert p.lr_at(mid) == pytest.approx(expect, rel=1e-9)


def test_to_dict_is_json_ready_and_round_trips() -> None:
    for proto in PROFILES.values():
        d = proto.to_dict()
        json.dumps(d, allow_nan=False)
        assert Protocol(**{**d, "seeds": tuple(d["seeds"])}) == proto


def test_protocol_is_frozen_and_validated() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PROFILES["smoke"].iterations = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="Protocol smoke: batch must be >= 1"):
        dataclasses.replace(PROFILES["smoke"], batch=0)
    with pytest.raises(ValueError, match="eval_resolution must be 'full' or an int >= 16"):
        dataclasses.replace(PROFILES["smoke"], eval_resolution="half")


def test_smoke_refuses_ms_ssim_and_quick_admits_it() -> None:
    recipe = recipes.load_recipe("ms_ssim")
    mix = recipes.build_mix(recipe)
    with pytest.raises(UserError, match=r"recipes/ms_ssim.yaml: losses\[0\] \(ms_ssim\).*64x64"):
        recipes.check_recipe_for_protocol(recipe, mix, PROFILES["smoke"].patch)
    recipes.check_recipe_for_protocol(recipe, mix, PROFILES["quick"].patch)
    recipes.check_recipe_for_protocol(recipe, mix, PROFILES["paper"].patch)


# -- precision ---------------------------------------------------------------------------------

CPU = torch.device("cpu")


@pytest.mark.parametrize(("native", "chosen"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_follows_native_bf16_and_says_so(monkeypatch, native, chosen) -> None:
    monkeypatch.setattr(protocol, "native_bf16", lambda device: native)
    proto, line = resolve_precision(PROFILES["quick"], CPU)
    assert proto.precision == chosen
    assert dataclasses.replace(proto, precision="auto") == PROFILES["quick"]  # nothing else moved
    assert line.startswith(f"precision auto -> {chosen} (")
    assert ("natively" in line) == native


def test_explicit_precision_wins_and_emulated_bf16_is_flagged(monkeypatch) -> None:
    monkeypatch.setattr(protocol, "native_bf16", lambda device: False)
    proto, line = resolve_precision(PROFILES["smoke"], CPU, "bf16")
    assert proto.precision == "bf16" and "emulated" in line
    monkeypatch.setattr(protocol, "native_bf16", lambda device: True)
    proto, line = resolve_precision(PROFILES["smoke"], CPU, "fp32")
    assert (proto.precision, line) == ("fp32", "precision fp32")


def test_bad_precision_is_a_user_error(monkeypatch) -> None:
    with pytest.raises(UserError, match=r"--precision: unknown precision 'bf61'; did you mean"):
        resolve_precision(PROFILES["smoke"], CPU, "bf61")
    with pytest.raises(ValueError, match="precision must be one of auto, bf16, fp32"):
        Protocol(**{**PROFILES["smoke"].to_dict(), "precision": "fp16", "seeds": (0,)})
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(UserError, match="does not support bfloat16; use --precision fp32"):
        resolve_precision(PROFILES["paper"], torch.device("cuda"), "bf16")


def test_native_bf16_reads_the_cpu_flags(monkeypatch) -> None:
    for avx, amx, want in [(True, False, True), (False, True, True), (False, False, False)]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert protocol.native_bf16(CPU) is want
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")  # a torch without the probe
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert protocol.native_bf16(CPU) is False


def test_cli_precision_choices_match_the_protocol() -> None:
    assert cli.PRECISIONS == PRECISIONS


def test_profile_tables_in_the_docs_are_the_generated_ones() -> None:
    """docs/USAGE.md and docs/PROTOCOL.md show `python -m benchmark profiles` verbatim."""
    from pathlib import Path

    from benchmark.run.command import profiles_markdown

    root = Path(__file__).resolve().parents[1]
    table = profiles_markdown()
    for doc in ("docs/USAGE.md", "docs/PROTOCOL.md"):
        assert table in (root / doc).read_text(encoding="utf-8"), doc

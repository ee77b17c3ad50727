"""Tests for vidssl.data.transforms: batched, clip-consistent video augmentations.

Agreement with torchvision: our batched kernels are compared with
``torchvision.transforms.v2.functional`` applied clip by clip (or frame by frame) with the same
parameters, on float32 clips in [0, 1], to ``ATOL = 1e-5`` (blends, grayscale, solarize: the
same float ops; blur: separable vs torchvision's 2-D kernel; hue: a fused formula vs the HSV
round trip, both ~1e-6 in practice). Whole-ColorJitter chains use ``1e-4`` (clamps between ops
can amplify rounding).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import vidssl.data.transforms as T
from vidssl.data.transforms import functional as F

ATOL = 1e-5
CHAIN_ATOL = 1e-4


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rand_u8(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen(seed))


def rand_f(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(shape, generator=gen(seed))


def static_clip_batch(b: int = 4, t: int = 5, h: int = 24, w: int = 32, seed: int = 0) -> torch.Tensor:
    """uint8 (B, T, 3, H, W) whose T frames are identical within each clip."""
    frames = rand_u8(b, 1, 3, h, w, seed=seed)
    return frames.expand(b, t, 3, h, w).contiguous()


def without_tail(pipe: T.Compose) -> T.Compose:
    """The pipeline minus Normalize and ToModelLayout (values still in [0, 1], (B, T, C, H, W))."""
    steps = [s for s in pipe.transforms if not isinstance(s, (T.Normalize, T.ToModelLayout))]
    return T.Compose(steps)


PRESETS = {
    "cvrl0": lambda: T.cvrl_augment(32, 0),
    "cvrl1": lambda: T.cvrl_augment(32, 1),
    "dpc": lambda: T.dpc_augment(32),
    "eval": lambda: T.eval_transform(32),
}


# ----------------------------------------------------------------------------- shapes, dtypes


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_shapes_dtype_range(name: str) -> None:
    x = rand_u8(3, 6, 3, 40, 56)
    pipe = PRESETS[name]()
    y = pipe(x, generator=gen(1))
    assert y.shape == (3, 3, 6, 32, 32) and y.dtype == torch.float32 and y.is_contiguous()
    assert torch.isfinite(y).all()
    z = F.to_float(without_tail(pipe)(x, generator=gen(1)))  # eval's resize + crop keep uint8
    assert z.shape == (3, 6, 3, 32, 32)
    assert z.min() >= 0.0 and z.max() <= 1.0
    # The tail is exactly normalise + permute.
    mean = torch.tensor(T.KINETICS_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(T.KINETICS_STD).view(1, 3, 1, 1, 1)
    torch.testing.assert_close(y, (z.permute(0, 2, 1, 3, 4) - mean) / std, atol=ATOL, rtol=0)


def test_single_clip_input_and_float64_and_no_grad() -> None:
    clip = rand_u8(4, 3, 36, 36)
    with torch.no_grad():
        y = T.cvrl_augment(16, 1)(clip, generator=gen())
    assert y.shape == (3, 4, 16, 16)
    x64 = rand_f(2, 4, 3, 20, 20).double()
    for step in (T.ColorJitter(0.4, 0.4, 0.4, 0.1), T.GaussianBlur(5), T.RandomGrayscale(1.0),
                 T.RandomSolarize(p=1.0), T.RandomResizedCrop(12), T.Normalize()):
        assert step(x64, generator=gen()).dtype == torch.float64, step


def test_uint8_kept_by_geometric_steps() -> None:
    x = rand_u8(2, 3, 3, 30, 40)
    assert T.Resize(20)(x).dtype == torch.uint8
    assert T.Resize(20)(x).shape == (2, 3, 3, 20, 26)  # torchvision truncates 26.67
    assert T.Resize((10, 12))(x).shape == (2, 3, 3, 10, 12)
    assert T.CenterCrop(16)(x).dtype == torch.uint8
    torch.testing.assert_close(T.CenterCrop((10, 20))(x), x[..., 10:20, 10:30])
    assert T.RandomHorizontalFlip()(x).dtype == torch.uint8
    out = T.RandomResizedCrop(16, backend="per_clip")(x, generator=gen())
    assert out.dtype == torch.uint8 and out.shape == (2, 3, 3, 16, 16)
    assert T.RandomResizedCrop(16)(x, generator=gen()).dtype == torch.float32
    assert T.ToFloat()(x).dtype == torch.float32


# ----------------------------------------------------------------------------- consistency


@pytest.mark.parametrize("name", ["cvrl0", "cvrl1"])
def test_identical_frames_stay_identical(name: str) -> None:
    x = static_clip_batch(b=6, t=5)
    y = PRESETS[name]()(x, generator=gen(3))  # (B, C, T, H, W)
    for t in range(1, 5):
        torch.testing.assert_close(y[:, :, t], y[:, :, 0], atol=1e-6, rtol=0)


def test_clips_get_different_params() -> None:
    clip = rand_u8(1, 4, 3, 32, 32)
    x = clip.expand(8, -1, -1, -1, -1).contiguous()  # the same clip 8 times
    y, params = T.cvrl_augment(24, 0).forward_with_params(x, generator=gen(5))
    boxes = params[0]["boxes"]
    assert len({tuple(b.tolist()) for b in boxes}) > 1
    flat = y.flatten(1)
    assert all(not torch.allclose(flat[0], flat[i]) for i in range(1, 8))


def test_per_frame_colour_differs_between_frames() -> None:
    x = static_clip_batch(b=3, t=6)
    cj = T.ColorJitter(0.5, 0.5, 0.5, 0.25, per_frame=True)
    params = cj.sample_params(tuple(x.shape), gen(2))
    assert params["brightness"].shape == (3, 6) and params["order"].shape == (3, 6, 4)
    y = cj.apply(x, params)
    for b in range(3):
        assert not torch.allclose(y[b, 0], y[b, 1])
    gray = T.RandomGrayscale(0.5, per_frame=True)
    assert gray.sample_params((3, 6, 3, 8, 8), gen())["applied"].shape == (3, 6)


def test_dpc_shares_crop_but_not_colour() -> None:
    x = static_clip_batch(b=3, t=6, h=40, w=40)
    y, params = T.dpc_augment(24).forward_with_params(x, generator=gen(4))
    assert params[0]["boxes"].shape == (3, 4) and params[1]["flip"].shape == (3,)
    assert params[2]["applied"].shape == (3, 6) and params[3]["hue"].shape == (3, 6)
    assert not torch.allclose(y[:, :, 0], y[:, :, 1])
    # Same pipeline without the per-frame colour steps keeps the frames identical.
    steps = T.dpc_augment(24).transforms
    spatial = T.Compose([step for i, step in enumerate(steps) if i not in (2, 3)])
    z = spatial(x, generator=gen(4))
    torch.testing.assert_close(z[:, :, 1:], z[:, :, :1].expand_as(z[:, :, 1:]), atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------- reproducibility


def test_seeded_generator_reproduces() -> None:
    x = rand_u8(4, 3, 3, 36, 48)
    a = T.cvrl_augment(24, 1)(x, generator=gen(11))
    b = T.cvrl_augment(24, 1)(x, generator=gen(11))
    c = T.cvrl_augment(24, 1)(x, generator=gen(12))
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert not torch.allclose(a, c)
    # The pipeline's own generator, and torch's global one.
    d = T.cvrl_augment(24, 1, generator=gen(11))(x)
    torch.testing.assert_close(a, d, atol=0, rtol=0)
    torch.manual_seed(7)
    e = T.cvrl_augment(24, 1)(x)
    torch.manual_seed(7)
    f = T.cvrl_augment(24, 1)(x)
    torch.testing.assert_close(e, f, atol=0, rtol=0)


def test_replay_params_and_deepcopy() -> None:
    x = rand_u8(3, 4, 3, 40, 40)
    pipe = T.cvrl_augment(24, 0)
    y, params = pipe.forward_with_params(x, generator=gen(1))
    torch.testing.assert_close(pipe.apply(x, params), y, atol=0, rtol=0)
    # A spatial draw replayed on a stream of another resolution (CoCLR: RGB and flow).
    spatial = T.Compose([T.RandomResizedCrop(16), T.RandomHorizontalFlip()])
    a, p = spatial.forward_with_params(x, generator=gen(2))
    b = spatial.apply(F.to_float(x)[..., ::2, ::2], p)
    assert b.shape == a.shape
    copy.deepcopy(T.cvrl_augment(24, 0, generator=gen()))  # modules holding a generator copy fine


def test_cpu_chunking_does_not_change_result() -> None:
    x = rand_u8(5, 4, 3, 30, 30)
    for make in (lambda: T.cvrl_augment(16, 1), lambda: T.dpc_augment(16), lambda: T.eval_transform(16)):
        chunked, whole = make(), make()
        chunked.cpu_chunk_elems, whole.cpu_chunk_elems = 1, None  # one clip per chunk vs one batch
        torch.testing.assert_close(chunked(x, generator=gen(3)), whole(x, generator=gen(3)), atol=0, rtol=0)


# ----------------------------------------------------------------------------- geometry


def test_flip_hand_made_clip() -> None:
    row = torch.arange(5, dtype=torch.uint8)
    x = row.view(1, 1, 1, 1, 5).expand(4, 2, 3, 2, 5).contiguous()
    flip = T.RandomHorizontalFlip(p=0.5)
    params = {"flip": torch.tensor([True, False, True, False])}
    y = flip.apply(x, params)
    assert y[0, 1, 2, 1].tolist() == [4, 3, 2, 1, 0] and y[1, 1, 2, 1].tolist() == [0, 1, 2, 3, 4]
    torch.testing.assert_close(y[2], x[2].flip(-1))
    torch.testing.assert_close(T.RandomHorizontalFlip(p=1.0)(x), x.flip(-1))
    torch.testing.assert_close(T.RandomHorizontalFlip(p=0.0)(x), x)


def test_random_resized_crop_full_box_is_identity_resize() -> None:
    x = rand_f(2, 3, 3, 20, 20)
    same = T.RandomResizedCrop(20, scale=(1.0, 1.0), ratio=(1.0, 1.0))(x, generator=gen())
    torch.testing.assert_close(same, x, atol=ATOL, rtol=0)
    up = T.RandomResizedCrop(30, scale=(1.0, 1.0), ratio=(1.0, 1.0))(x, generator=gen())
    ref = TF.resize(x.flatten(0, 1), [30, 30], antialias=False).view(2, 3, 3, 30, 30)
    torch.testing.assert_close(up, ref, atol=ATOL, rtol=0)


def test_resized_crop_samples_box_geometry() -> None:
    # Bilinear sampling reproduces a linear ramp exactly: each output pixel holds the ramp's
    # value at its sample point inside the box.
    h, w = 40, 50
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    ramp = (xx + 100 * yy).expand(2, 3, 3, h, w)
    boxes = torch.tensor([[5.0, 7.0, 20.0, 30.0], [10.0, 3.0, 24.0, 12.0]])  # (top, left, h, w)
    out = F.resized_crop(ramp, boxes, (8, 6))
    for b, (top, left, bh, bw) in enumerate(boxes.tolist()):
        sy = top + (torch.arange(8) + 0.5) * bh / 8 - 0.5
        sx = left + (torch.arange(6) + 0.5) * bw / 6 - 0.5
        expected = sx[None, :] + 100 * sy[:, None]
        torch.testing.assert_close(out[b, 1, 2], expected, atol=1e-3, rtol=0)


def test_random_resized_crop_params() -> None:
    rrc = T.RandomResizedCrop(16, scale=(0.3, 1.0), ratio=(0.5, 2.0))
    boxes = rrc.sample_params((500, 1, 3, 60, 80), gen(9))["boxes"]
    top, left, bh, bw = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + bh <= 60).all() and (left + bw <= 80).all()
    area = bh * bw / (60 * 80)
    assert area.min() > 0.28 and area.max() <= 1.0
    aspect = bw / bh
    assert aspect.min() > 0.45 and aspect.max() < 2.2
    assert (boxes == boxes.round()).all()
    # No valid try (aspect 1 box of the full area on a 2:1 frame): torchvision's centre fallback.
    square = T.RandomResizedCrop(8, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    fallback = square.sample_params((2, 1, 3, 8, 16), gen())
    assert fallback["boxes"].tolist() == [[0.0, 4.0, 8.0, 8.0]] * 2


def test_random_resized_crop_backends_agree_when_upsampling() -> None:
    # A smooth image, boxes smaller than the output: antialiasing is inactive and both backends
    # sample the same points (they differ at box edges by how they clamp, hence the tolerance).
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 48), indexing="ij")
    img = torch.stack([xx, yy, (xx + yy) / 2]).mul(255).round().to(torch.uint8)
    x = img.expand(3, 2, 3, 48, 48).contiguous()
    grid = T.RandomResizedCrop(64, scale=(0.3, 0.6))
    per_clip = T.RandomResizedCrop(64, scale=(0.3, 0.6), backend="per_clip")
    params = grid.sample_params(tuple(x.shape), gen(1))
    a = grid.apply(x, params)
    b = per_clip.apply(x, params).float() / 255
    assert (a - b).abs().max() < 0.03


# ----------------------------------------------------------------------------- torchvision agreement


@pytest.mark.parametrize("per_frame", [False, True])
@pytest.mark.parametrize(
    "ours, theirs, lo, hi",
    [
        (F.adjust_brightness, TF.adjust_brightness, 0.2, 1.8),
        (F.adjust_contrast, TF.adjust_contrast, 0.2, 1.8),
        (F.adjust_saturation, TF.adjust_saturation, 0.2, 1.8),
        (F.adjust_hue, TF.adjust_hue, -0.5, 0.5),
    ],
)
def test_colour_kernels_match_torchvision(ours, theirs, lo, hi, per_frame: bool) -> None:
    b, t = 4, 3
    x = rand_f(b, t, 3, 12, 14, seed=1)
    x[0, 0, :, :3, :3] = 0.5  # grey pixels (hue undefined)
    x[1, 0, :, 0, 0] = torch.tensor([0.3, 0.3, 0.1])  # ties between channels
    factor = rand_f(*((b, t) if per_frame else (b,)), seed=2) * (hi - lo) + lo
    y = ours(x, factor)
    for i in range(b):
        if per_frame:
            ref = torch.stack([theirs(x[i, j], float(factor[i, j])) for j in range(t)])
        else:
            ref = theirs(x[i], float(factor[i]))
        torch.testing.assert_close(y[i], ref, atol=ATOL, rtol=0)


def test_grayscale_and_solarize_match_torchvision() -> None:
    x = rand_f(4, 3, 3, 10, 10)
    gray = T.RandomGrayscale(p=0.5)
    params = {"applied": torch.tensor([True, False, True, False]), "channel": torch.zeros(4).long()}
    y = gray.apply(x, params)
    for i in range(4):
        ref = TF.rgb_to_grayscale(x[i], num_output_channels=3) if params["applied"][i] else x[i]
        torch.testing.assert_close(y[i], ref, atol=ATOL, rtol=0)
    sol = T.RandomSolarize(threshold=0.6, p=0.5)
    y = sol.apply(x, {"applied": torch.tensor([False, True, True, False])})
    for i in range(4):
        ref = TF.solarize(x[i], 0.6) if i in (1, 2) else x[i]
        torch.testing.assert_close(y[i], ref, atol=ATOL, rtol=0)


def test_grayscale_channel_mode_per_frame() -> None:
    x = rand_f(2, 4, 3, 6, 6)
    gray = T.RandomGrayscale(p=1.0, per_frame=True, mode="channel")
    params = gray.sample_params(tuple(x.shape), gen(3))
    y = gray.apply(x, params)
    for i in range(2):
        for j in range(4):
            c = int(params["channel"][i, j])
            torch.testing.assert_close(y[i, j], x[i, j, c : c + 1].expand(3, -1, -1))


def test_blur_matches_torchvision_per_clip() -> None:
    x = rand_f(5, 3, 3, 20, 18)
    blur = T.GaussianBlur(7, sigma=(0.1, 2.0), p=0.5)
    params = blur.sample_params(tuple(x.shape), gen(8))
    params["applied"] = torch.tensor([True, False, True, True, False])
    y = blur.apply(x, params)
    for i in range(5):
        s = float(params["sigma"][i])
        ref = TF.gaussian_blur(x[i], [7, 7], [s, s]) if params["applied"][i] else x[i]
        torch.testing.assert_close(y[i], ref, atol=ATOL, rtol=0)
    # SimCLR/CVRL kernel size rule.
    assert T.blur_kernel_size(224) == 23 and T.blur_kernel_size(112) == 11


def test_cvrl_blur_sigma_scales_with_the_crop() -> None:
    """CVRL's blur values are for 224 px: by default the sigma range (and so every drawn sigma)
    at 48 px is 48/224 of the one at 224 px; ``blur_sigma="fixed"`` keeps (0.1, 2.0)."""
    def blur_of(pipeline):
        return next(t for t in pipeline.transforms if isinstance(t, T.GaussianBlur))

    big, small = blur_of(T.cvrl_augment(224, 0)), blur_of(T.cvrl_augment(48, 0))
    assert big.sigma == pytest.approx((0.1, 2.0))
    assert small.sigma == pytest.approx((0.1 * 48 / 224, 2.0 * 48 / 224))
    assert (big.kernel_size, small.kernel_size) == (23, 5)
    s_big = big.sample_params((6, 4, 3, 8, 8), gen(3))["sigma"]
    s_small = small.sample_params((6, 4, 3, 8, 8), gen(3))["sigma"]
    torch.testing.assert_close(s_small, s_big * 48 / 224)
    assert blur_of(T.cvrl_augment(48, 1, blur_sigma="fixed")).sigma == pytest.approx((0.1, 2.0))
    with pytest.raises(ValueError, match="blur_sigma"):
        T.cvrl_augment(48, 0, blur_sigma="tf")


def reference_jitter(frames: torch.Tensor, params: dict, index: tuple) -> torch.Tensor:
    """torchvision ops in the drawn order, for one clip (index=(b,)) or one frame (index=(b, t))."""
    if not bool(params["applied"][index]):
        return frames
    ops = {0: TF.adjust_brightness, 1: TF.adjust_contrast, 2: TF.adjust_saturation, 3: TF.adjust_hue}
    names = ("brightness", "contrast", "saturation", "hue")
    for op in params["order"][index].tolist():
        frames = ops[op](frames, float(params[names[op]][index]))
    return frames


@pytest.mark.parametrize("per_frame", [False, True])
@pytest.mark.parametrize("hue", [0.0, 0.3])
def test_color_jitter_random_order_matches_torchvision(per_frame: bool, hue: float) -> None:
    b, t = 8, 3
    x = rand_f(b, t, 3, 10, 12, seed=4)
    cj = T.ColorJitter(0.8, 0.8, 0.8, hue, p=0.7, per_frame=per_frame)
    params = cj.sample_params(tuple(x.shape), gen(6))
    assert params["order"].shape[-1] == (4 if hue else 3)
    y = cj.apply(x, params)
    for i in range(b):
        if per_frame:
            ref = torch.stack([reference_jitter(x[i, j], params, (i, j)) for j in range(t)])
        else:
            ref = reference_jitter(x[i], params, (i,))
        torch.testing.assert_close(y[i], ref, atol=CHAIN_ATOL, rtol=0)
    # Orders vary between clips (8 clips, 24 or 6 orders).
    orders = params["order"].reshape(-1, params["order"].shape[-1])
    assert len({tuple(o.tolist()) for o in orders}) > 1


def test_normalize_and_layout() -> None:
    x = rand_u8(2, 3, 3, 4, 5)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 0.125)
    y = T.Normalize(mean, std)(x)
    ref = (x.float() / 255 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    torch.testing.assert_close(y, ref, atol=ATOL, rtol=0)
    z = T.ToModelLayout()(y)
    assert z.shape == (2, 3, 3, 4, 5) and z.is_contiguous()
    torch.testing.assert_close(z[:, 1, 2], y[:, 2, 1])
    assert T.Normalize().mean == T.KINETICS_MEAN


def test_eval_transform_is_deterministic_center_crop() -> None:
    x = rand_u8(2, 3, 3, 64, 80)
    pipe = T.eval_transform(48)
    y = pipe(x)
    torch.testing.assert_close(y, pipe(x), atol=0, rtol=0)
    assert y.shape == (2, 3, 3, 48, 48)
    resized = TF.resize(x.flatten(0, 1), [55], antialias=True)  # round(48 * 8 / 7) = 55
    cropped = TF.center_crop(resized, [48, 48]).float() / 255
    ref = TF.normalize(cropped, list(T.KINETICS_MEAN), list(T.KINETICS_STD))
    torch.testing.assert_close(y.permute(0, 2, 1, 3, 4).flatten(0, 1), ref, atol=ATOL, rtol=0)


# ----------------------------------------------------------------------------- ResizeClip


def test_resize_clip() -> None:
    clip = rand_u8(4, 3, 90, 120)
    out = T.ResizeClip(60)(clip)
    assert out.shape == (4, 3, 60, 80) and out.dtype == torch.uint8
    torch.testing.assert_close(out, TF.resize(clip, [60], antialias=True))
    assert T.ResizeClip((32, 40))(clip).shape == (4, 3, 32, 40)
    assert T.ResizeClip(64, crop_size=56)(clip).shape == (4, 3, 56, 56)
    assert T.ResizeClip(64, crop_size=(50, 60))(clip).shape == (4, 3, 50, 60)
    with pytest.raises(ValueError, match="one clip"):
        T.ResizeClip(64)(clip[None])
    import pickle

    assert pickle.loads(pickle.dumps(T.ResizeClip(64, 56))).crop_size == [56, 56]


# ----------------------------------------------------------------------------- validation


def test_argument_validation() -> None:
    with pytest.raises(ValueError):
        T.GaussianBlur(4)
    with pytest.raises(ValueError):
        T.RandomHorizontalFlip(p=1.5)
    with pytest.raises(ValueError):
        T.ColorJitter(hue=0.7)
    with pytest.raises(ValueError):
        T.RandomResizedCrop(16, scale=(0.5, 0.2))
    with pytest.raises(ValueError):
        T.cvrl_augment(16, view=2)
    with pytest.raises(TypeError):
        T.RandomHorizontalFlip(generator=123)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        T.Compose([lambda x: x])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="batch"):
        T.ToFloat()(torch.zeros(3, 4, 4, dtype=torch.uint8))
    with pytest.raises(TypeError):
        F.to_float(torch.zeros(1, 1, 3, 2, 2, dtype=torch.int32))


@settings(max_examples=15, deadline=None)
@given(
    b=st.integers(1, 3), t=st.integers(1, 4), h=st.integers(8, 20), w=st.integers(8, 20),
    seed=st.integers(0, 2**31 - 1), per_frame=st.booleans(),
)
def test_colour_steps_keep_range_and_shape(
    b: int, t: int, h: int, w: int, seed: int, per_frame: bool
) -> None:
    x = rand_u8(b, t, 3, h, w, seed=seed)
    pipe = T.Compose([
        T.ColorJitter(0.8, 0.8, 0.8, 0.5, p=0.8, per_frame=per_frame),
        T.RandomGrayscale(0.5, per_frame=per_frame),
        T.GaussianBlur(5, p=0.5),
        T.RandomSolarize(0.5, p=0.5),
    ])
    y = pipe(x, generator=gen(seed))
    assert y.shape == x.shape and y.dtype == torch.float32
    assert y.min() >= 0.0 and y.max() <= 1.0


# ----------------------------------------------------------------------------- CUDA


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_cuda_matches_cpu(name: str) -> None:
    x = rand_u8(4, 5, 3, 40, 48)
    cpu = PRESETS[name]()(x, generator=gen(21))
    with torch.no_grad():
        cuda = PRESETS[name]()(x.cuda(), generator=gen(21))  # CPU generator: same parameters
    assert cuda.device.type == "cuda" and cuda.dtype == torch.float32
    torch.testing.assert_close(cuda.cpu(), cpu, atol=1e-3, rtol=0)


# ----------------------------------------------------------------------------- multi-scale crop (VideoMAE)


def test_multiscale_crop_pairs_offsets_and_boxes() -> None:
    msc = T.MultiScaleCrop(224, (1.0, 0.875, 0.75, 0.66), max_distort=1)
    # short side 256: sides 256, 224, 192, 168 (224 snaps to the output size within 3 px)
    pairs = msc.crop_pairs(256, 340)
    assert (256, 256) in pairs and (224, 192) in pairs and (168, 192) in pairs
    assert (256, 168) not in pairs                                 # |i - j| <= max_distort
    assert len(pairs) == 4 + 3 + 3
    assert len(msc.offsets(256, 340, 224, 224)) == 13
    assert len(T.MultiScaleCrop(224, more_fix_crop=False).offsets(256, 340, 224, 224)) == 5
    params = msc.sample_params((400, 2, 3, 256, 340), gen(4))
    boxes = params["boxes"]
    top, left, bh, bw = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + bh <= 256).all() and (left + bw <= 340).all()
    assert {(int(w), int(h)) for h, w in zip(bh, bw)} == set(pairs)     # every allowed pair is drawn
    for (t, l, h, w) in boxes.tolist()[:50]:                              # only the fixed offsets
        assert (int(l), int(t)) in msc.offsets(256, 340, int(h), int(w))


def test_multiscale_crop_output_and_one_draw_per_clip() -> None:
    x = static_clip_batch(b=3, t=4, h=40, w=48)
    out = T.MultiScaleCrop(32)(x, generator=gen(2))
    assert out.shape == (3, 4, 3, 32, 32) and out.dtype == torch.float32
    assert torch.equal(out[:, :1].expand_as(out), out), "every frame of a clip gets the same crop"
    # the full frame at scale 1 (and no distortion) is a plain resize
    full = T.MultiScaleCrop(40, scales=(1.0,), max_distort=0)(x[..., :40, :40], generator=gen())
    torch.testing.assert_close(full, x[..., :40, :40].float() / 255, atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match="scales"):
        T.MultiScaleCrop(32, scales=(1.5,))
    with pytest.raises(ValueError, match="max_distort"):
        T.MultiScaleCrop(32, max_distort=-1)

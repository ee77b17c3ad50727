"""Property tests for the clip samplers: ranges, lengths, targets, determinism, short videos."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidssl.data.samplers import (
    SAMPLERS,
    ClipSampler,
    CoTrainingPairSampler,
    CVRLIntervalSampler,
    DPCBlockSampler,
    OddOneOutSampler,
    RandomClipSampler,
    SampledClips,
    ShuffleLearnSampler,
    TCLRSampler,
    UniformMultiClipSampler,
    VCOPSampler,
    apply_short_video_rule,
    create_sampler,
    cvrl_interval_cdf,
    cvrl_interval_quantile,
    id_from_permutation,
    permutation_from_id,
)
from vidssl.errors import ConfigError

PROPERTY = settings(max_examples=50, deadline=None)
FPS = 25.0

video_lengths = st.integers(min_value=1, max_value=400)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
rules = st.sampled_from(["pad", "loop"])


@st.composite
def tclr_kwargs(draw: st.DrawFn) -> dict:
    num_frames = draw(st.integers(1, 20))
    global_stride = draw(st.integers(1, 5))
    span = num_frames * global_stride
    num_local = draw(st.sampled_from([d for d in range(1, 9) if span % d == 0]))
    local_len = draw(st.one_of(st.none(), st.integers(1, span // num_local)))
    return dict(
        num_frames=num_frames, global_stride=global_stride, num_local=num_local, local_len=local_len
    )


@st.composite
def shuffle_learn_kwargs(draw: st.DrawFn) -> dict:
    min_gap = draw(st.integers(1, 5))
    return dict(
        tuple_len=draw(st.integers(3, 5)),
        min_gap=min_gap,
        max_gap=draw(st.integers(min_gap, 20)),
        positive_prob=draw(st.floats(0.0, 1.0)),
    )


KWARGS = {
    "random_clip": st.fixed_dictionaries(
        {"num_frames": st.integers(1, 32), "stride": st.integers(1, 4)}
    ),
    "uniform_multi_clip": st.fixed_dictionaries(
        {
            "num_frames": st.integers(1, 32),
            "stride": st.integers(1, 3),
            "num_clips": st.integers(1, 12),
        }
    ),
    "cvrl": st.fixed_dictionaries(
        {
            "num_frames": st.integers(1, 32),
            "stride": st.integers(1, 4),
            "power": st.floats(0.1, 5.0),
        }
    ),
    "tclr": tclr_kwargs(),
    "vcop": st.fixed_dictionaries(
        {
            "clip_len": st.integers(1, 20),
            "interval": st.integers(0, 12),
            "num_clips": st.integers(2, 4),
        }
    ),
    "shuffle_learn": shuffle_learn_kwargs(),
    "o3n": st.fixed_dictionaries(
        {
            "num_elements": st.integers(2, 7),
            "element_len": st.integers(2, 10),
            "window_scale": st.floats(1.0, 2.5),
        }
    ),
    "dpc": st.fixed_dictionaries(
        {
            "num_blocks": st.integers(1, 8),
            "block_len": st.integers(1, 6),
            "frame_step": st.integers(1, 4),
        }
    ),
    "cotrain": st.fixed_dictionaries(
        {
            "num_frames": st.integers(1, 40),
            "stride": st.integers(1, 3),
            "same_clip_prob": st.floats(0.0, 1.0),
            "modality": st.sampled_from(["residual", "flow", "flow_video"]),
            "extra_frame": st.sampled_from([None, True, False]),
        }
    ),
    "global_local": st.fixed_dictionaries(
        {
            "num_global": st.integers(1, 3),
            "global_frames": st.integers(1, 16),
            "global_stride": st.integers(1, 8),
            "num_local": st.integers(0, 6),
            "local_frames": st.integers(1, 8),
            "local_stride": st.integers(1, 4),
        }
    ),
}


def draw_sample(sampler: ClipSampler, num_frames: int, seed: int) -> SampledClips:
    return sampler(num_frames, FPS, np.random.default_rng(seed))


def non_decreasing(view: np.ndarray) -> bool:
    return bool(np.all(np.diff(view) >= 0))


def strictly_increasing(values: np.ndarray) -> bool:
    return bool(np.all(np.diff(values) > 0))


def assert_same(a: SampledClips, b: SampledClips) -> None:
    assert a.names == b.names
    assert all(np.array_equal(x, y) for x, y in zip(a.views, b.views, strict=True))
    assert a.targets.keys() == b.targets.keys()
    assert all(np.array_equal(a.targets[k], b.targets[k]) for k in a.targets)
    assert dict(a.info) == dict(b.info)


def check_contract(sampler: ClipSampler, out: SampledClips, num_frames: int) -> None:
    assert isinstance(out, SampledClips)
    assert out.names == sampler.view_names
    assert tuple(len(v) for v in out.views) == sampler.view_lengths
    for view in out.views:
        assert view.dtype == np.int64 and view.ndim == 1
        assert view.min() >= 0 and view.max() < num_frames


# ---------------------------------------------------------------- contract, for every sampler


def test_registry_holds_every_sampler() -> None:
    assert set(SAMPLERS) == set(KWARGS)


@pytest.mark.parametrize("name", sorted(KWARGS))
@PROPERTY
@given(data=st.data(), num_frames=video_lengths, seed=seeds, rule=rules)
def test_contract_and_determinism(
    name: str, data: st.DataObject, num_frames: int, seed: int, rule: str
) -> None:
    sampler = create_sampler(name, short_video=rule, **data.draw(KWARGS[name]))
    assert isinstance(sampler, ClipSampler)
    out = draw_sample(sampler, num_frames, seed)
    check_contract(sampler, out, num_frames)
    assert_same(out, draw_sample(sampler, num_frames, seed))
    if rule == "pad":
        odd = out.targets.get("odd") if name == "o3n" else None
        assert all(non_decreasing(v) for k, v in enumerate(out.views) if k != odd)


@pytest.mark.parametrize("name", sorted(KWARGS))
@pytest.mark.parametrize("rule", ["pad", "loop"])
@pytest.mark.parametrize("num_frames", [1, 5, 15])
def test_short_videos_with_defaults(name: str, rule: str, num_frames: int) -> None:
    sampler = create_sampler(name, short_video=rule)
    for seed in range(5):
        out = draw_sample(sampler, num_frames, seed)
        check_contract(sampler, out, num_frames)
        if rule == "pad":
            odd = out.targets.get("odd") if name == "o3n" else None
            assert all(non_decreasing(v) for k, v in enumerate(out.views) if k != odd)


@pytest.mark.parametrize("name", sorted(KWARGS))
@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_video_length_is_a_value_error(name: str, bad: object) -> None:
    with pytest.raises(ValueError, match="num_frames"):
        create_sampler(name)(bad, FPS, np.random.default_rng(0))


def test_numpy_integer_video_length_is_accepted() -> None:
    out = RandomClipSampler()(np.int64(40), FPS, np.random.default_rng(0))
    assert len(out.views[0]) == 16


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (RandomClipSampler, {"num_frames": 0}),
        (RandomClipSampler, {"stride": 0}),
        (RandomClipSampler, {"short_video": "mirror"}),
        (UniformMultiClipSampler, {"num_clips": 0}),
        (CVRLIntervalSampler, {"power": 0.0}),
        (CVRLIntervalSampler, {"power": float("inf")}),
        (TCLRSampler, {"num_local": 3}),
        (TCLRSampler, {"local_len": 0}),
        (VCOPSampler, {"num_clips": 1}),
        (VCOPSampler, {"num_clips": 11}),
        (VCOPSampler, {"interval": -1}),
        (ShuffleLearnSampler, {"tuple_len": 2}),
        (ShuffleLearnSampler, {"min_gap": 5, "max_gap": 4}),
        (ShuffleLearnSampler, {"positive_prob": 1.5}),
        (OddOneOutSampler, {"element_len": 1}),
        (OddOneOutSampler, {"num_elements": 1}),
        (OddOneOutSampler, {"window_scale": 0.9}),
        (DPCBlockSampler, {"frame_step": 0}),
        (CoTrainingPairSampler, {"modality": "depth"}),
        (CoTrainingPairSampler, {"same_clip_prob": -0.1}),
        (CoTrainingPairSampler, {"extra_frame": "yes"}),
    ],
)
def test_constructor_rejects_bad_arguments(cls: type, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        cls(**kwargs)


# ---------------------------------------------------------------- the short-video rule


@PROPERTY
@given(
    num_frames=video_lengths,
    indices=st.lists(st.integers(0, 1000), min_size=1, max_size=50).map(sorted),
)
def test_short_video_rule(num_frames: int, indices: list[int]) -> None:
    idx = np.asarray(indices, dtype=np.int64)
    padded = apply_short_video_rule(idx, num_frames, "pad")
    looped = apply_short_video_rule(idx, num_frames, "loop")
    assert padded.max() < num_frames and looped.max() < num_frames
    assert non_decreasing(padded)
    inside = idx < num_frames
    assert np.array_equal(padded[inside], idx[inside])
    assert np.array_equal(looped[inside], idx[inside])
    assert np.all(padded[~inside] == num_frames - 1)
    assert np.array_equal(looped, idx % num_frames)


# ---------------------------------------------------------------- per-sampler targets and layout


@PROPERTY
@given(kwargs=KWARGS["random_clip"], num_frames=video_lengths, seed=seeds)
def test_random_clip_keeps_its_stride(kwargs: dict, num_frames: int, seed: int) -> None:
    sampler = RandomClipSampler(**kwargs)
    (clip,) = draw_sample(sampler, num_frames, seed).views
    if (sampler.num_frames - 1) * sampler.stride < num_frames:
        assert np.all(np.diff(clip) == sampler.stride)


@PROPERTY
@given(kwargs=KWARGS["uniform_multi_clip"], num_frames=video_lengths, seed=seeds)
def test_uniform_multi_clip_is_deterministic_and_covers_the_video(
    kwargs: dict, num_frames: int, seed: int
) -> None:
    sampler = UniformMultiClipSampler(**kwargs)
    out = draw_sample(sampler, num_frames, seed)
    assert_same(out, draw_sample(sampler, num_frames, seed + 1))  # the rng is unused
    starts = np.array([v[0] for v in out.views])
    assert non_decreasing(starts)
    span = (sampler.num_frames - 1) * sampler.stride + 1
    if span <= num_frames:
        assert all(np.all(np.diff(v) == sampler.stride) for v in out.views)
        if sampler.num_clips > 1:
            assert starts[0] == 0 and out.views[-1][-1] == num_frames - 1


@PROPERTY
@given(kwargs=KWARGS["cvrl"], num_frames=video_lengths, seed=seeds)
def test_cvrl_start_difference_is_the_interval(kwargs: dict, num_frames: int, seed: int) -> None:
    sampler = CVRLIntervalSampler(**kwargs)
    out = draw_sample(sampler, num_frames, seed)
    interval = out.targets["interval"]
    max_offset = num_frames - ((sampler.num_frames - 1) * sampler.stride + 1)
    assert 0 <= interval <= max(max_offset, 0)
    if max_offset >= 0:
        assert abs(int(out.views[1][0]) - int(out.views[0][0])) == interval
        assert all(np.all(np.diff(v) == sampler.stride) for v in out.views if len(v) > 1)


@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_cvrl_interval_follows_the_analytic_cdf(power: float) -> None:
    sampler = CVRLIntervalSampler(num_frames=1, stride=1, power=power)
    max_offset = 10_000
    rng = np.random.default_rng(1234)
    draws = 4000
    intervals = [sampler(max_offset + 1, FPS, rng).targets["interval"] for _ in range(draws)]
    fractions = np.sort(intervals) / max_offset
    cdf = cvrl_interval_cdf(fractions, power)
    ks = max(np.max(np.arange(1, draws + 1) / draws - cdf), np.max(cdf - np.arange(draws) / draws))
    critical = 1.95 / math.sqrt(draws)  # the 0.1% critical value of the KS statistic
    assert ks < critical
    uniform_ks = np.max(np.abs(np.arange(1, draws + 1) / draws - fractions))
    assert uniform_ks > critical  # the test can tell a uniform interval from CVRL's


@pytest.mark.parametrize("power", [0.3, 1.0, 2.0, 7.5])
def test_cvrl_quantile_inverts_the_cdf(power: float) -> None:
    u = np.linspace(0.0, 1.0, 101)
    x = cvrl_interval_quantile(u, power)
    assert np.allclose(cvrl_interval_cdf(x, power), u, atol=1e-9)
    assert x[0] == pytest.approx(0.0) and x[-1] == pytest.approx(1.0) and non_decreasing(x)


@PROPERTY
@given(kwargs=tclr_kwargs(), num_frames=video_lengths, seed=seeds)
def test_tclr_local_clips_lie_in_their_part_of_the_global_span(
    kwargs: dict, num_frames: int, seed: int
) -> None:
    sampler = TCLRSampler(**kwargs)
    out = draw_sample(sampler, num_frames, seed)
    glob, locals_ = out.views[0], out.views[1:]
    assert len(locals_) == sampler.num_local
    if sampler.global_span <= num_frames:
        start, part = int(glob[0]), sampler.local_offset
        assert np.all(np.diff(glob) == sampler.global_stride)
        assert glob[-1] < start + sampler.global_span
        for j, local in enumerate(locals_):
            assert np.all(np.diff(local) == 1)
            assert start + j * part == local[0] and local[-1] < start + (j + 1) * part


def test_tclr_defaults_match_the_paper() -> None:
    sampler = TCLRSampler()
    out = draw_sample(sampler, 300, 0)
    g = int(out.views[0][0])
    assert np.array_equal(out.views[0], g + 4 * np.arange(16))
    for j in range(4):
        assert np.array_equal(out.views[1 + j], g + 16 * j + np.arange(16))
    assert out.names == ("global", "local0", "local1", "local2", "local3")


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_permutation_ids_follow_itertools_order(n: int) -> None:
    for perm_id, perm in enumerate(itertools.permutations(range(n))):
        assert tuple(permutation_from_id(n, perm_id)) == perm
        assert id_from_permutation(perm) == perm_id


@PROPERTY
@given(n=st.integers(1, 10), data=st.data())
def test_permutation_id_round_trip(n: int, data: st.DataObject) -> None:
    perm_id = data.draw(st.integers(0, math.factorial(n) - 1))
    perm = permutation_from_id(n, perm_id)
    assert perm.dtype == np.int64 and sorted(perm.tolist()) == list(range(n))
    assert id_from_permutation(perm) == perm_id


@pytest.mark.parametrize("bad", [[0, 0, 1], [1, 2, 3], []])
def test_id_from_permutation_rejects_non_permutations(bad: list[int]) -> None:
    with pytest.raises(ValueError):
        id_from_permutation(bad)


def test_permutation_from_id_rejects_out_of_range_ids() -> None:
    with pytest.raises(ValueError):
        permutation_from_id(3, 6)


@PROPERTY
@given(kwargs=KWARGS["vcop"], num_frames=video_lengths, seed=seeds, rule=rules)
def test_vcop_unshuffled_views_are_in_temporal_order(
    kwargs: dict, num_frames: int, seed: int, rule: str
) -> None:
    sampler = VCOPSampler(short_video=rule, **kwargs)
    out = draw_sample(sampler, num_frames, seed)
    perm = out.targets["permutation"]
    assert perm.dtype == np.int64 and 0 <= out.targets["order"] < sampler.num_classes
    assert id_from_permutation(perm) == out.targets["order"]
    original = [out.views[k] for k in np.argsort(perm)]
    starts = np.array([clip[0] for clip in original])
    n, length = sampler.num_clips, sampler.clip_len
    if num_frames >= n * length:  # the clips fit (the interval may have shrunk), none is padded
        assert all(np.all(np.diff(clip) == 1) for clip in original)
        assert strictly_increasing(starts)
        assert all(original[i][-1] < original[i + 1][0] for i in range(n - 1))
        if num_frames >= n * length + (n - 1) * sampler.interval:
            assert np.all(np.diff(starts) == length + sampler.interval)
            assert out.info["interval"] == sampler.interval
    elif rule == "pad":
        assert non_decreasing(starts)


def test_vcop_order_labels_cover_all_classes() -> None:
    sampler = VCOPSampler()
    rng = np.random.default_rng(7)
    labels = {sampler(200, FPS, rng).targets["order"] for _ in range(200)}
    assert labels == set(range(6))


@PROPERTY
@given(kwargs=shuffle_learn_kwargs(), num_frames=video_lengths, seed=seeds, rule=rules)
def test_shuffle_learn_label_matches_the_order(
    kwargs: dict, num_frames: int, seed: int, rule: str
) -> None:
    sampler = ShuffleLearnSampler(short_video=rule, **kwargs)
    out = draw_sample(sampler, num_frames, seed)
    frames = np.concatenate(out.views)
    if num_frames >= sampler.tuple_len + 2:
        assert out.targets["in_order"] == int(strictly_increasing(frames))
        if out.targets["in_order"] and num_frames > (sampler.tuple_len + 1) * sampler.max_gap:
            gaps = np.diff(frames)
            assert np.all(gaps >= sampler.min_gap) and np.all(gaps <= sampler.max_gap)


@pytest.mark.parametrize("num_frames", [5, 6, 9, 17, 40, 61])
@pytest.mark.parametrize("positive_prob", [0.0, 1.0])
def test_shuffle_learn_shrinks_gaps_to_fit(num_frames: int, positive_prob: float) -> None:
    sampler = ShuffleLearnSampler(positive_prob=positive_prob)
    for seed in range(20):
        frames = np.concatenate(draw_sample(sampler, num_frames, seed).views)
        assert strictly_increasing(frames) == (positive_prob == 1.0)


def test_shuffle_learn_positive_rate_follows_positive_prob() -> None:
    sampler = ShuffleLearnSampler(positive_prob=0.25)
    rng = np.random.default_rng(3)
    labels = [sampler(300, FPS, rng).targets["in_order"] for _ in range(1000)]
    assert abs(np.mean(labels) - 0.25) < 0.05


@PROPERTY
@given(kwargs=KWARGS["o3n"], num_frames=video_lengths, seed=seeds, rule=rules)
def test_o3n_exactly_the_odd_element_is_out_of_order(
    kwargs: dict, num_frames: int, seed: int, rule: str
) -> None:
    sampler = OddOneOutSampler(short_video=rule, **kwargs)
    out = draw_sample(sampler, num_frames, seed)
    odd = out.targets["odd"]
    assert 0 <= odd < sampler.num_elements
    if num_frames >= sampler.element_len or (rule == "pad" and num_frames >= 2):
        unsorted = [k for k, v in enumerate(out.views) if not non_decreasing(v)]
        assert unsorted == [odd]
    if num_frames >= sampler.element_len:
        for view in out.views:  # W distinct frames inside one window
            assert len(np.unique(view)) == sampler.element_len
            assert view.max() - view.min() < min(sampler.window_len, num_frames)


@PROPERTY
@given(kwargs=KWARGS["dpc"], num_frames=video_lengths, seed=seeds)
def test_dpc_blocks_are_contiguous(kwargs: dict, num_frames: int, seed: int) -> None:
    sampler = DPCBlockSampler(**kwargs)
    (seq,) = draw_sample(sampler, num_frames, seed).views
    length = sampler.num_blocks * sampler.block_len
    if (length - 1) * sampler.frame_step < num_frames and length > 1:
        assert np.all(np.diff(seq) == sampler.frame_step)
    blocks = seq.reshape(sampler.num_blocks, sampler.block_len)  # what the DPC method does
    if len(seq) > 1 and (len(seq) - 1) * sampler.frame_step < num_frames:
        assert np.all(blocks[1:, 0] - blocks[:-1, -1] == sampler.frame_step)


@PROPERTY
@given(kwargs=KWARGS["cotrain"], num_frames=video_lengths, seed=seeds)
def test_cotrain_pair(kwargs: dict, num_frames: int, seed: int) -> None:
    sampler = CoTrainingPairSampler(**kwargs)
    out = draw_sample(sampler, num_frames, seed)
    expected_extra = kwargs["extra_frame"]
    if expected_extra is None:
        expected_extra = sampler.modality == "residual"
    assert sampler.extra_frame is expected_extra
    assert sampler.view_lengths == (sampler.num_frames + int(expected_extra),) * 2
    assert out.info["modality"] == sampler.modality
    if out.info["same_clip"]:
        assert np.array_equal(out.views[0], out.views[1])
    if sampler.same_clip_prob == 1.0:
        assert out.info["same_clip"]
    if sampler.same_clip_prob == 0.0:
        assert not out.info["same_clip"]


def test_cotrain_same_clip_rate() -> None:
    sampler = CoTrainingPairSampler()
    rng = np.random.default_rng(11)
    same = [sampler(500, FPS, rng).info["same_clip"] for _ in range(1000)]
    assert abs(np.mean(same) - 0.5) < 0.05


# ---------------------------------------------------------------- registry


@pytest.mark.parametrize("name", sorted(KWARGS))
def test_create_sampler_builds_the_registered_class(name: str) -> None:
    sampler = create_sampler(name)
    assert type(sampler) is SAMPLERS[name]
    assert isinstance(sampler, ClipSampler)


def test_create_sampler_unknown_name() -> None:
    with pytest.raises(ConfigError, match="unknown sampler 'nope'") as err:
        create_sampler("nope")
    assert "\n" not in str(err.value) and "random_clip" in str(err.value)


def test_create_sampler_unknown_argument() -> None:
    with pytest.raises(ConfigError, match="unknown argument") as err:
        create_sampler("vcop", clip_length=16)
    assert "\n" not in str(err.value) and "clip_len" in str(err.value)


def test_create_sampler_bad_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="stride") as err:
        create_sampler("random_clip", stride=0)
    assert "\n" not in str(err.value)


def test_global_local_views_are_independent_clips() -> None:
    from vidssl.data.samplers import GlobalLocalSampler

    s = GlobalLocalSampler(num_global=2, global_frames=4, global_stride=3, num_local=3, local_frames=2,
                           local_stride=1)
    assert s.view_names == ("global0", "global1", "local0", "local1", "local2")
    assert s.view_lengths == (4, 4, 2, 2, 2)
    out = s(200, 25.0, np.random.default_rng(0))
    for v in out.views[:2]:
        assert np.all(np.diff(v) == 3)
    for v in out.views[2:]:
        assert np.all(np.diff(v) == 1)
    starts = {int(v[0]) for v in out.views}
    assert len(starts) > 1                     # each view has its own random start
    with pytest.raises(ValueError):
        GlobalLocalSampler(num_global=0)

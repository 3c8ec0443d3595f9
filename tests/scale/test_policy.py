"""The autoscaling rule, case by case (pure: no Docker, no clock)."""

import pytest

from workup.scale import Observation, ScalePolicy, ScaleState, decide

P = ScalePolicy(minimum=1, maximum=10, cpu_up=0.85, cpu_down=0.25, queue_up=100,
                cooldown_up=30, cooldown_down=120, down_window=300, max_step_up=4)


def obs(replicas, u, queue=None, at=1000.0):
    return Observation(replicas=replicas, utilisation=u, queue_depth=queue, at=at)


def run(samples, policy=P, state=ScaleState()):
    """Feed (at, replicas_if_unchanged, u, queue) samples, applying each decision; return decisions."""
    out = []
    replicas = samples[0][1]
    for at, _, u, q in samples:
        d, state = decide(policy, obs(replicas, u, q, at), state)
        out.append(d)
        replicas = d.replicas
    return out


def test_band_holds():
    for u in (0.25, 0.5, 0.85):
        d, _ = decide(P, obs(3, u), ScaleState())
        assert (d.replicas, d.direction) == (3, "hold")


def test_scale_up_lands_inside_the_band():
    d, st = decide(P, obs(2, 1.5), ScaleState())
    # ceil(2 * 1.5 / 0.55) = 6, capped by max(4, 2) = 4 more -> 6
    assert (d.replicas, d.direction) == (6, "up") and st.last_change_at == 1000.0


def test_scale_up_is_at_least_one_step():
    d, _ = decide(P, obs(4, 0.86), ScaleState())
    assert d.replicas == 7  # ceil(4 * .86 / .55) = 7


def test_scale_up_step_is_capped():
    d, _ = decide(ScalePolicy(maximum=100), obs(1, 20.0), ScaleState())
    assert d.replicas == 5  # 1 + max(4, 1)


def test_never_above_maximum_or_below_minimum():
    d, _ = decide(P, obs(9, 5.0), ScaleState())
    assert d.replicas == 10
    p = ScalePolicy(minimum=2, maximum=5, cooldown_down=0, down_window=0)
    d, _ = decide(p, obs(3, 0.01), ScaleState())
    assert d.replicas == 2


@pytest.mark.parametrize("replicas, expected", [(0, 1), (12, 10)])
def test_outside_limits_is_corrected_at_once(replicas, expected):
    d, _ = decide(P, obs(replicas, 0.5), ScaleState(last_change_at=999.0))
    assert d.replicas == expected


def test_maximum_zero_refused_and_band_checked():
    with pytest.raises(ValueError):
        ScalePolicy(minimum=0, maximum=0)
    with pytest.raises(ValueError):
        ScalePolicy(cpu_down=0.9, cpu_up=0.8)


def test_cooldown_after_scale_up_blocks_the_next_one():
    ds = run([(0, 2, 1.2, None), (10, 2, 1.2, None), (31, 2, 1.2, None)])
    assert [d.direction for d in ds] == ["up", "hold", "up"]
    assert "cooling down" in ds[1].reason


def test_scale_down_needs_a_full_quiet_window():
    samples = [(t, 4, 0.05, 0) for t in range(0, 301, 30)]
    ds = run(samples)
    assert all(d.direction == "hold" for d in ds[:-1])
    assert ds[-1].direction == "down" and ds[-1].replicas == 1  # ceil(4 * .05 / .55) = 1


def test_one_busy_sample_in_the_window_prevents_scale_down():
    samples = [(t, 4, 0.05, 0) for t in range(0, 301, 30)]
    samples[5] = (150, 4, 0.5, 0)  # within band: recommendation 4
    ds = run(samples)
    assert all(d.direction == "hold" for d in ds)


def test_scale_down_respects_cooldown_after_a_change():
    # scale up at t=0, then quiet: the window restarts at the change, so no down before t=300
    samples = [(0, 1, 2.0, None)] + [(t, 1, 0.01, 0) for t in range(30, 400, 30)]
    ds = run(samples)
    assert ds[0].direction == "up"
    downs = [i for i, d in enumerate(ds) if d.direction == "down"]
    assert downs and samples[downs[0]][0] >= 300


def test_queue_backlog_scales_up_when_cpu_is_low():
    d, _ = decide(P, obs(2, 0.1, queue=1000), ScaleState())
    assert (d.replicas, d.direction) == (6, "up")  # 2 + 4 cap; 1000/100 = 10 wanted
    assert "queue" in d.reason


def test_queue_backlog_blocks_scale_down():
    samples = [(t, 3, 0.05, 250) for t in range(0, 601, 30)]
    assert all(d.direction == "hold" for d in run(samples))


def test_unknown_cpu_and_queue_hold():
    d, _ = decide(P, obs(3, None, None), ScaleState())
    assert (d.replicas, d.direction) == (3, "hold")


def test_alternating_hot_and_cold_never_scales_down_and_ups_respect_cooldown():
    samples = [(t, 2, 1.0 if (t // 10) % 2 == 0 else 0.05, 0) for t in range(0, 900, 10)]
    ds = run(samples)
    assert not [d for d in ds if d.direction == "down"]
    up_times = [samples[i][0] for i, d in enumerate(ds) if d.direction == "up"]
    assert up_times and all(b - a >= 30 for a, b in zip(up_times, up_times[1:]))
    assert ds[-1].replicas == 10  # saturated at the maximum, never beyond


def test_history_is_bounded():
    state = ScaleState()
    for t in range(0, 5000, 5):
        _, state = decide(P, obs(3, 0.5, at=float(t)), state)
    assert len(state.recent) <= 2 * 300 / 5 + 1

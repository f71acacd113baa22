"""Correlated 1/f read noise (twin/device/read_noise.py): exact aihwkit marginals, the analytic
covariance, what averaging back-to-back reads gains, commit=False, and the time-order rule."""

import math
import pickle

import pytest
import torch
from aihwkit.inference.noise.pcm import PCMLikeNoiseModel

from twin.device.parameters import PCMParameters
from twin.device.pcm import NO_SAMPLE, DeviceArray, PCMStatistics
from twin.scenario.schema import MAX_DURATION
from twin.units import DAY, HOUR, MINUTE, SECOND, US, YEAR

N = 20_000
LEVEL = 4  # of 8: g = 12.5 uS, Qs = 0.0136, relative read noise ~7%: never clamped at 0
G = 12.5
T_READ = 250


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _devices(mode: str = "correlated", n: int = N) -> DeviceArray:
    """Devices at exactly G (no programming noise, no drift), programmed at t = 0."""
    params = PCMParameters(prog_noise_scale=0.0, drift_scale=0.0, read_noise_model=mode)
    devices = DeviceArray(8, PCMStatistics(params), torch.full((n,), LEVEL))
    devices.program(0, _gen(1))
    return devices


def _relative(reading: torch.Tensor) -> torch.Tensor:
    return (reading.double() - G) / G


def _aihwkit_sigma(age_s: float) -> float:
    """aihwkit's own relative read-noise std at ``age_s``, recovered from its function."""
    ref = PCMLikeNoiseModel(g_max=25.0)
    g = torch.full((16,), G, dtype=torch.float64)
    with torch.random.fork_rng(devices=[]):  # aihwkit draws from the global generator: leave it as it was
        torch.manual_seed(0)
        out = ref.apply_drift_noise_to_conductance(g.clone(), torch.zeros_like(g), age_s)
        torch.manual_seed(0)
        z = torch.randn_like(g)
    return ((out - g) / (g * z)).median().item()


def _model():
    return PCMStatistics().read_noise


def test_time_constants_span_the_read_pulse_to_beyond_the_longest_deployment():
    model = _model()
    assert model.components == 18
    assert model.tau_s[0].item() == pytest.approx(2 * T_READ / SECOND)
    assert model.tau_s[-1].item() >= 5 * MAX_DURATION / SECOND
    spacing = torch.log10(model.tau_s[1:] / model.tau_s[:-1])
    assert torch.allclose(spacing, spacing[0]) and 0.9 < spacing[0].item() <= 1.0
    t = torch.tensor([20.0, 3600.0, 1e9])
    assert torch.allclose(model.covariance(t, t), model.log_term(t))  # Var X(t) = L(t), aihwkit's


def test_sampling_coefficients_and_the_verify_burst_agree_with_the_analytic_model():
    model = _model()
    # Per-device coefficients (float32, many distinct ages) agree with per-run ones (float64).
    t = torch.logspace(-6, math.log10(MAX_DURATION / SECOND), 200, dtype=torch.float64) + 20.0
    dt = torch.logspace(math.log10(T_READ / SECOND), 9, 200, dtype=torch.float64)
    fresh = torch.arange(200) % 3 == 0
    for a, b in zip(model._coefficients(t, dt, fresh, torch.float32), model._coefficients(t, dt, fresh, torch.float64)):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)
    # verify_read's linear map of independent normals has exactly the analytic covariance.
    reads, t0 = 6, 20.0
    coeff = model._burst_matrix(t0, reads).double()
    times = t0 + T_READ / SECOND * torch.arange(reads, dtype=torch.float64)
    analytic = model.covariance(times.unsqueeze(1), times.unsqueeze(0))
    assert torch.allclose(coeff.T @ coeff, analytic, rtol=1e-5)
    assert _devices().verify_read(torch.zeros(0), _gen(1), reads=4).shape == (0,)


@pytest.mark.parametrize("age_ns", [MINUTE, HOUR, DAY, YEAR])
@pytest.mark.parametrize("history", [False, True])
def test_marginal_is_aihwkits_at_any_single_time(age_ns, history):
    devices = _devices()
    if history:  # earlier committed reads, one of them a microsecond before
        for t in (SECOND, age_ns // 3, age_ns - US):
            devices.read(t, _gen(t))
    rel = _relative(devices.read(age_ns, _gen(2)))
    sigma = _aihwkit_sigma(age_ns / SECOND)
    assert rel.std().item() == pytest.approx(sigma, abs=4 * sigma / math.sqrt(2 * N))
    assert abs(rel.mean().item()) < 4 * sigma / math.sqrt(N)


@pytest.mark.parametrize("t1, t2", [(HOUR, DAY), (HOUR, HOUR + SECOND), (HOUR, HOUR + US)])
def test_covariance_of_two_reads_matches_the_analytic_model(t1, t2):
    """Frozen noise (every read identical) gives correlation ~1 at (1 h, 1 d), independent
    draws 0 at (1 h, 1 h + 1 s): both fail here (the model says 0.003 and 0.35)."""
    devices = _devices()
    x1 = _relative(devices.read(t1, _gen(2)))
    x2 = _relative(devices.read(t2, _gen(3)))
    t0 = devices.statistics.params.t0_s
    model = devices.statistics.read_noise
    qs2 = devices.statistics.read_noise_q(torch.tensor(G)).item() ** 2
    expected = qs2 * model.covariance(t1 / SECOND + t0, t2 / SECOND + t0).item()
    measured = ((x1 - x1.mean()) * (x2 - x2.mean())).mean().item()
    s1, s2 = x1.std().item(), x2.std().item()
    error = math.sqrt((s1 * s1 * s2 * s2 + expected * expected) / N)
    assert measured == pytest.approx(expected, abs=4 * error)
    # the two models the test must tell apart are outside that tolerance where the model differs
    frozen = s1 * s2  # every read a copy of the first: correlation 1
    if abs(frozen - expected) > 0.2 * frozen:
        assert abs(frozen - expected) > 4 * error
    if abs(expected) > 0.2 * frozen:  # independent draws: covariance 0
        assert abs(expected) > 4 * error


def _mean_of_16(devices: DeviceArray, how: str) -> tuple[float, float, float]:
    """Std of the mean of 16 back-to-back reads, std of one read, aihwkit's std of one read."""
    g = torch.full((N,), G)
    if how == "verify_read":  # right after a pulse: age 0
        one = devices.verify_read(g, _gen(5))
        many = devices.verify_read(g, _gen(6), reads=16)
        age_ns = 0
    else:  # 16 committed reads t_read apart at 1 h (or all at the same nanosecond: the same)
        one = devices.read(HOUR, _gen(5), commit=False)
        step = 0 if how == "same_instant" else T_READ
        many = torch.stack([devices.read(HOUR + k * step, _gen(10 + k)) for k in range(16)]).mean(0)
        age_ns = HOUR
    return _relative(many).std().item(), _relative(one).std().item(), _aihwkit_sigma(age_ns / SECOND)


@pytest.mark.parametrize("how", ["verify_read", "committed_reads", "same_instant"])
def test_averaging_16_back_to_back_reads_gains_little_when_correlated(how):
    devices = _devices()
    many, one, sigma = _mean_of_16(devices, how)
    model, t0 = devices.statistics.read_noise, devices.statistics.params.t0_s
    t = t0 + (0 if how == "verify_read" else HOUR / SECOND)
    expected = sigma * math.sqrt(model.mean_variance(t, 16) / model.log_term(t).item())  # 0.94 / 0.95 sigma
    assert many == pytest.approx(expected, abs=4 * expected / math.sqrt(2 * N))
    assert one == pytest.approx(sigma, abs=4 * sigma / math.sqrt(2 * N))
    assert 0.9 < many / one < 1.0  # less than 10% gained


@pytest.mark.parametrize("how", ["verify_read", "committed_reads"])
def test_averaging_16_reads_gains_4x_when_independent(how):
    many, one, sigma = _mean_of_16(_devices("independent"), how)
    assert one == pytest.approx(sigma, abs=4 * sigma / math.sqrt(2 * N))
    assert many == pytest.approx(sigma / 4, abs=sigma / math.sqrt(2 * N))


def test_commit_false_leaves_the_state_untouched_and_is_conditionally_consistent():
    devices = _devices()
    committed = _relative(devices.read(HOUR, _gen(2)))
    state = {name: getattr(devices, name).clone() for name in DeviceArray.STATE_FIELDS}
    soon = _relative(devices.read(HOUR + 1, _gen(3), commit=False))
    again = _relative(devices.read(HOUR + 1, _gen(4), commit=False))
    later = _relative(devices.read(DAY, _gen(5), commit=False))
    for name, value in state.items():
        assert torch.equal(getattr(devices, name), value), name
    # 1 ns after a committed read the noise has barely moved: differences ~2% of the noise.
    assert (soon - committed).std().item() < 0.05 * committed.std().item()
    # Two observer draws at one instant are independent given the history, not identical.
    assert 0 < (soon - again).std().item() < 0.05 * committed.std().item()
    # Averaged over histories, an observer's draw has aihwkit's marginal.
    sigma = _aihwkit_sigma(DAY / SECOND)
    assert later.std().item() == pytest.approx(sigma, abs=4 * sigma / math.sqrt(2 * N))
    # The committed read that follows is the one it would have been without the observer.
    other = _devices()
    other.read(HOUR, _gen(2))
    assert torch.equal(devices.read(DAY, _gen(6)), other.read(DAY, _gen(6)))


@pytest.mark.parametrize("mode", ["correlated", "independent"])
@pytest.mark.parametrize("commit", [True, False])
def test_reading_before_the_last_committed_read_raises(mode, commit):
    devices = _devices(mode, n=4)
    devices.read(HOUR, _gen(2), index=torch.tensor([1, 2]))
    devices.read(HOUR - 1, _gen(3), index=torch.tensor([0, 3]), commit=commit)  # other devices: fine
    with pytest.raises(ValueError, match="last committed read"):
        devices.read(HOUR - 1, _gen(3), commit=commit)
    devices.read(HOUR, _gen(4))  # the same nanosecond: taken one t_read later, allowed


def test_programming_restarts_the_noise_process():
    devices = _devices(n=6)
    devices.read(DAY, _gen(2))
    devices.program(2 * DAY, _gen(3), index=torch.tensor([0, 1]))
    devices.commit(torch.tensor([2]), torch.tensor([G]), torch.tensor([G]), 2 * DAY, _gen(4))
    assert devices.noise_t_ns.tolist() == [NO_SAMPLE] * 3 + [DAY] * 3
    assert not devices.noise_components[:3].any() and devices.noise_components[3:].all()
    devices.read(2 * DAY, _gen(5))  # fresh devices draw their marginal at age 0
    assert devices.noise_t_ns.tolist() == [2 * DAY] * 6


def test_state_fields_pickle_and_same_seed_gives_the_same_bytes():
    def run(seed: int) -> DeviceArray:
        devices = _devices(n=1000)
        for t in (HOUR, HOUR, DAY):
            devices.read(t, _gen(seed + t), index=torch.arange(0, 1000, 2))
        return devices
    a, b = run(7), run(7)
    assert a.STATE_FIELDS == ("g_prog", "nu", "t_prog_ns", "noise_components", "noise_t_ns")
    for name in DeviceArray.STATE_FIELDS:
        value = getattr(a, name)
        assert value.shape[0] == a.size
        assert torch.equal(pickle.loads(pickle.dumps(value)), value) and torch.equal(value, getattr(b, name))
    assert not torch.equal(a.noise_components, run(8).noise_components)
    assert _devices("independent", n=10).noise_components.shape == (10, 0)


def test_read_noise_model_is_a_scenario_field():
    from twin.scenario.derive import runtime
    from twin.scenario.schema import Scenario, ScenarioError
    s = Scenario(name="x")
    assert s.chip.device.read_noise_model == "correlated"
    independent = s.with_overrides(["chip.device.read_noise_model=independent"])
    assert runtime(PCMParameters, independent.chip.device).read_noise_model == "independent"
    with pytest.raises(ScenarioError, match="read_noise_model"):
        s.with_overrides(["chip.device.read_noise_model=frozen"])
    with pytest.raises(ValueError, match="read_noise_model"):
        PCMParameters(read_noise_model="frozen")

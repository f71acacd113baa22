"""Figure 3: device reads. ``DeviceArray.read`` (commit=True: the correlated 1/f read noise of
twin/device/read_noise.py as a process in time) against a bare numpy expression of the same math
over 2^21 float32 devices.

The devices: random levels programmed at t = 0, half of them re-programmed at 12 h (mixed drift
ages, as on a corrected chip), all read (committed) once at 23 h, then a quarter re-programmed
(no sample since: their noise is drawn from its marginal). The timed read is at 24 h; before each
repetition the noise state is restored, so every repetition does the same work.

The numpy version does what the twin's does, step for step, in the same 2^16-device blocks:
per block, the Ornstein-Uhlenbeck coefficients once per run of devices sharing (age, time since
the last read, fresh) (exp(-dt/tau_j), the innovation std, 1/sqrt(V(t)) in float64), J = 18
normals per device, y <- keep * y + std * N, z = sum_j y_j / sqrt(V(t)), the state written back;
then drift G_prog ((age + t0)/t0)^-nu and aihwkit's Qs sqrt(L(t)) scale:
read = max(G + |G| Qs sqrt(L) z, 0).
"""

from __future__ import annotations

import time

import numpy as np
import torch

__all__ = ["read_figures"]

_CHUNK = 1 << 16


def _setup(n: int):
    from twin.device.pcm import DeviceArray, PCMStatistics
    from twin.units import DAY, HOUR
    devices = DeviceArray(8, PCMStatistics(), torch.randint(0, 9, (n,), generator=torch.Generator().manual_seed(0)))
    gen = torch.Generator().manual_seed(1)
    devices.program(0, gen)
    half = torch.arange(n // 2)
    devices.program(DAY // 2, gen, index=half)
    devices.read(DAY - HOUR, gen)  # committed: every device now has a noise history
    quarter = torch.arange(n // 4)
    devices.program(DAY - HOUR // 2, gen, index=quarter)  # fresh again: no sample since programming
    return devices, DAY


class NumpyCorrelatedRead:
    """The same math as ``DeviceArray.read(commit=True)`` with the correlated model, in numpy."""

    def __init__(self, devices, seed: int = 3) -> None:
        stats = devices.statistics
        model, p = stats.read_noise, stats.params
        self.tau = model.tau_s.numpy().astype(np.float64)
        self.weight, self.J = float(model.weight), int(model.components)
        self.t0, self.t_read, self.t_read_ns = float(p.t0_s), float(p.t_read_s), int(p.t_read)
        self.g_max, self.noise_scale = float(p.g_max_us), float(p.read_noise_scale)
        self.g_prog = devices.g_prog.numpy().copy()
        self.nu = devices.nu.numpy().copy()
        self.t_prog = devices.t_prog_ns.numpy().copy()
        self.y = devices.noise_components.numpy().copy()
        self.last = devices.noise_t_ns.numpy().copy()
        self.no_sample = np.iinfo(np.int64).min
        self.rng = np.random.default_rng(seed)

    def _coefficients(self, t_s, dt_s, fresh):
        rate = 1.0 / self.tau
        q = -np.expm1(-2.0 * t_s[:, None] * rate)
        total = q.sum(1) * self.weight
        e = np.expm1(-dt_s[:, None] * rate)
        keep = np.where(fresh[:, None], 0.0, e + 1.0)
        var = np.where(fresh[:, None], q, -e * (e + 2.0))
        std = np.sqrt(var * self.weight)
        inv_sd = np.where(total > 0, 1.0 / np.sqrt(np.maximum(total, 1e-300)), 0.0)
        return keep.astype(np.float32), std.astype(np.float32), inv_sd.astype(np.float32)

    def read(self, now_ns: int) -> np.ndarray:
        age_ns = now_ns - self.t_prog
        whole = age_ns // 1_000_000_000
        age_s = whole.astype(np.float64) + (age_ns - whole * 1_000_000_000).astype(np.float64) / 1e9
        fresh = self.last == self.no_sample
        dt_ns = now_ns - np.where(fresh, now_ns, self.last)
        dt_s = np.where(dt_ns == 0, self.t_read_ns, dt_ns).astype(np.float64) / 1e9
        t_s = age_s + self.t0
        n = t_s.size
        z = np.empty(n, dtype=np.float32)
        for start in range(0, n, _CHUNK):
            part = slice(start, min(start + _CHUNK, n))
            ts, dts, fr = t_s[part], dt_s[part], fresh[part]
            change = np.ones(ts.size, dtype=bool)
            change[1:] = (ts[1:] != ts[:-1]) | (dts[1:] != dts[:-1]) | (fr[1:] != fr[:-1])
            starts = np.flatnonzero(change)
            keep, std, inv_sd = self._coefficients(ts[starts], dts[starts], fr[starts])
            if starts.size > 1:
                run = np.cumsum(change) - 1
                keep, std, inv_sd = keep[run], std[run], inv_sd[run]
            y = keep * self.y[part] + std * self.rng.standard_normal((ts.size, self.J), dtype=np.float32)
            self.y[part] = y
            z[part] = y.sum(1) * inv_sd
        self.last[:] = now_ns
        g = self.g_prog
        g_drift = g * np.exp(-self.nu * np.log1p(age_s / self.t0).astype(np.float32))
        q = np.minimum(0.0088 / np.maximum((np.abs(g) / self.g_max) ** 0.65, 1e-3), 0.2)
        log_term = np.maximum(np.log((t_s + self.t_read) / (2 * self.t_read)), 0.0)
        sigma = self.noise_scale * q * np.sqrt(log_term).astype(np.float32)
        return np.maximum(g_drift + np.abs(g_drift) * sigma * z, 0)


def read_figures(n: int = 1 << 21, repeats: int = 5) -> dict:
    devices, now = _setup(n)
    bare = NumpyCorrelatedRead(devices)
    saved = (devices.noise_components.clone(), devices.noise_t_ns.clone())
    saved_np = (bare.y.copy(), bare.last.copy())
    generator = torch.Generator().manual_seed(2)
    twin_times, numpy_times = [], []
    for _ in range(repeats):  # interleaved, so that a noisy neighbour hits both alike
        devices.noise_components.copy_(saved[0])
        devices.noise_t_ns.copy_(saved[1])
        t = time.perf_counter()
        twin_values = devices.read(now, generator)
        twin_times.append(time.perf_counter() - t)
        bare.y[:], bare.last[:] = saved_np
        t = time.perf_counter()
        numpy_values = bare.read(now)
        numpy_times.append(time.perf_counter() - t)
    twin_s, numpy_s = min(twin_times), min(numpy_times)
    # the same law: the relative read deviation of both, mean and std (a sanity check, not a test)
    expected = devices.expected_conductance(now).numpy()
    on = expected > 1.0
    dev_twin = twin_values.numpy()[on] / expected[on] - 1
    dev_numpy = numpy_values[on] / expected[on] - 1
    return {"devices": n, "components": bare.J, "twin_s": twin_s, "numpy_s": numpy_s,
            "twin_devices_per_s": n / twin_s, "numpy_devices_per_s": n / numpy_s, "ratio": numpy_s / twin_s,
            "twin_times_s": twin_times, "numpy_times_s": numpy_times,
            "check_relative_deviation": {"twin_mean": float(dev_twin.mean()), "twin_std": float(dev_twin.std()),
                                         "numpy_mean": float(dev_numpy.mean()), "numpy_std": float(dev_numpy.std())},
            "torch_threads": torch.get_num_threads(), "note": "ratio = numpy_s / twin_s (>= 0.5 wanted)"}


if __name__ == "__main__":
    import json
    print(json.dumps(read_figures(1 << 18, 3), indent=1))

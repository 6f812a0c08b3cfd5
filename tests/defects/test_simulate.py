"""Generator statistics: contrast ratios, dose, lattice geometry, kinetics truth."""

import numpy as np
import pytest

from scopeflow.defects.lattice import (
    A_WS2,
    CONTRAST,
    MO,
    S2,
    V_S,
    W,
    d_ws,
    fit_lattice_fft,
    nearest_site,
)
from scopeflow.defects.options import SimulateOptions
from scopeflow.defects.simulate import (
    background_level,
    render_frame,
    simulate_frames,
    simulate_movie,
)


def test_contrast_follows_z17():
    # HAADF ~ Z^1.7 per atom: Mo/W = (42/74)^1.7, S2/W = 2 (16/74)^1.7, one S = half of S2
    assert CONTRAST[MO] == pytest.approx((42 / 74) ** 1.7)
    assert CONTRAST[S2] == pytest.approx(2 * (16 / 74) ** 1.7)
    assert CONTRAST[V_S] == pytest.approx(CONTRAST[S2] / 2)
    assert 0.14 < CONTRAST[S2] < 0.16  # "S2 ~ 0.15 of W"


def test_render_peak_heights_and_jitter():
    pos = np.array([[20.0, 20.0], [20.0, 40.0]])
    img = render_frame(pos, np.array([1.0, 0.38]), (40, 60), 2.0, np.zeros(40))
    assert img[20, 20] == pytest.approx(1.0, abs=1e-6)
    assert img[20, 40] == pytest.approx(0.38, abs=1e-6)
    # a row sampled 1 px further along the fast scan shows the column 1 px earlier
    jit = np.zeros(40)
    jit[20] = 1.0
    img2 = render_frame(pos, np.array([1.0, 0.38]), (40, 60), 2.0, jit)
    assert img2[20, 19] == pytest.approx(1.0, abs=1e-6)


@pytest.fixture(scope="module")
def movie():
    opts = SimulateOptions(
        shape=(256, 256),
        n_frames=6,
        jitter=0.0,
        drift=(0.0, 0.0),
        drift_noise=0.0,
        disorder_start=4,
        seed=2,
    )
    return opts, simulate_movie([], opts)


def _peak_counts(opts, ds, cls):
    """Counts at the pixel nearest each true column of class ``cls``, and the expected mean."""
    img = ds["image"].values
    f, r, c = ds["true_frame"].values, ds["true_row"].values, ds["true_col"].values
    sel = (ds["true_class"].values == cls) & ~ds["true_disordered"].values
    ri, ci = np.round(r[sel]).astype(int), np.round(c[sel]).astype(int)
    ok = (ri > 2) & (ri < 253) & (ci > 2) & (ci < 253)
    vals = img[f[sel][ok], ri[ok], ci[ok]]
    # the pixel centre is off the column by (dr, dc): the Gaussian there is exp(-d^2 / 2 s^2)
    s = opts.probe_sigma / opts.pixel_size
    d2 = (ri[ok] - r[sel][ok]) ** 2 + (ci[ok] - c[sel][ok]) ** 2
    return vals, np.exp(-d2 / (2 * s**2))


def test_dose_is_mean_count_at_w_peaks(movie):
    opts, ds = movie
    vals, g = _peak_counts(opts, ds, W)
    bg = background_level(opts.background, opts.probe_sigma)
    scale = opts.dose / (1 + bg)
    expected = scale * (bg + g).mean()  # neighbour tails at 1.84 Å add < 1e-3 of the peak
    # Poisson: standard error sqrt(dose / N) over N ~ 1800 W columns; 4 standard errors
    assert abs(vals.mean() - expected) < 4 * np.sqrt(opts.dose / len(vals))
    # and the dose is the W peak count when the pixel is on the column (g = 1)
    assert scale * (1 + bg) == pytest.approx(opts.dose)


def test_s2_to_w_contrast_in_counts(movie):
    opts, ds = movie
    w, gw = _peak_counts(opts, ds, W)
    s, gs = _peak_counts(opts, ds, S2)
    bg = background_level(opts.background, opts.probe_sigma)
    ratio = (s.mean() - opts.dose / (1 + bg) * bg) / (w.mean() - opts.dose / (1 + bg) * bg)
    expected = CONTRAST[S2] * gs.mean() / gw.mean()
    # the S2 peak is ~3 counts over ~1800 columns: its mean has a relative error ~1 %;
    # the W3-neighbour tails (exp(-1.84^2 / 2 sigma^2) ~ 2e-4 of W) are negligible
    assert ratio == pytest.approx(expected, rel=0.08)


def test_lattice_fit_recovers_geometry(movie):
    opts, ds = movie
    a_px = A_WS2 / opts.pixel_size
    vec, origin = fit_lattice_fft(ds["image"].values[0], a_px)
    # the Fourier peak of a 256-px frame is located to ~0.1 bin (~0.5 % of |q|)
    assert np.linalg.norm(vec, axis=1) == pytest.approx([a_px, a_px], rel=0.01)
    ang = np.degrees(np.arctan2(vec[0, 0], vec[0, 1])) % 60
    assert ang == pytest.approx(opts.lattice_angle % 60, abs=0.5)
    m = ds["true_frame"].values == 0
    pos = np.stack([ds["true_row"].values[m], ds["true_col"].values[m]], 1)
    _, _, sub, dist = nearest_site(pos, vec, origin)
    metal = np.isin(ds["true_class"].values[m], (1, 2, 6))
    assert (sub[metal] == 0).all() and (sub[~metal] == 1).all()
    # every column within 0.25 d_WS of its fitted site
    assert dist.max() < 0.25 * d_ws(a_px)


def test_walkers_diffuse_with_set_d():
    opts = SimulateOptions(
        shape=(384, 384), n_frames=30, disorder_start=99, seed=4, diffusion=1.0, vs_density=0.8
    )
    ds = simulate_movie([], opts)
    tr = ds["true_track"].values
    obj = ds["true_object"].values
    sel = obj == 4  # free single S vacancies
    f, r, c, t = (
        ds["true_frame"].values[sel],
        ds["true_row"].values[sel],
        ds["true_col"].values[sel],
        tr[sel],
    )
    num = den = 0.0
    for k in np.unique(t):
        s = np.flatnonzero(t == k)
        s = s[np.argsort(f[s])]
        ok = np.diff(f[s]) == 1
        d2 = (np.diff(r[s]) ** 2 + np.diff(c[s]) ** 2)[ok]
        num += d2.sum() * opts.pixel_size**2
        den += ok.sum()
    d_hat = num / (4 * den)
    # hops are exact lattice steps (jitter moves true positions by ~0.5 px rms, adding
    # 2 * 0.5^2 * 0.04 = 0.02 Å^2 per interval, 0.5 %); ~1000 hops give a ~3 % standard error
    assert d_hat == pytest.approx(opts.diffusion * opts.frame_time, rel=0.12)


def test_realised_d_keeps_steps_that_leave_the_image():
    # A 12.8 Å field (64 px): many of the walkers' steps start within one hop of the edge,
    # so counting only the pairs seen in both frames loses the moves across it (-31 % here).
    # The truth counts every step that starts in the image, so it estimates the set D without
    # bias. Lone walkers (no other defects, no damage, no drift), Poisson(k) nearest-neighbour
    # hops per frame: <d^2> = k a^2 and <d^4> = (k + 2 k^2) a^4 (2-D lattice walk,
    # E|R|^4 = 2 n^2 - n for n unit steps), so one step's relative sd is
    # sqrt(k + 2 k^2 - k^2) / k = sqrt((1 + k) / k) ~ 1.9 at k = 0.4; 4 standard errors over n.
    opts = SimulateOptions(
        shape=(64, 64),
        n_frames=3000,
        disorder_start=10**6,
        drift=(0.0, 0.0),
        drift_noise=0.0,
        vs_density=1.0,
        complex_density=0.0,
        mo_density=0.0,
        vs2_density=0.0,
        vw_density=0.0,
        seed=2,
    )
    _, _, gt = simulate_frames(opts)
    k = gt["hop_rate_per_frame"]
    n = gt["D_realised_steps"]
    assert n > 3000
    tol = 4 * np.sqrt((1 + k) / k) / np.sqrt(n)
    assert gt["D_realised_A2_per_s"] == pytest.approx(opts.diffusion, rel=tol)
    assert tol < 0.15  # the both-frames definition (-31 %) would fail


def test_vacancies_touching_a_hole_belong_to_the_hole():
    from scopeflow.defects.kinetics_sim import ABSENT, add_disorder, new_sample
    from scopeflow.defects.lattice import V_S2, V_W

    rng = np.random.default_rng(3)
    st = new_sample(
        (80.0, 80.0),
        rng,
        a=3.18,
        angle=0.1,
        n_walkers=0,
        n_complexes=0,
        n_mo=0,
        n_vs2=60,
        n_vw=60,
        transition=np.eye(3),
    )
    n_before = int((st.metal == V_W).sum())
    add_disorder(
        st,
        rng,
        n_holes=3,
        hole_radius=12.0,
        n_lines=0,
        line_length=1,
        n_patches=1,
        patch_radius=9.0,
        a=3.18,
        angle=0.1,
    )
    gone_m = (st.metal == ABSENT) & st.inside
    gone_s = (st.sulfur == ABSENT) & st.inside
    vw = np.argwhere(st.metal == V_W)
    vs2 = np.argwhere(st.sulfur == V_S2)
    # a W vacancy at (i, j) touches S (i, j), (i-1, j), (i, j-1); an empty S column at (i, j)
    # touches metal (i, j), (i+1, j), (i, j+1): none of them may be a removed column
    for i, j in vw:
        assert not (gone_s[i, j] or gone_s[i - 1, j] or gone_s[i, j - 1])
    for i, j in vs2:
        assert not (gone_m[i, j] or gone_m[i + 1, j] or gone_m[i, j + 1])
    # three 12 Å holes in an 80 Å field take some, but not all, W vacancies with them
    assert 0 < len(vw) < n_before

//! The scale searches behind ggml's reference K-quant quantizers (`make_qkx2_quants`,
//! `make_qx_quants`, `make_q3_quants` in ggml-quants.c), reproduced operation for operation so
//! that herd writes the same bytes: every sum is an f32 accumulated in ggml's order, and no
//! multiply-add is fused (Rust never contracts them). Changing either changes which quants win.
//! Only the parameter combinations the reference quantizers use are supported.

use super::block::{nearest_int, signed_absmax};

/// Below this the group counts as all zero.
const GROUP_MAX_EPS: f32 = 1e-15;

/// Fits `x ≈ scale * l - min` with `l` in `0..=nmax` for an asymmetric group (Q2_K, Q4_K,
/// Q5_K): starts from the full range, then tries `nstep + 1` slightly different inverse scales
/// `(rmin + rdelta * step + nmax) / (max - min)`, solving the weighted least-squares
/// scale and offset for each and keeping the one with the smallest weighted error (absolute if
/// `use_mad`, squared otherwise). Writes the chosen levels to `l` and returns
/// `(scale, min)` with `min >= 0` being the amount subtracted.
#[allow(clippy::too_many_arguments)] // mirrors ggml's signature so the two can be read side by side
pub(super) fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    debug_assert!(n <= 32 && weights.len() == n && l.len() == n);
    let error = |diff: f32| if use_mad { diff.abs() } else { diff * diff };

    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return (0.0, -min);
    }

    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l[i] = q as u8;
        best_error += weights[i] * error(scale * q as f32 + min - x[i]);
    }

    let mut laux = [0u8; 32];
    for step in 0..=nstep {
        iscale = (rmin + rdelta * step as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = q as u8;
            let (w, lf) = (weights[i], q as f32);
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                cur_error += weights[i] * error(this_scale * f32::from(laux[i]) + this_min - x[i]);
            }
            if cur_error < best_error {
                l.copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Fits `x ≈ scale * (l - nmax)` with `l` in `0..2 * nmax` for a symmetric group of Q6_K
/// (ggml's `make_qx_quants` with `rmse_type == 1` and no importance weights, i.e. weights
/// `x²`): tries the inverse scales `-(nmax + 0.1 * k) / max` for `k` in -9..=9 and keeps the
/// one with the best weighted least-squares fit. Returns the fitted scale (0 for an all-zero
/// group, whose levels are all 0).
pub(super) fn make_qx_quants(nmax: i32, x: &[f32], l: &mut [u8]) -> f32 {
    let max = signed_absmax(x);
    if max.abs() < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let level = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);

    let mut iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (li, &v) in l.iter_mut().zip(x) {
        let q = level(iscale, v);
        *li = (q + nmax) as u8;
        let w = v * v;
        sumlx += w * v * q as f32;
        suml2 += w * q as f32 * q as f32;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for k in -9..=9 {
        if k == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * k as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for &v in x {
            let q = level(iscale, v);
            let w = v * v;
            sumlx += w * v * q as f32;
            suml2 += w * q as f32 * q as f32;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (li, &v) in l.iter_mut().zip(x) {
                *li = (level(iscale, v) + nmax) as u8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Fits `x ≈ scale * (l - nmax)` with `l` in `0..2 * nmax` for a symmetric group of Q3_K
/// (ggml's `make_q3_quants` with `do_rmse`): starts from `-nmax / max`, then for up to five
/// rounds moves single levels whenever that improves the `x²`-weighted least-squares fit.
/// Returns the fitted scale (0 for an all-zero group, whose levels are all 0).
pub(super) fn make_q3_quants(nmax: i32, x: &[f32], l: &mut [u8]) -> f32 {
    let n = x.len();
    debug_assert!(n <= 16 && l.len() == n);
    let max = signed_absmax(x);
    if max.abs() < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut lq = [0i32; 16]; // signed levels, -nmax..nmax, while searching
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for i in 0..n {
        let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        lq[i] = q;
        let w = x[i] * x[i];
        sumlx += w * x[i] * q as f32;
        suml2 += w * q as f32 * q as f32;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for i in 0..n {
            let w = x[i] * x[i];
            let mut slx = sumlx - w * x[i] * lq[i] as f32;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * lq[i] as f32 * lq[i] as f32;
                let new_l = nearest_int(x[i] * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != lq[i] {
                    slx += w * x[i] * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        lq[i] = new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for (li, &q) in l.iter_mut().zip(&lq) {
        *li = (q + nmax) as u8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

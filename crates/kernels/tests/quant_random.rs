//! Random-data and hand-worked tests of the block formats: the integer `vec_dot` against the
//! plain f32 reference, quantize/dequantize round-trip error per format, exactness of the float
//! conversions, and the rounding conventions each quantizer must share with ggml. Data come
//! from a small deterministic PRNG, so failures reproduce.

use herd_kernels::{dequantize_row, dot_f32, quantize_row, vec_dot, vec_dot_type, DType};

/// splitmix64, with Box-Muller for normal samples.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }

    fn normals(&mut self, n: usize, sigma: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal() * sigma).collect()
    }
}

fn quantize(t: DType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; t.bytes_for(x.len() as u64).expect("whole blocks") as usize];
    quantize_row(t, x, &mut out).expect("every catalogue type quantizes");
    out
}

fn dequantize(t: DType, bytes: &[u8]) -> Vec<f32> {
    let mut out = vec![0.0f32; bytes.len() / t.block_bytes() * t.block_len()];
    dequantize_row(t, bytes, &mut out);
    out
}

fn f16(bits: [u8; 2]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes(bits)).to_f32()
}

/// Row lengths of 1, 2, 3 and 7 blocks (elements, for the float types).
fn lengths(t: DType) -> [usize; 4] {
    [1, 2, 3, 7].map(|n| n * t.block_len())
}

/// `sum over blocks of max|w| in the block * sum |a| in the block`: every float term the
/// kernels form (a block's scaled integer sum, a scaled group-sum of mins) is bounded by a
/// small multiple of this, so the f32 rounding in a kernel is at most a small multiple of
/// (blocks + 8 lanes + a few products) * 2^-24 of it. 1e-5 covers 7 blocks many times over.
fn float_slack(w: &[f32], a: &[f32], block_len: usize) -> f64 {
    let block_len = block_len.max(32);
    let b: f64 = w
        .chunks(block_len)
        .zip(a.chunks(block_len))
        .map(|(wb, ab)| {
            let wmax = wb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            f64::from(wmax) * ab.iter().map(|v| f64::from(v.abs())).sum::<f64>()
        })
        .sum();
    1e-5 * b
}

/// Q8_1 stores `s = f16(d * sum(q))`, and the Q4_1/Q5_1 kernels use it for the `m * sum(a)`
/// term, so they differ from the dequantized dot by exactly `m * (s - d16 * sum(q))` per block.
fn q8_1_offset_error(weight: DType, w: &[u8], act: &[u8]) -> f64 {
    if !matches!(weight, DType::Q4_1 | DType::Q5_1) {
        return 0.0;
    }
    w.chunks(weight.block_bytes())
        .zip(act.chunks(DType::Q8_1.block_bytes()))
        .map(|(wb, ab)| {
            let m = f16([wb[2], wb[3]]); // Q4_1 and Q5_1 both store d, then m
            let (d, s) = (f16([ab[0], ab[1]]), f16([ab[2], ab[3]]));
            let sum_q: i32 = ab[4..].iter().map(|&q| i32::from(q as i8)).sum();
            f64::from(m).abs() * (f64::from(s) - f64::from(d) * f64::from(sum_q)).abs()
        })
        .sum()
}

/// A priori bound on `|dequantize(quantize(x))_i - x_i|` for an activation format, per element:
/// - F16 and BF16 round to nearest: half an ulp, 2^-11 and 2^-8 relative (normal range).
/// - Q8_0/Q8_1: `d = amax / 127`, `q = round(x / d)` is off by at most d/2; storing `d` as f16
///   moves each value by at most `|q| * d * 2^-11 <= amax * 2^-11`. Total
///   `amax * (0.5 / 127 + 2^-11)`.
/// - Q8_K: the same with an f32 scale, `amax * 0.5 / 127`.
///
/// The factor 1.0001 absorbs the f32 rounding of `d`, `1 / d` and `x / d`.
fn activation_error_bound(act: DType, x: &[f32]) -> Vec<f32> {
    let per_block = |block: usize, c: f32| -> Vec<f32> {
        x.chunks(block)
            .flat_map(|b| {
                let amax = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                std::iter::repeat_n(amax * c * 1.0001, b.len())
            })
            .collect()
    };
    match act {
        DType::F32 => vec![0.0; x.len()],
        DType::F16 => x.iter().map(|v| v.abs() * 2f32.powi(-11)).collect(),
        DType::BF16 => x.iter().map(|v| v.abs() * 2f32.powi(-8)).collect(),
        DType::Q8_0 | DType::Q8_1 => per_block(32, 0.5 / 127.0 + 2f32.powi(-11)),
        DType::Q8_K => per_block(256, 0.5 / 127.0),
        other => panic!("{other} is not an activation format"),
    }
}

/// The integer kernel computes exactly the dot of the two dequantized rows, up to f32 rounding
/// (and Q8_1's rounded `s`): this pins every block layout's bit positions and every scale.
#[test]
fn vec_dot_equals_dot_of_dequantized_rows() {
    let mut rng = Rng(1);
    for w_type in DType::ALL {
        let a_type = vec_dot_type(w_type);
        for n in lengths(w_type) {
            let w = quantize(w_type, &rng.normals(n, 1.0));
            let act = quantize(a_type, &rng.normals(n, 1.0));
            let (wd, ad) = (dequantize(w_type, &w), dequantize(a_type, &act));
            let want: f64 = wd
                .iter()
                .zip(&ad)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            let got = f64::from(vec_dot(w_type, &w, &act));
            let budget =
                float_slack(&wd, &ad, w_type.block_len()) + q8_1_offset_error(w_type, &w, &act);
            assert!(
                (got - want).abs() <= budget,
                "{w_type} x {a_type}, n={n}: vec_dot {got} vs dequantized dot {want} (budget {budget:e})"
            );
        }
    }
}

/// The brief's check: the integer dot of a weight row with quantized activations stays within
/// the activations' quantization error of the plain f32 reference,
/// `|vec_dot - dot_f32| <= sum_i |w_i| * bound_i` (see `activation_error_bound`), plus Q8_1's
/// `s` rounding and f32 rounding.
#[test]
fn vec_dot_tracks_the_f32_reference() {
    let mut rng = Rng(2);
    for w_type in DType::ALL {
        let a_type = vec_dot_type(w_type);
        for n in lengths(w_type) {
            for sigma in [1e-3f32, 1.0, 1e3] {
                let w = quantize(w_type, &rng.normals(n, 1.0));
                let x = rng.normals(n, sigma);
                let act = quantize(a_type, &x);
                let wd = dequantize(w_type, &w);
                let reference = f64::from(dot_f32(w_type, &w, &x));
                let got = f64::from(vec_dot(w_type, &w, &act));
                let quant_error: f64 = wd
                    .iter()
                    .zip(activation_error_bound(a_type, &x))
                    .map(|(&w, e)| f64::from(w.abs()) * f64::from(e))
                    .sum();
                let budget = quant_error
                    + q8_1_offset_error(w_type, &w, &act)
                    + float_slack(&wd, &x, w_type.block_len());
                assert!(
                    (got - reference).abs() <= budget,
                    "{w_type} x {a_type}, n={n}, sigma={sigma}: vec_dot {got} vs dot_f32 {reference} (budget {budget:e})"
                );
            }
        }
    }
}

/// Round-trip error on normal data, as RMS(error) / RMS(x). Each budget is 1.2-1.5x the worst
/// value measured over these seeds and scales, which sits near the uniform-noise estimate
/// `step / sqrt(12) / sigma` of its layout (e.g. Q4_0: step = amax / 8 with amax ~ 2.1 sigma
/// for 32 normals, ~0.076, measured 0.085; Q8_0: step = amax / 127, ~0.005, measured 0.0055;
/// F16: half-ulp relative rounding, ~2e-4). They catch a wrong scale or a lost bit, which
/// multiply the error, not a few percent's change in a fit.
#[test]
fn round_trip_error_per_format() {
    let cases = [
        (DType::F32, 0.0),
        (DType::F16, 3e-4),
        (DType::BF16, 2.2e-3),
        (DType::Q4_0, 0.11),
        (DType::Q4_1, 0.10),
        (DType::Q5_0, 0.055),
        (DType::Q5_1, 0.05),
        (DType::Q8_0, 0.0075),
        (DType::Q8_1, 0.0075),
        (DType::Q2_K, 0.40),
        (DType::Q3_K, 0.20),
        (DType::Q4_K, 0.09),
        (DType::Q5_K, 0.045),
        (DType::Q6_K, 0.023),
        (DType::Q8_K, 0.009),
    ];
    let mut rng = Rng(3);
    for (t, budget) in cases {
        for sigma in [1e-2f32, 1.0, 1e2] {
            let x = rng.normals(7 * 256, sigma);
            let y = dequantize(t, &quantize(t, &x));
            let err: f64 = x
                .iter()
                .zip(&y)
                .map(|(&a, &b)| f64::from(a - b).powi(2))
                .sum();
            let norm: f64 = x.iter().map(|&a| f64::from(a).powi(2)).sum();
            let rel = (err / norm).sqrt();
            assert!(
                rel <= budget,
                "{t}, sigma={sigma}: relative RMS error {rel:.5} over budget {budget}"
            );
        }
    }
}

/// Every finite f16 and bf16 value survives f32 and back exactly, and every NaN stays a NaN.
#[test]
fn half_precision_conversions_are_exact_for_representable_values() {
    for t in [DType::F16, DType::BF16] {
        let all: Vec<u8> = (0..=u16::MAX).flat_map(u16::to_le_bytes).collect();
        let values = dequantize(t, &all);
        let back = quantize(t, &values);
        for (i, (&v, pair)) in values.iter().zip(back.chunks_exact(2)).enumerate() {
            let bits = u16::from_le_bytes([pair[0], pair[1]]);
            if v.is_nan() {
                assert!(dequantize(t, pair)[0].is_nan(), "{t} {i:#06x}: NaN lost");
            } else {
                assert_eq!(
                    bits, i as u16,
                    "{t} {i:#06x} = {v:e} came back as {bits:#06x}"
                );
            }
        }
    }
}

/// Rounding of values between representable ones: to nearest, ties to even, overflow to
/// infinity; bf16 makes signalling NaNs quiet (as ggml's `ggml_compute_fp32_to_bf16`).
#[test]
fn half_precision_rounding() {
    let cases: &[(DType, f32, u16)] = &[
        (DType::F16, 1.0 + 2f32.powi(-11), 0x3c00), // tie, down to even
        (DType::F16, 1.0 + 3.0 * 2f32.powi(-11), 0x3c02), // tie, up to even
        (DType::F16, 65519.0, 0x7bff),              // below the halfway point to 65536
        (DType::F16, 65520.0, 0x7c00),              // at it: infinity
        (DType::F16, 2f32.powi(-25), 0x0000),       // tie between 0 and the least subnormal
        (DType::F16, 3.0 * 2f32.powi(-25), 0x0002),
        (DType::F16, -0.0, 0x8000),
        (DType::BF16, 1.0 + 2f32.powi(-8), 0x3f80),
        (DType::BF16, 1.0 + 3.0 * 2f32.powi(-8), 0x3f82),
        (DType::BF16, f32::MAX, 0x7f80),
        (DType::BF16, f32::from_bits(0x7fa0_0000), 0x7fe0), // signalling NaN made quiet
        (DType::BF16, f32::from_bits(0xffc0_0001), 0xffc0),
    ];
    for &(t, x, want) in cases {
        let got = quantize(t, &[x]);
        assert_eq!(u16::from_le_bytes([got[0], got[1]]), want, "{t} of {x:e}");
    }
}

/// Hand-worked blocks pinning each activation quantizer's rounding rule, with `amax = 127`
/// so that the scale is exactly ±1 and `x / d` lands on halves.
#[test]
fn activation_rounding_conventions() {
    let mut x32 = vec![0.0f32; 32];
    x32[..7].copy_from_slice(&[127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5]);

    // Q8_0: d = +1, C's roundf: halves go away from zero.
    let q = quantize(DType::Q8_0, &x32);
    assert_eq!(&q[..2], &half::f16::from_f32(1.0).to_bits().to_le_bytes());
    assert_eq!(
        &q[2..9],
        &[127, 1, 2, 3, (-1i8) as u8, (-2i8) as u8, (-3i8) as u8]
    );

    // Q8_1: the same quants, and s = f16(d * sum(q)) = 127.
    let q = quantize(DType::Q8_1, &x32);
    assert_eq!(
        &q[2..4],
        &half::f16::from_f32(127.0).to_bits().to_le_bytes()
    );
    assert_eq!(
        &q[4..11],
        &[127, 1, 2, 3, (-1i8) as u8, (-2i8) as u8, (-3i8) as u8]
    );

    // Q8_K: the largest value maps to -127, so d = -1 and q = nearest_int(-x): halves go to
    // even. The first group sum is -127 + 0 - 2 - 2 + 0 + 2 + 2.
    let mut x256 = vec![0.0f32; 256];
    x256[..32].copy_from_slice(&x32);
    let q = quantize(DType::Q8_K, &x256);
    assert_eq!(f32::from_le_bytes([q[0], q[1], q[2], q[3]]), -1.0);
    let qs: Vec<i8> = q[4..11].iter().map(|&b| b as i8).collect();
    assert_eq!(qs, [-127, 0, -2, -2, 0, 2, 2]);
    assert_eq!(i16::from_le_bytes([q[260], q[261]]), -127);
    assert_eq!(i16::from_le_bytes([q[262], q[263]]), 0);

    // An all-zero Q8_K block is all zero bytes, group sums included.
    assert!(quantize(DType::Q8_K, &[0.0; 256]).iter().all(|&b| b == 0));
}

/// The symmetric formats divide by the signed value of largest magnitude; when `+a` and `-a`
/// tie, the first one wins and decides the scale's sign.
#[test]
fn symmetric_scale_takes_the_sign_of_the_first_largest_value() {
    let cases = [(DType::Q4_0, -8.0f32), (DType::Q5_0, -16.0)];
    for (t, divisor) in cases {
        for first in [4.0f32, -4.0] {
            let mut x = vec![0.0f32; 32];
            x[3] = first;
            x[9] = -first;
            let q = quantize(t, &x);
            assert_eq!(
                f16([q[0], q[1]]),
                first / divisor,
                "{t}, first largest {first}"
            );
            assert_eq!(
                dequantize(t, &q)[3],
                first,
                "{t}: the largest value is exact"
            );
        }
    }
}

/// Rows are read in place from memory-mapped files, so no alignment may be assumed: a row at
/// an odd address must give the same results.
#[test]
fn rows_need_no_alignment() {
    let mut rng = Rng(4);
    for t in DType::ALL {
        let n = 2 * t.block_len().max(32);
        let w = quantize(t, &rng.normals(n, 1.0));
        let act = quantize(vec_dot_type(t), &rng.normals(n, 1.0));
        let mut shifted_w = vec![0u8; w.len() + 1];
        shifted_w[1..].copy_from_slice(&w);
        let mut shifted_act = vec![0u8; act.len() + 3];
        shifted_act[3..].copy_from_slice(&act);
        assert_eq!(dequantize(t, &shifted_w[1..]), dequantize(t, &w), "{t}");
        assert_eq!(
            vec_dot(t, &shifted_w[1..], &shifted_act[3..]).to_bits(),
            vec_dot(t, &w, &act).to_bits(),
            "{t}"
        );
    }
}

#[test]
#[should_panic(expected = "not a whole number of Q4_K blocks")]
fn partial_blocks_are_a_caller_bug() {
    dequantize_row(DType::Q4_K, &[0u8; 143], &mut [0.0; 256]);
}

#[test]
#[should_panic(expected = "do not hold")]
fn mismatched_rows_are_a_caller_bug() {
    vec_dot(DType::Q4_0, &[0u8; 36], &[0u8; 34]);
}

//! Every fast kernel against the scalar reference, at every level this machine runs, on random
//! data of awkward sizes: activation quantization and dequantization byte for byte, dot
//! kernels within a tight bound and independent of the batch, the ops within their budgets.

use super::{Kernels, Level};
use crate::quant::{dequantize_row, quantize_row, vec_dot, vec_dot_type};
use crate::DType;

/// splitmix64, with a crude normal sampler (sum of uniforms): enough spread and sign changes.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    pub fn normals(&mut self, n: usize, sigma: f32) -> Vec<f32> {
        (0..n).map(|_| (self.uniform() + self.uniform() + self.uniform()) * sigma).collect()
    }
}

/// The SIMD levels this machine runs (the scalar one is the reference, compared with itself
/// only through the matmul tests).
fn simd_levels() -> Vec<&'static Kernels> {
    Level::available().filter(|&l| l != Level::Scalar).map(|l| Kernels::for_level(l).expect("available")).collect()
}

fn quantized(t: DType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; t.bytes_for(x.len() as u64).expect("whole blocks") as usize];
    quantize_row(t, x, &mut out).expect("quantizable");
    out
}

fn dequantized(t: DType, bytes: &[u8]) -> Vec<f32> {
    let mut out = vec![0.0; bytes.len() / t.block_bytes() * t.block_len()];
    dequantize_row(t, bytes, &mut out);
    out
}

/// Rows of 1, 2, 3 and 7 blocks (of 32 elements for the float types, so tails get exercised
/// too: 7 * 32 + 5 is not a multiple of 16); the 32-element formats also get rows of 16, 18
/// and 35 blocks, which the AVX-512 dots split into groups of 16, pairs and an odd block.
fn lengths(t: DType) -> Vec<usize> {
    let block = t.block_len().max(32);
    let blocks: &[usize] = if block == 32 { &[1, 2, 3, 7, 16, 18, 35] } else { &[1, 2, 3, 7] };
    let mut v: Vec<usize> = blocks.iter().map(|n| n * block).collect();
    if t.block_len() == 1 {
        v.extend([1, 5, 7 * 32 + 5]);
    }
    v
}

/// Values that stress the quantizers: exact halves after scaling (ties), zeros of both signs,
/// subnormals, huge and tiny magnitudes, infinities and NaN.
fn awkward_block(rng: &mut Rng, len: usize, case: usize) -> Vec<f32> {
    match case {
        // amax 127 makes d = 1: every k + 0.5 is a tie.
        0 => (0..len).map(|i| if i == 0 { 127.0 } else { (i as f32 % 64.0) - 32.5 }).collect(),
        1 => (0..len).map(|i| if i % 3 == 0 { -0.0 } else { 0.0 }).collect(),
        2 => (0..len).map(|_| rng.uniform() * 1e-40).collect(),
        3 => (0..len).map(|i| if i == 5 { f32::INFINITY } else { rng.uniform() }).collect(),
        4 => (0..len).map(|i| if i % 7 == 1 { f32::NAN } else { rng.uniform() * 1e30 }).collect(),
        5 => (0..len).map(|i| if i == 3 { f32::NEG_INFINITY } else if i == 9 { f32::NAN } else { rng.uniform() }).collect(),
        // Equal magnitudes of both signs: the first one decides Q8_K's sign.
        6 => (0..len).map(|i| if i % 2 == 0 { -2.0 } else { 2.0 }).collect(),
        _ => rng.normals(len, 3.0),
    }
}

#[test]
fn activation_quantization_is_bit_identical() {
    let mut rng = Rng(1);
    for k in simd_levels() {
        for act in [DType::Q8_0, DType::Q8_1, DType::Q8_K, DType::F16, DType::BF16, DType::F32] {
            for len in lengths(act) {
                for case in 0..9 {
                    let x = awkward_block(&mut rng, len, case);
                    let want = quantized(act, &x);
                    let mut got = vec![0xaau8; want.len()];
                    k.quantize_row(act, &x, &mut got);
                    assert_eq!(got, want, "{:?} {act} len {len} case {case}", k.level());
                }
            }
        }
    }
}

#[test]
fn dequantization_is_bit_identical() {
    let mut rng = Rng(2);
    for k in simd_levels() {
        for t in DType::WEIGHTS {
            for len in lengths(t) {
                for sigma in [1e-3, 1.0, 50.0] {
                    let bytes = quantized(t, &rng.normals(len, sigma));
                    let want = dequantized(t, &bytes);
                    let mut got = vec![f32::NAN; want.len()];
                    k.dequantize_row(t, &bytes, &mut got);
                    let (g, w): (Vec<u32>, Vec<u32>) = (got.iter().map(|v| v.to_bits()).collect(), want.iter().map(|v| v.to_bits()).collect());
                    assert_eq!(g, w, "{:?} {t} len {len}", k.level());
                }
            }
        }
    }
}

/// The bound a reordering of the float sums can move a dot by: per block, the largest weight
/// magnitude times the activations' absolute sum (every float term a kernel forms is a small
/// multiple of this), times 1e-5 (a few hundred ulp, far below any real error).
fn slack(t: DType, w: &[u8], act_type: DType, act: &[u8]) -> f64 {
    let (wd, ad) = (dequantized(t, w), dequantized(act_type, act));
    let block = t.block_len().max(32);
    let sum: f64 = wd
        .chunks(block)
        .zip(ad.chunks(block))
        .map(|(wb, ab)| f64::from(wb.iter().fold(0.0f32, |m, v| m.max(v.abs()))) * ab.iter().map(|v| f64::from(v.abs())).sum::<f64>())
        .sum();
    1e-5 * sum + 1e-30
}

#[test]
fn dot_kernels_match_the_reference_for_any_batch() {
    let mut rng = Rng(3);
    for k in simd_levels() {
        for t in DType::WEIGHTS {
            let act_type = vec_dot_type(t);
            for cols in lengths(t) {
                let n_rows = 3;
                let w: Vec<u8> = (0..n_rows).flat_map(|_| quantized(t, &rng.normals(cols, 1.0))).collect();
                let row_bytes = w.len() / n_rows;
                for n in (1..=9).chain([17]) {
                    let act: Vec<u8> = (0..n).flat_map(|_| quantized(act_type, &rng.normals(cols, 2.0))).collect();
                    let act_row_bytes = act.len() / n;
                    let mut got = vec![f32::NAN; n * n_rows];
                    k.vec_dot_rows(t, cols, &w, &act, &mut got);
                    for i in 0..n {
                        let a = &act[i * act_row_bytes..(i + 1) * act_row_bytes];
                        for r in 0..n_rows {
                            let wr = &w[r * row_bytes..(r + 1) * row_bytes];
                            let want = vec_dot(t, wr, a);
                            let g = got[i * n_rows + r];
                            let budget = slack(t, wr, act_type, a);
                            assert!((f64::from(g) - f64::from(want)).abs() <= budget, "{:?} {t} cols {cols} n {n} tok {i} row {r}: {g} vs {want} (budget {budget:e})", k.level());
                            // Alone, the token gets the very same value.
                            let mut alone = [f32::NAN];
                            k.vec_dot_rows(t, cols, wr, a, &mut alone);
                            assert_eq!(alone[0].to_bits(), g.to_bits(), "{:?} {t} cols {cols}: token {i} of {n} differs from alone", k.level());
                        }
                    }
                }
            }
        }
    }
}

/// Q8_0 weights may hold -128 (the quantizer never writes it, files can): |w| = 128 must still
/// multiply correctly.
#[test]
fn q8_0_weights_of_minus_128() {
    let mut rng = Rng(4);
    for k in simd_levels() {
        let mut w = quantized(DType::Q8_0, &rng.normals(64, 1.0));
        for (i, b) in w.iter_mut().enumerate() {
            if i % 34 >= 2 && i % 5 == 0 {
                *b = 0x80;
            }
        }
        let act = quantized(DType::Q8_0, &rng.normals(64, 1.0));
        let mut got = [0.0];
        k.vec_dot_rows(DType::Q8_0, 64, &w, &act, &mut got);
        let want = vec_dot(DType::Q8_0, &w, &act);
        assert!((got[0] - want).abs() <= 1e-5 * want.abs().max(1.0), "{:?}: {} vs {want}", k.level(), got[0]);
    }
}

fn ulps(a: f32, b: f32) -> u32 {
    if a == b || (a.is_nan() && b.is_nan()) {
        return 0;
    }
    let key = |v: f32| {
        let i = v.to_bits() as i32;
        if i < 0 {
            i32::MIN.wrapping_sub(i)
        } else {
            i
        }
    };
    key(a).wrapping_sub(key(b)).unsigned_abs()
}

#[test]
fn ops_match_the_scalar_code() {
    let mut rng = Rng(5);
    let scalar = Kernels::for_level(Level::Scalar).expect("always");
    for k in simd_levels() {
        for len in [0, 1, 7, 15, 16, 17, 31, 32, 33, 64, 128, 576, 1000] {
            let a = rng.normals(len, 1.0);
            let b = rng.normals(len, 1.0);
            let scale: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
            let (got, want) = (k.dot(&a, &b), scalar.dot(&a, &b));
            assert!((got - want).abs() <= 1e-6 * scale + 1e-30, "{:?} dot len {len}: {got} vs {want}", k.level());

            let (mut y1, mut y2) = (a.clone(), a.clone());
            k.scale_add(&mut y1, 0.7, &b, -1.3);
            scalar.scale_add(&mut y2, 0.7, &b, -1.3);
            assert_eq!(y1, y2, "{:?} scale_add len {len}", k.level());

            let (got, want) = (k.sum_squares(&a), scalar.sum_squares(&a));
            assert!((got - want).abs() <= 1e-14 * want, "{:?} sum_squares len {len}", k.level());
        }
        // SwiGLU over the whole useful range and its extremes: a few ulp from libm's exp.
        let mut gate: Vec<f32> = (0..4000).map(|i| (i as f32 - 2000.0) * 0.05).collect();
        gate.extend([-200.0, -104.5, -89.0, -88.7, -87.5, 87.5, 88.7, 89.0, 104.5, 200.0, 0.0, -0.0, 1e-30, f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
        let up: Vec<f32> = (0..gate.len()).map(|i| if i % 3 == 0 { 1.0 } else { rng.uniform() * 4.0 }).collect();
        let (mut g1, mut g2) = (gate.clone(), gate.clone());
        k.silu_mul(&mut g1, &up);
        scalar.silu_mul(&mut g2, &up);
        for ((x, got), want) in gate.iter().zip(&g1).zip(&g2) {
            assert!(ulps(*got, *want) <= 4, "{:?} silu({x}): {got} vs {want}", k.level());
        }
        let (mut g1, mut g2) = (gate.clone(), gate.clone());
        k.gelu_mul(&mut g1, &up);
        scalar.gelu_mul(&mut g2, &up);
        for ((x, got), want) in gate.iter().zip(&g1).zip(&g2) {
            assert!(ulps(*got, *want) <= 4, "{:?} gelu({x}): {got} vs {want}", k.level());
        }
    }
}

/// Attention over several blocks, folded block by block, equals a plain softmax-weighted sum,
/// for queries that see different ranges of keys (as under a causal mask, with and without a
/// sliding window) taken together, with and without a soft-cap on the scores; every level
/// agrees with the scalar one, and a query's result is bit-identical whether it runs alone or
/// among the others.
#[test]
fn attention_blocks_match_a_plain_softmax() {
    use crate::ops::{KeySlots, Scoring, SoftmaxState, ATTN_BLOCK};
    let mut rng = Rng(9);
    let scalar = Kernels::for_level(Level::Scalar).expect("always");
    for (hd, n_pos, window, softcap) in [(64, 1, None, None), (64, 16, None, None), (64, 37, None, None), (128, 50, None, Some(2.0)), (24, 33, Some(7), None), (80, 17, Some(16), Some(0.5)), (66, 40, Some(20), None)] {
        // Keys and values as the cache holds them: f16.
        let as_f16 = |v: Vec<f32>| v.into_iter().map(half::f16::from_f32).collect::<Vec<_>>();
        let keys: Vec<Vec<half::f16>> = (0..n_pos).map(|_| as_f16(rng.normals(hd, 1.0))).collect();
        let values: Vec<Vec<half::f16>> = (0..n_pos).map(|_| as_f16(rng.normals(hd, 1.0))).collect();
        let scoring = Scoring { scale: 1.0 / (hd as f32).sqrt(), softcap };
        // Query i sees positions from[i]..sees[i]: both ascending, so those that see a block
        // are always consecutive, as the engine passes them. Six spans a group of four and a pair.
        let sees: Vec<usize> = [n_pos / 3, n_pos / 2, n_pos / 2, n_pos - 1, n_pos, n_pos].iter().map(|&s| s.max(1)).collect();
        let from: Vec<usize> = sees.iter().map(|&s| window.map_or(0, |w: usize| s.saturating_sub(w))).collect();
        let q: Vec<f32> = rng.normals(sees.len() * hd, 1.0);
        let want: Vec<Vec<f64>> = sees
            .iter()
            .zip(&from)
            .enumerate()
            .map(|(i, (&seen, &first))| {
                let qi = &q[i * hd..(i + 1) * hd];
                let score = |k: &Vec<half::f16>| {
                    let s = qi.iter().zip(k).map(|(a, b)| f64::from(*a) * f64::from(b.to_f32())).sum::<f64>() * f64::from(scoring.scale);
                    softcap.map_or(s, |c| f64::from(c) * (s / f64::from(c)).tanh())
                };
                let scores: Vec<f64> = keys[first..seen].iter().map(score).collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                (0..hd).map(|d| weights.iter().zip(&values[first..seen]).map(|(w, v)| w * f64::from(v[d].to_f32())).sum::<f64>() / total).collect()
            })
            .collect();
        let run = |k: &Kernels, first: usize, last: usize| -> (Vec<f32>, Vec<SoftmaxState>) {
            let (mut states, mut out) = (vec![SoftmaxState::EMPTY; last - first], vec![0.0f32; (last - first) * hd]);
            for start in (0..n_pos).step_by(ATTN_BLOCK) {
                let mut keys_t = vec![half::f16::ZERO; hd * ATTN_BLOCK];
                let mut vals = vec![half::f16::ZERO; ATTN_BLOCK * hd];
                for j in 0..(n_pos - start).min(ATTN_BLOCK) {
                    for d in 0..hd {
                        keys_t[d * ATTN_BLOCK + j] = keys[start + j][d];
                    }
                    vals[j * hd..(j + 1) * hd].copy_from_slice(&values[start + j]);
                }
                // Slots past n hold garbage in a real cache: it must not matter.
                for j in (n_pos - start).min(ATTN_BLOCK)..ATTN_BLOCK {
                    vals[j * hd] = half::f16::NAN;
                    keys_t[j] = half::f16::MAX;
                }
                let sees_block = |i: usize| sees[i] > start && from[i] < start + ATTN_BLOCK;
                let Some(a) = (first..last).position(sees_block) else { continue };
                let b = (first + a..last).position(|i| !sees_block(i)).map_or(last, |p| first + a + p);
                let slots: Vec<KeySlots> = (first + a..b).map(|i| KeySlots { lo: from[i].saturating_sub(start), hi: (sees[i] - start).min(ATTN_BLOCK) }).collect();
                let q = &q[(first + a) * hd..b * hd];
                let (a, b) = (a, b - first);
                k.attend_block(q, &slots, &keys_t, &vals, scoring, &mut states[a..b], &mut out[a * hd..b * hd]);
            }
            (out, states)
        };
        for k in Level::available().filter_map(Kernels::for_level).chain([scalar]) {
            let (out, states) = run(k, 0, sees.len());
            for (i, want) in want.iter().enumerate() {
                for (d, (got, want)) in out[i * hd..(i + 1) * hd].iter().zip(want).enumerate() {
                    let got = f64::from(*got / states[i].sum);
                    assert!((got - want).abs() < 2e-5 * (1.0 + want.abs()), "{:?} hd {hd} n {n_pos} query {i} dim {d}: {got} vs {want}", k.level());
                }
                let (alone, _) = run(k, i, i + 1);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&alone), bits(&out[i * hd..(i + 1) * hd]), "{:?} hd {hd} n {n_pos}: query {i} alone", k.level());
            }
        }
    }
}

#[test]
fn best_is_the_highest_available_level() {
    let best = super::best().level();
    if std::env::var("HERD_SIMD").is_err() {
        assert_eq!(Some(best), Level::available().max());
    }
    assert!(best.is_supported());
}

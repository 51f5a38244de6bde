//! Run-time choice of the CPU kernels: the features are detected once, and every fast path
//! (`matmul`, the `ops` primitives) goes through the table of the best level this CPU has.
//! Each instruction set lives in its own folder (`avx2/`, `avx512/`) and is reached only
//! through its table; the scalar level is the plain reference code, and other architectures
//! get only that. Tests and benchmarks can ask for the table of any level the machine runs.
//!
//! AMX is deliberately not used, nor even detected: some virtual CPUs in our fleet advertise it
//! but fault when its instructions run.

use std::sync::OnceLock;

use half::f16;

#[cfg(target_arch = "x86_64")]
use crate::quant::block::{as_blocks, Block};
use crate::ops::{KeySlots, Scoring, SoftmaxState, ATTN_BLOCK};
use crate::quant::{dequantize_row, quantize_row};
use crate::DType;

/// `[body(0), body(1), ..]` built by a plain loop. SIMD code uses this instead of
/// `std::array::from_fn` or `map`: a closure handed to those is compiled without the caller's
/// target features and cannot be inlined, which turns every intrinsic in it into a call.
#[cfg(target_arch = "x86_64")]
macro_rules! array_of {
    ($n:expr, $zero:expr, |$i:ident| $body:expr) => {{
        let mut arr = [$zero; $n];
        for $i in 0..$n {
            arr[$i] = $body;
        }
        arr
    }};
}

/// Defines `rows::<K>`, the `DotRows` of a level's `DotTile` kernel `K`, compiled for
/// `$features` (one body for every level). A single tile of tokens runs over all the rows at
/// once; more tokens go through the rows in chunks of 16, every token tile over a chunk before
/// the next, so each weight row is read from memory once and then from L1.
#[cfg(target_arch = "x86_64")]
macro_rules! dot_rows_from_tiles {
    ($features:literal) => {
        #[target_feature(enable = $features)]
        unsafe fn rows<K: DotTile>(w: &[u8], row_bytes: usize, act: Acts<'_>, out: *mut f32, out_stride: usize) {
            const ROW_CHUNK: usize = 16;
            let (n, n_rows) = (act.n(), w.len() / row_bytes);
            let chunk = if n <= MAX_TILE { n_rows.max(1) } else { ROW_CHUNK };
            for (c, w_chunk) in w.chunks(chunk * row_bytes).enumerate() {
                let mut i = 0;
                while i < n {
                    let t = (n - i).min(MAX_TILE);
                    let (a, o) = (act.rows(i, t), out.wrapping_add(i * out_stride + c * chunk));
                    // SAFETY: the features are present and `out` covers every (token, row) here
                    // (the `DotRows` contract); `a` holds t rows.
                    unsafe {
                        match t {
                            1 => K::tile::<1>(w_chunk, row_bytes, a, o, out_stride),
                            2 => K::tile::<2>(w_chunk, row_bytes, a, o, out_stride),
                            3 => K::tile::<3>(w_chunk, row_bytes, a, o, out_stride),
                            _ => K::tile::<4>(w_chunk, row_bytes, a, o, out_stride),
                        }
                    }
                    i += t;
                }
            }
        }
    };
}

mod acts;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod kscales;
pub(crate) mod scalar;

pub(crate) use acts::{Acts, Line};

/// An instruction-set level, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Plain Rust: the reference every other level is tested against.
    Scalar,
    /// AVX2 + FMA + F16C (x86-64 since Haswell / Zen 1).
    Avx2,
    /// AVX-512 F + BW + VL + VNNI, with FMA and F16C (Ice Lake, Zen 4 and later).
    Avx512,
    /// `Avx512` plus AVX512_BF16 (Cooper Lake, Sapphire Rapids, Zen 4): adds the bf16 GEMM.
    Avx512Bf16,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Scalar, Level::Avx2, Level::Avx512, Level::Avx512Bf16];

    pub const fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
            Level::Avx512Bf16 => "avx512bf16",
        }
    }

    pub fn from_name(name: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.name().eq_ignore_ascii_case(name))
    }

    /// Whether this CPU (and OS) can run the level's instructions.
    pub fn is_supported(self) -> bool {
        match self {
            Level::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => {
                std::is_x86_feature_detected!("avx2")
                    && std::is_x86_feature_detected!("fma")
                    && std::is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => {
                Level::Avx2.is_supported()
                    && std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512bw")
                    && std::is_x86_feature_detected!("avx512vl")
                    && std::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "x86_64")]
            Level::Avx512Bf16 => Level::Avx512.is_supported() && std::is_x86_feature_detected!("avx512bf16"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every level this machine supports, lowest first.
    pub fn available() -> impl Iterator<Item = Level> {
        Level::ALL.into_iter().filter(|l| l.is_supported())
    }
}

/// Integer dots of several weight rows with activation rows: `w` holds whole weight rows of
/// `row_bytes`, and the dot of weight row `r` with activation row `i` goes to
/// `out[i * out_stride + r]`. A kernel computes each value with the same operations whatever
/// the number of activation rows and wherever the token sits among them, so batching never
/// changes a result.
///
/// # Safety
/// Only callable on a CPU that has the level's features; the rows must agree in length, and
/// `out` must be valid for writes at every index above.
pub(crate) type DotRows = unsafe fn(w: &[u8], row_bytes: usize, act: Acts<'_>, out: *mut f32, out_stride: usize);

/// A dot kernel of up to `MAX_TILE` tokens at once (`T`): the unit the levels' `DotRows` loops
/// are built from (except AVX-512's integer dots, whose tiles are wider: see `avx512::Tiled`).
/// It prepares the activation rows once, then runs weight row after weight row of `w_rows`
/// (rows of `row_bytes`), writing row `r`'s dot with token `t` at `out[t * out_stride + r]`.
#[cfg(target_arch = "x86_64")]
pub(crate) trait DotTile {
    /// # Safety
    /// The level's features must be present; `act` holds `T` activation rows that match the
    /// weight rows; `out` must be valid for those writes, which no other thread may touch.
    unsafe fn tile<const T: usize>(w_rows: &[u8], row_bytes: usize, act: Acts<'_>, out: *mut f32, out_stride: usize);
}

/// Tokens per dot tile: enough to reuse each decoded weight block several times, few enough
/// that the accumulators stay in registers.
#[cfg(target_arch = "x86_64")]
pub(crate) const MAX_TILE: usize = 4;

/// The register-blocked f32 microkernel: `C (T tokens, n_rows) (+)= x_packed · panel` over `kc`
/// steps of k, T being the kernel's index in `Gemm::kernels` plus one.
///
/// `panel` is (kc, mr) (row `r` of the weight panel at lane `r` of each k step), `x` is (kc, nr)
/// (token `t` at lane `t`), `c` points at token 0's output for the panel's first row and steps
/// `c_stride` floats per token. Only the first `n_rows` rows are loaded and stored. With
/// `accumulate`, each sum starts from the value in `c`, else from zero; either way it is a plain
/// chain of fused multiply-adds over k, so a value does not depend on the tile it falls in.
///
/// # Safety
/// The level's features must be present and the pointers valid for those extents.
pub(crate) type MicroKernel =
    unsafe fn(kc: usize, panel: *const f32, x: *const f32, c: *mut f32, c_stride: usize, n_rows: usize, accumulate: bool);

/// Transposes up to `lanes` rows into columns of the GEMM's units (see `Gemm::k_per_unit`):
/// row `i` of `n_rows` (`src + i * src_stride`, `len` floats) becomes lane `i` of each of the
/// `len.div_ceil(k_per_unit)` output rows (`dst + u * dst_stride`), of which the first
/// `n_lanes` are written: rows past `n_rows` write zeros there.
///
/// # Safety
/// The level's features must be present, `n_rows <= lanes`, `n_lanes <= lanes`, and the
/// pointers valid for those extents.
pub(crate) type Transpose = unsafe fn(src: *const f32, src_stride: usize, n_rows: usize, len: usize, dst: *mut f32, dst_stride: usize, n_lanes: usize);

/// (q, keys_t, values, slots, scoring, state, out): `AttendBlock` for one query.
type AttendOne = unsafe fn(&[f32], &[f16], &[f16], KeySlots, Scoring, &mut SoftmaxState, &mut [f32]);

/// (q, slots, keys_t, values, scoring, states, out): see `ops::attend_block`.
type AttendBlock = unsafe fn(&[f32], &[KeySlots], &[f16], &[f16], Scoring, &mut [SoftmaxState], &mut [f32]);

/// A level's GEMM: its tile shape, one microkernel per token count 1..=nr, and the transpose
/// that packs both operands into the units its microkernels step over.
pub(crate) struct Gemm {
    /// Weight rows per panel (lanes of the accumulators).
    pub mr: usize,
    /// Tokens per tile.
    pub nr: usize,
    pub kernels: &'static [MicroKernel],
    /// Rows the transpose takes at once (a divisor of `mr`, at least `nr`).
    pub lanes: usize,
    /// Values of k in one 4-byte unit of the packed operands: 1 for f32, 2 for a pair of bf16.
    /// The microkernels' `kc`, the strides of `panel` and `x` count units.
    pub k_per_unit: usize,
    pub transpose: Transpose,
}

/// One level's kernels. A `Kernels` exists only for a level the CPU supports (see `for_level`),
/// which is what makes calling its `unsafe fn` pointers sound.
pub struct Kernels {
    level: Level,
    /// Quantizes a row to an activation type, byte for byte as `quantize_row`; false when the
    /// level has no fast path for `dtype` (the caller falls back to the scalar code).
    quantize_act: unsafe fn(DType, &[f32], &mut [u8]) -> bool,
    /// Lines of prepared activations per row of `cols` elements of an activation type (0 where
    /// the level's kernels read the rows as they are).
    prep_lines: fn(DType, usize) -> usize,
    /// Writes those lines for one quantized row (`prep_lines` of them).
    prepare: unsafe fn(DType, &[u8], &mut [Line]),
    /// The dot kernel for a weight type, or None where the scalar reference serves.
    dot_rows: fn(DType) -> Option<DotRows>,
    /// Decodes a row to f32 bit for bit as `dequantize_row`; false when there is no fast path.
    dequantize: unsafe fn(DType, &[u8], &mut [f32]) -> bool,
    gemm: Option<&'static Gemm>,
    /// The GEMM of `Precision::Bf16`, where the level has one.
    gemm_bf16: Option<&'static Gemm>,
    dot: unsafe fn(&[f32], &[f32]) -> f32,
    scale_add: unsafe fn(&mut [f32], f32, &[f32], f32),
    sum_squares: unsafe fn(&[f32]) -> f64,
    silu_mul: unsafe fn(&mut [f32], &[f32]),
    gelu_mul: unsafe fn(&mut [f32], &[f32]),
    attend_block: AttendBlock,
}

impl Kernels {
    pub fn level(&self) -> Level {
        self.level
    }

    /// The kernels of `level`, or None when this CPU cannot run it.
    pub fn for_level(level: Level) -> Option<&'static Kernels> {
        if !level.is_supported() {
            return None;
        }
        match level {
            Level::Scalar => Some(&scalar::KERNELS),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => Some(&avx2::KERNELS),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => Some(&avx512::KERNELS),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512Bf16 => Some(&avx512::KERNELS_BF16),
            #[cfg(not(target_arch = "x86_64"))]
            _ => None,
        }
    }

    /// Same bytes as `quantize_row(dtype, src, dst)`; panics where it would.
    pub fn quantize_row(&self, dtype: DType, src: &[f32], dst: &mut [u8]) {
        assert_eq!(
            dtype.bytes_for(src.len() as u64),
            Some(dst.len() as u64),
            "{} bytes of {dtype} do not hold {} elements",
            dst.len(),
            src.len()
        );
        // SAFETY: this table exists only for a supported level; the lengths agree.
        if !unsafe { (self.quantize_act)(dtype, src, dst) } {
            quantize_row(dtype, src, dst).expect("every activation type can be quantized to");
        }
    }

    /// Lines of prepared activations a row of `cols` elements of `act_type` needs.
    pub(crate) fn prep_lines(&self, act_type: DType, cols: usize) -> usize {
        (self.prep_lines)(act_type, cols)
    }

    /// Prepares one quantized activation row of `cols` elements for this level's dot kernels.
    pub(crate) fn prepare_row(&self, act_type: DType, cols: usize, row: &[u8], dst: &mut [Line]) {
        assert!(
            act_type.bytes_for(cols as u64) == Some(row.len() as u64) && dst.len() == self.prep_lines(act_type, cols),
            "prepare_row: {} bytes and {} lines do not fit {cols} {act_type} elements",
            row.len(),
            dst.len()
        );
        // SAFETY: this table exists only for a supported level; the lengths agree.
        unsafe { (self.prepare)(act_type, row, dst) }
    }

    /// Same values as `dequantize_row(dtype, src, dst)`, bit for bit.
    pub fn dequantize_row(&self, dtype: DType, src: &[u8], dst: &mut [f32]) {
        assert_eq!(
            dtype.bytes_for(dst.len() as u64),
            Some(src.len() as u64),
            "{} bytes of {dtype} do not hold {} elements",
            src.len(),
            dst.len()
        );
        // SAFETY: this table exists only for a supported level; the lengths agree.
        if !unsafe { (self.dequantize)(dtype, src, dst) } {
            dequantize_row(dtype, src, dst);
        }
    }

    /// Dots every weight row in `w` (whole rows of `cols` elements of `weight`) with every
    /// activation row in `act` (rows in `vec_dot_type(weight)`): `out` is (n_act, n_weight_rows).
    /// Equal to `quant::vec_dot` up to the order of float additions, and the same for a token
    /// however many others share the call. (It allocates the prepared activations; `matmul`
    /// keeps them in its scratch instead.)
    pub fn vec_dot_rows(&self, weight: DType, cols: usize, w: &[u8], act: &[u8], out: &mut [f32]) {
        let (row_bytes, act_row_bytes) = row_sizes(weight, cols);
        let act_type = crate::vec_dot_type(weight);
        let n_rows = w.len() / row_bytes;
        let n = act.len() / act_row_bytes;
        assert_eq!(out.len(), n * n_rows, "vec_dot_rows: output is not (n, rows)");
        let per_row = self.prep_lines(act_type, cols);
        let mut prep = vec![Line::ZERO; n * per_row];
        for (row, dst) in act.chunks_exact(act_row_bytes).zip(prep.chunks_exact_mut(per_row.max(1))) {
            self.prepare_row(act_type, cols, row, dst);
        }
        let acts = Acts::new(act, act_row_bytes, &prep, per_row);
        // SAFETY: `out` is (n, n_rows), so every index r + i * n_rows is in bounds.
        unsafe { self.vec_dot_rows_into(weight, cols, w, acts, out.as_mut_ptr(), n_rows) }
    }

    /// `vec_dot_rows` writing the dot of weight row `r` and activation row `i` at
    /// `out[i * out_stride + r]`.
    ///
    /// # Safety
    /// `out` must be valid for those writes, and no other thread may touch those elements.
    pub(crate) unsafe fn vec_dot_rows_into(&self, weight: DType, cols: usize, w: &[u8], act: Acts<'_>, out: *mut f32, out_stride: usize) {
        let (row_bytes, act_row_bytes) = row_sizes(weight, cols);
        assert!(
            w.len().is_multiple_of(row_bytes) && act.row_bytes() == act_row_bytes && act.prep_per_row() == self.prep_lines(crate::vec_dot_type(weight), cols),
            "vec_dot_rows: {} bytes of weights and activation rows of {} bytes are not rows of {cols} {weight} elements",
            w.len(),
            act.row_bytes()
        );
        match (self.dot_rows)(weight) {
            // SAFETY: this table exists only for a supported level; the shapes are checked, and
            // `out` is the caller's promise.
            Some(kernel) => unsafe { kernel(w, row_bytes, act, out, out_stride) },
            None => {
                for (r, wr) in w.chunks_exact(row_bytes).enumerate() {
                    for i in 0..act.n() {
                        let a = act.row(i);
                        // SAFETY: the caller's promise.
                        unsafe { *out.add(i * out_stride + r) = crate::vec_dot(weight, wr, a) };
                    }
                }
            }
        }
    }

    /// See `ops::attend_block`; equal to the scalar code up to float rounding (a vector `exp`,
    /// another summation order).
    #[allow(clippy::too_many_arguments)]
    pub fn attend_block(&self, q: &[f32], slots: &[KeySlots], keys_t: &[f16], values: &[f16], scoring: Scoring, states: &mut [SoftmaxState], out: &mut [f32]) {
        let hd = keys_t.len() / ATTN_BLOCK;
        assert!(
            keys_t.len() == hd * ATTN_BLOCK
                && values.len() == ATTN_BLOCK * hd
                && q.len() == slots.len() * hd
                && out.len() == q.len()
                && states.len() == slots.len()
                && slots.iter().all(|s| s.lo < s.hi && s.hi <= ATTN_BLOCK),
            "attend_block: shapes disagree"
        );
        // SAFETY: supported level; shapes checked.
        unsafe { (self.attend_block)(q, slots, keys_t, values, scoring, states, out) }
    }

    pub(crate) fn gemm(&self) -> Option<&'static Gemm> {
        self.gemm
    }

    pub(crate) fn gemm_bf16(&self) -> Option<&'static Gemm> {
        self.gemm_bf16
    }

    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "dot: lengths differ");
        // SAFETY: supported level; equal lengths.
        unsafe { (self.dot)(a, b) }
    }

    /// `y = y * a + x * b`, bit for bit as the scalar code at every level.
    pub fn scale_add(&self, y: &mut [f32], a: f32, x: &[f32], b: f32) {
        assert_eq!(y.len(), x.len(), "scale_add: lengths differ");
        // SAFETY: supported level; equal lengths.
        unsafe { (self.scale_add)(y, a, x, b) }
    }

    /// Sum of squares, accumulated in f64.
    pub fn sum_squares(&self, x: &[f32]) -> f64 {
        // SAFETY: supported level.
        unsafe { (self.sum_squares)(x) }
    }

    /// SwiGLU: `gate = silu(gate) * up`.
    pub fn silu_mul(&self, gate: &mut [f32], up: &[f32]) {
        assert_eq!(gate.len(), up.len(), "silu_mul: lengths differ");
        // SAFETY: supported level; equal lengths.
        unsafe { (self.silu_mul)(gate, up) }
    }

    /// GeGLU (tanh GELU): `gate = gelu_tanh(gate) * up`.
    pub fn gelu_mul(&self, gate: &mut [f32], up: &[f32]) {
        assert_eq!(gate.len(), up.len(), "gelu_mul: lengths differ");
        // SAFETY: supported level; equal lengths.
        unsafe { (self.gelu_mul)(gate, up) }
    }
}

/// A level's `AttendBlock` from a kernel of one query at a time.
///
/// # Safety
/// As `AttendBlock`, for `one`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn each_query(one: AttendOne, q: &[f32], slots: &[KeySlots], keys_t: &[f16], values: &[f16], scoring: Scoring, states: &mut [SoftmaxState], out: &mut [f32]) {
    let hd = keys_t.len() / ATTN_BLOCK;
    for (((q, &slots), state), out) in q.chunks_exact(hd).zip(slots).zip(states).zip(out.chunks_exact_mut(hd)) {
        // SAFETY: the caller's promise.
        unsafe { one(q, keys_t, values, slots, scoring, state, out) }
    }
}

/// Views the first `T` rows of `act` as blocks, checking that each holds `n_blocks`: the one
/// bounds check a dot tile needs before its loop.
#[cfg(target_arch = "x86_64")]
pub(crate) fn act_rows<B: Block, const T: usize>(act: Acts<'_>, n_blocks: usize) -> [&[B]; T] {
    std::array::from_fn(|t| {
        let row: &[B] = as_blocks(act.row(t));
        assert_eq!(row.len(), n_blocks, "activation row {t} does not match the weight row");
        row
    })
}

/// Bytes in a weight row of `cols` elements of `weight` and in its activation row. Panics
/// unless `cols` is a whole number of blocks of both.
fn row_sizes(weight: DType, cols: usize) -> (usize, usize) {
    let act_type = crate::vec_dot_type(weight);
    let bytes = |t: DType| t.bytes_for(cols as u64).unwrap_or_else(|| panic!("{cols} elements are not whole {t} blocks")) as usize;
    (bytes(weight), bytes(act_type))
}

/// The kernels of the best level this CPU supports, chosen once. `HERD_SIMD=scalar|avx2|avx512|avx512bf16`
/// caps the level (for comparing levels end to end); an unknown or unsupported value is ignored.
pub fn best() -> &'static Kernels {
    static BEST: OnceLock<&'static Kernels> = OnceLock::new();
    BEST.get_or_init(|| {
        let cap = std::env::var("HERD_SIMD").ok().and_then(|v| Level::from_name(&v)).unwrap_or(Level::Avx512Bf16);
        let level = Level::available().filter(|&l| l <= cap).max().unwrap_or(Level::Scalar);
        Kernels::for_level(level).expect("an available level has kernels")
    })
}

#[cfg(test)]
pub(crate) mod tests;

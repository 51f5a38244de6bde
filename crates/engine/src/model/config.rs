//! Hyperparameters every family has, read from GGUF metadata and checked for sense before any
//! buffer is sized from them; `Meta` reads a family's own keys the same way.

use herd_gguf::Gguf;
use herd_kernels::ops::RopeStyle;

use crate::error::{EngineError, Result};

/// A file's metadata under its architecture's prefix (`{arch}.block_count`, ...), with errors
/// that name the file and the key.
pub struct Meta<'a> {
    pub file: &'a Gguf,
    pub arch: &'a str,
}

impl Meta<'_> {
    pub fn bad(&self, message: String) -> EngineError {
        EngineError::Model { path: self.file.path().to_path_buf(), message }
    }

    pub fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.arch)
    }

    /// An unsigned integer key, when present.
    pub fn usize(&self, k: &str) -> Result<Option<usize>> {
        self.file.get_u64(&self.key(k))?.map(|v| usize::try_from(v).map_err(|_| self.bad(format!("key '{}': {v} is too large", self.key(k))))).transpose()
    }

    /// An unsigned integer key that must be present.
    pub fn required(&self, k: &str) -> Result<usize> {
        self.usize(k)?.ok_or_else(|| self.bad(format!("missing key '{}'", self.key(k))))
    }

    /// A number key, when present.
    pub fn f32(&self, k: &str) -> Result<Option<f32>> {
        Ok(self.file.get_f64(&self.key(k))?.map(|v| v as f32))
    }

    /// A positive, finite number key, when present.
    pub fn positive(&self, k: &str) -> Result<Option<f32>> {
        match self.f32(k)? {
            Some(v) if !(v > 0.0 && v.is_finite()) => Err(self.bad(format!("key '{}' is {v}, expected a positive number", self.key(k)))),
            v => Ok(v),
        }
    }

    /// Errors unless `1 <= v <= max`.
    pub fn sane(&self, name: &str, v: usize, max: usize) -> Result<()> {
        if v == 0 || v > max {
            Err(self.bad(format!("{name} is {v}, expected 1..={max}")))
        } else {
            Ok(())
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub arch: String,
    pub n_layers: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Hidden width of the feed-forward block.
    pub d_ff: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub n_vocab: usize,
    /// The context length the model was trained for.
    pub n_ctx_train: usize,
    pub rms_eps: f32,
    pub rope: RopeConfig,
}

#[derive(Clone, Debug)]
pub struct RopeConfig {
    pub base: f32,
    /// Dimensions of each head that rotate (the rest pass through).
    pub n_rot: usize,
    pub style: RopeStyle,
    /// Positions are divided by this (linear scaling); 1 when unscaled.
    pub linear_scale: f32,
    /// Llama-3-style per-pair divisors of the rotation frequency (n_rot / 2 of them), from the
    /// `rope_freqs.weight` tensor or computed from `rope.scaling.*` metadata.
    pub freq_factors: Option<Vec<f32>>,
}

impl RopeConfig {
    /// Rotation frequency of each pair, scaling applied: position × frequency is the angle.
    pub fn inv_freqs(&self) -> Vec<f64> {
        (0..self.n_rot / 2)
            .map(|i| {
                let f = f64::from(self.base).powf(-2.0 * i as f64 / self.n_rot as f64);
                let factor = self.freq_factors.as_ref().map_or(1.0, |ff| f64::from(ff[i]));
                f / factor / f64::from(self.linear_scale)
            })
            .collect()
    }
}

impl Config {
    /// The hyperparameters under `meta`'s architecture; rotary embeddings in `style`.
    pub fn from_gguf(meta: &Meta<'_>, style: RopeStyle) -> Result<Config> {
        let (g, arch) = (meta.file, meta.arch);
        let n_layers = meta.required("block_count")?;
        let d_model = meta.required("embedding_length")?;
        let d_ff = meta.required("feed_forward_length")?;
        let n_heads = meta.required("attention.head_count")?;
        let n_kv_heads = meta.usize("attention.head_count_kv")?.unwrap_or(n_heads);
        let n_ctx_train = meta.required("context_length")?;
        let rms_eps = meta.f32("attention.layer_norm_rms_epsilon")?.unwrap_or(1e-5);

        meta.sane("block_count", n_layers, 1024)?;
        meta.sane("embedding_length", d_model, 1 << 16)?;
        meta.sane("feed_forward_length", d_ff, 1 << 18)?;
        meta.sane("attention.head_count", n_heads, 1024)?;
        meta.sane("attention.head_count_kv", n_kv_heads, n_heads)?;
        meta.sane("context_length", n_ctx_train, 1 << 24)?;
        if n_heads % n_kv_heads != 0 {
            return Err(meta.bad(format!("attention.head_count {n_heads} is not a multiple of attention.head_count_kv {n_kv_heads}")));
        }
        let head_dim = match meta.usize("attention.key_length")? {
            Some(d) => d,
            None if d_model % n_heads == 0 => d_model / n_heads,
            None => return Err(meta.bad(format!("embedding_length {d_model} is not a multiple of attention.head_count {n_heads}"))),
        };
        meta.sane("head dimension", head_dim, 1024)?;
        if let Some(v) = meta.usize("attention.value_length")?.filter(|&v| v != head_dim) {
            return Err(meta.bad(format!("attention.value_length {v} differs from attention.key_length {head_dim}, which herd does not run")));
        }
        if !(rms_eps > 0.0 && rms_eps < 1.0) {
            return Err(meta.bad(format!("attention.layer_norm_rms_epsilon is {rms_eps}, expected a small positive number")));
        }

        let embd = g.tensor("token_embd.weight").ok_or_else(|| meta.bad("missing tensor 'token_embd.weight'".into()))?;
        let n_vocab = match embd.dims.as_slice() {
            [d, n] if *d as usize == d_model => *n as usize,
            dims => return Err(meta.bad(format!("tensor 'token_embd.weight': dims {dims:?}, expected [{d_model}, n_vocab]"))),
        };

        let rope = rope_config(meta, head_dim, style)?;
        Ok(Config { arch: arch.to_string(), n_layers, d_model, d_ff, n_heads, n_kv_heads, head_dim, n_vocab, n_ctx_train, rms_eps, rope })
    }

    /// Width of one position's keys (or values) across all KV heads.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Width of one position's queries across all heads.
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }
}

fn rope_config(meta: &Meta<'_>, head_dim: usize, style: RopeStyle) -> Result<RopeConfig> {
    let (g, arch) = (meta.file, meta.arch);
    let bad = |m: String| meta.bad(m);
    let key = |k: &str| meta.key(k);
    let base = meta.f32("rope.freq_base")?.unwrap_or(10000.0);
    if !(base > 1.0 && base.is_finite()) {
        return Err(bad(format!("rope.freq_base is {base}, expected a number above 1")));
    }
    let n_rot = match g.get_u64(&key("rope.dimension_count"))? {
        Some(n) if n > 0 && n as usize <= head_dim && n % 2 == 0 => n as usize,
        Some(n) => return Err(bad(format!("rope.dimension_count is {n}, expected an even number up to the head dimension {head_dim}"))),
        None => head_dim,
    };
    let scaling_type = g.get_str(&key("rope.scaling.type"))?;
    // Older files give only `rope.scale_linear`, which means linear scaling.
    let factor = match meta.f32("rope.scaling.factor")? {
        Some(f) => Some(f),
        None => meta.f32("rope.scale_linear")?,
    };
    let mut linear_scale = 1.0;
    let mut freq_factors = None;
    match scaling_type {
        Some("none") => {}
        None | Some("linear") => linear_scale = factor.unwrap_or(1.0),
        Some("llama3") => freq_factors = Some(llama3_factors(g, arch, base, n_rot, factor, &bad)?),
        Some(other) => return Err(bad(format!("rope scaling type '{other}' is not supported (herd supports linear and llama3)"))),
    }
    if !(linear_scale > 0.0 && linear_scale.is_finite()) {
        return Err(bad(format!("rope scaling factor is {linear_scale}, expected a positive number")));
    }
    // Converters for Llama 3.1+ store the llama3 factors precomputed as a tensor.
    if g.tensor("rope_freqs.weight").is_some() {
        freq_factors = Some(rope_factors(meta, "rope_freqs.weight", n_rot)?);
    }
    Ok(RopeConfig { base, n_rot, style, linear_scale, freq_factors })
}

/// A tensor of per-pair frequency divisors (`rope_freqs`, LongRoPE's short and long factors):
/// n_rot / 2 positive F32 values.
pub fn rope_factors(meta: &Meta<'_>, name: &str, n_rot: usize) -> Result<Vec<f32>> {
    let t = meta.file.tensor(name).ok_or_else(|| meta.bad(format!("missing tensor '{name}'")))?;
    if t.dims != [(n_rot / 2) as u64] {
        return Err(meta.bad(format!("tensor '{name}': dims {:?}, expected [{}] (half the rotated dimensions)", t.dims, n_rot / 2)));
    }
    if t.dtype != herd_kernels::DType::F32 {
        return Err(meta.bad(format!("tensor '{name}': type {}, expected F32", t.dtype)));
    }
    let factors: Vec<f32> = meta.file.tensor_data(t).chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    if factors.iter().any(|f| !(*f > 0.0 && f.is_finite())) {
        return Err(meta.bad(format!("tensor '{name}' holds a factor that is not a positive number")));
    }
    Ok(factors)
}

/// Llama 3.1's frequency-dependent scaling: long wavelengths are slowed by `factor`, short ones
/// kept, and the band between blended smoothly.
fn llama3_factors(g: &Gguf, arch: &str, base: f32, n_rot: usize, factor: Option<f32>, bad: &dyn Fn(String) -> EngineError) -> Result<Vec<f32>> {
    let get = |k: &str| -> Result<f64> {
        let full = format!("{arch}.rope.scaling.{k}");
        g.get_f64(&full)?.ok_or_else(|| bad(format!("rope scaling type llama3 needs key '{full}'")))
    };
    let factor = f64::from(factor.ok_or_else(|| bad(format!("rope scaling type llama3 needs key '{arch}.rope.scaling.factor'")))?);
    let low = get("low_freq_factor")?;
    let high = get("high_freq_factor")?;
    let original_ctx = get("original_context_length")?;
    if !(factor >= 1.0 && low > 0.0 && high > low && original_ctx > 0.0) {
        return Err(bad(format!("llama3 rope scaling: factor {factor}, low_freq_factor {low}, high_freq_factor {high}, original_context_length {original_ctx} are not consistent")));
    }
    let (low_wavelen, high_wavelen) = (original_ctx / low, original_ctx / high);
    Ok((0..n_rot / 2)
        .map(|i| {
            let freq = f64::from(base).powf(-2.0 * i as f64 / n_rot as f64);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            let scaled = if wavelen < high_wavelen {
                freq
            } else if wavelen > low_wavelen {
                freq / factor
            } else {
                let smooth = (original_ctx / wavelen - low) / (high - low);
                (1.0 - smooth) * freq / factor + smooth * freq
            };
            (freq / scaled) as f32
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use herd_gguf::{GgufWriter, Value};
    use herd_kernels::DType;

    use super::*;

    /// A file with the given llama metadata on top of a small valid base, and no weights but
    /// the embedding (Config reads nothing else).
    fn config(extra: &[(&str, Value)]) -> Result<Config> {
        let mut w = GgufWriter::new(3);
        w.add("general.architecture", "llama".into())
            .add("llama.block_count", 2u32.into())
            .add("llama.context_length", 128u32.into())
            .add("llama.embedding_length", 64u32.into())
            .add("llama.feed_forward_length", 128u32.into())
            .add("llama.attention.head_count", 4u32.into());
        for (k, v) in extra {
            w.add(k, v.clone());
        }
        w.add_tensor("token_embd.weight", &[64, 10], DType::F32, vec![0; 64 * 10 * 4]);
        let file = Gguf::from_bytes("test.gguf", w.to_bytes()).unwrap();
        Config::from_gguf(&Meta { file: &file, arch: "llama" }, RopeStyle::Adjacent)
    }

    #[test]
    fn defaults_and_derived_sizes() {
        let c = config(&[]).unwrap();
        assert_eq!((c.n_kv_heads, c.head_dim, c.n_vocab, c.rope.n_rot), (4, 16, 10, 16));
        assert_eq!((c.rope.base, c.rope.linear_scale), (10000.0, 1.0));
        assert!(c.rope.freq_factors.is_none());
    }

    #[test]
    fn linear_scaling_divides_positions() {
        for extra in [vec![("llama.rope.scaling.type", "linear".into()), ("llama.rope.scaling.factor", 4.0f32.into())], vec![("llama.rope.scale_linear", 4.0f32.into())]] {
            let c = config(&extra).unwrap();
            assert_eq!(c.rope.linear_scale, 4.0);
            let plain = config(&[]).unwrap().rope.inv_freqs();
            for (a, b) in c.rope.inv_freqs().iter().zip(plain) {
                assert!((a * 4.0 - b).abs() < 1e-15);
            }
        }
    }

    #[test]
    fn llama3_scaling_keeps_high_frequencies_and_slows_low_ones() {
        let extra = [
            ("llama.rope.scaling.type", Value::from("llama3")),
            ("llama.rope.scaling.factor", 8.0f32.into()),
            ("llama.rope.scaling.low_freq_factor", 1.0f32.into()),
            ("llama.rope.scaling.high_freq_factor", 4.0f32.into()),
            ("llama.rope.scaling.original_context_length", 64u32.into()),
            ("llama.rope.freq_base", 500000.0f32.into()),
        ];
        let c = config(&extra).unwrap();
        let factors = c.rope.freq_factors.unwrap();
        // Wavelength 2π·base^(2i/16): pair 0 (~6 positions) is under 64/4 and kept; the last
        // pair's wavelength is far beyond 64 and slowed by the full factor.
        assert_eq!(factors[0], 1.0);
        assert_eq!(factors[7], 8.0);
        assert!(factors.windows(2).all(|w| w[0] <= w[1]), "{factors:?}");
    }

    #[test]
    fn nonsense_is_refused_by_name() {
        let cases: Vec<(Vec<(&str, Value)>, &str)> = vec![
            (vec![("llama.attention.head_count_kv", 3u32.into())], "not a multiple of attention.head_count_kv 3"),
            (vec![("llama.attention.head_count_kv", 8u32.into())], "attention.head_count_kv is 8"),
            (vec![("llama.rope.dimension_count", 17u32.into())], "rope.dimension_count is 17"),
            (vec![("llama.rope.scaling.type", "yarn".into())], "rope scaling type 'yarn' is not supported"),
            (vec![("llama.rope.scaling.type", "llama3".into()), ("llama.rope.scaling.factor", 8.0f32.into())], "needs key 'llama.rope.scaling.low_freq_factor'"),
            (vec![("llama.attention.layer_norm_rms_epsilon", (-1.0f32).into())], "layer_norm_rms_epsilon"),
            (vec![("llama.rope.freq_base", 0.5f32.into())], "rope.freq_base is 0.5"),
        ];
        for (extra, want) in cases {
            let err = config(&extra).unwrap_err().to_string();
            assert!(err.starts_with("test.gguf: ") && err.contains(want), "{err:?} lacks {want:?}");
        }
    }
}

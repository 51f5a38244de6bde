//! `herd plan`: capacity planning from first principles. From a model's shape and format, a
//! device's memory, bandwidth and peak FLOP/s, and a workload, it derives the memory a replica
//! needs, decoding and prompt speeds, the replicas a workload takes, and what pretraining costs.
//! Every figure comes from a formula `Plan::explain` states; nothing here runs a model.
//!
//! `model` knows shapes and formats, `hardware` the devices (and probes this CPU), `estimate`
//! the arithmetic. The CLI (`herd plan`) only parses flags into `Inputs` and prints a `Plan`.

pub mod estimate;
pub mod hardware;
pub mod model;

pub use estimate::{plan, Inputs, Plan, Training};
pub use hardware::{catalogue, find_gpu, probe_cpu, Hardware, ProbeShape};
pub use model::{find_shape, Format, Model, Shape, SHAPES};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A flag's value makes no sense (one line, naming the flag or listing what is known).
    #[error("{0}")]
    Input(String),
    /// A model file could not be read as a model herd runs.
    #[error("{0}")]
    Model(String),
    /// The model does not fit where it was asked to (the message says what would).
    #[error("{0}")]
    DoesNotFit(String),
}

/// Parses `NxNAME` (`8xh100`, `600000xH100`) into a count and a hardware name; a bare name is
/// one device. Zero devices is an error.
pub fn parse_devices(flag: &str, value: &str) -> Result<(u64, String), PlanError> {
    let (n, name) = match value.split_once(['x', 'X']) {
        Some((n, name)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == '_' || c == ',') => (n, name),
        _ if value.starts_with('-') => return Err(PlanError::Input(format!("{flag} {value}: the count of devices must be at least 1"))),
        _ => ("1", value),
    };
    let n: u64 = n.replace(['_', ','], "").parse().map_err(|_| PlanError::Input(format!("{flag} {value}: expected COUNTxNAME, e.g. 8xh100")))?;
    if n == 0 {
        return Err(PlanError::Input(format!("{flag} {value}: zero GPUs; the count must be at least 1")));
    }
    if name.is_empty() {
        return Err(PlanError::Input(format!("{flag} {value}: expected COUNTxNAME, e.g. 8xh100")));
    }
    Ok((n, name.to_string()))
}

/// Parses a token count: a number with an optional K, M, B or T suffix (`15.6T`, `1.5e13`).
pub fn parse_tokens(flag: &str, value: &str) -> Result<f64, PlanError> {
    let v = value.trim();
    let (num, scale) = match v.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&v[..v.len() - 1], 1e3),
        Some('M') => (&v[..v.len() - 1], 1e6),
        Some('B') | Some('G') => (&v[..v.len() - 1], 1e9),
        Some('T') => (&v[..v.len() - 1], 1e12),
        _ => (v, 1.0),
    };
    match num.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x * scale),
        Ok(_) => Err(PlanError::Input(format!("{flag} is {value}: it must be a positive number of tokens"))),
        Err(_) => Err(PlanError::Input(format!("{flag} {value}: expected a number of tokens, e.g. 15.6T or 1.5e13"))),
    }
}

/// A length or count flag that must be at least 1.
pub fn positive(flag: &str, value: i64) -> Result<usize, PlanError> {
    usize::try_from(value).ok().filter(|&v| v >= 1).ok_or_else(|| PlanError::Input(format!("{flag} is {value}: it must be at least 1")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_counts_and_token_counts_parse() {
        assert_eq!(parse_devices("--gpus", "8xh100").unwrap(), (8, "h100".into()));
        assert_eq!(parse_devices("--fleet", "600000xH100").unwrap(), (600000, "H100".into()));
        assert_eq!(parse_devices("--gpus", "h200").unwrap(), (1, "h200".into()));
        for bad in ["0xh100", "-2xh100", "8x"] {
            let e = parse_devices("--gpus", bad);
            assert!(e.is_err(), "{bad}");
        }
        assert!(parse_devices("--gpus", "0xh100").unwrap_err().to_string().contains("zero GPUs"));
        assert_eq!(parse_tokens("--train-tokens", "15.6T").unwrap(), 15.6e12);
        assert_eq!(parse_tokens("--train-tokens", "1.5e13").unwrap(), 1.5e13);
        assert!(parse_tokens("--train-tokens", "-3").is_err() && parse_tokens("--train-tokens", "lots").is_err());
        assert_eq!(positive("--ctx", 8192).unwrap(), 8192);
        assert_eq!(positive("--ctx", -5).unwrap_err().to_string(), "--ctx is -5: it must be at least 1");
    }
}

//! The sampling and stopping flags `herd run` and `herd chat` share, with llama.cpp's names
//! and defaults.

use anyhow::Result;
use herd_engine::generate::GenerateParams;
use herd_engine::sampler::SamplingParams;

#[derive(clap::Args)]
pub struct GenerationArgs {
    /// Most tokens to generate.
    #[arg(short = 'n', long, default_value_t = 256)]
    pub max_tokens: usize,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    /// 0 disables.
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// 1 disables.
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// 0 disables.
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// 1 disables.
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    pub presence_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    pub frequency_penalty: f32,
    /// Seed of the sampler (default: a random one, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop when this text is generated (repeatable); it is not printed.
    #[arg(long)]
    pub stop: Vec<String>,
}

impl GenerationArgs {
    /// The generation settings these flags ask for, checked. Without `--seed`, a fresh seed is
    /// drawn (callers report it, so a run can be repeated).
    pub fn params(&self) -> Result<GenerateParams> {
        let seed = self.seed.unwrap_or_else(random_seed);
        let sampling = SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repeat_penalty,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            seed,
            ..SamplingParams::default()
        };
        sampling.validate().map_err(anyhow::Error::msg)?;
        Ok(GenerateParams { max_tokens: self.max_tokens, sampling, stop: self.stop.clone() })
    }
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    (nanos as u64) ^ (u64::from(std::process::id()) << 32)
}

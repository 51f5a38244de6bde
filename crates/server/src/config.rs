//! The server's settings: the HTTP side's limits, and the engine's sizes worked out from the
//! model once it is loaded (how many KV blocks a memory budget buys depends on the model).

use std::time::Duration;

use herd_engine::kv_cache::{KvCache, BLOCK_SIZE};
use herd_engine::model::Config;
use herd_engine::runner::EngineConfig;

/// Context length when none is asked for (capped at the model's trained context).
pub const DEFAULT_CTX: usize = 4096;

/// Limits of the HTTP side.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// With a key, every endpoint but `/health` wants `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    /// A request still running after this long is ended (its sequence cancelled).
    pub request_timeout: Duration,
    /// On shutdown, how long running requests may go on before they are ended.
    pub shutdown_grace: Duration,
    /// Largest request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Origins whose browser pages may call the API (`*`: any); none: no CORS headers at all.
    /// Each is checked with `check_cors_origin` first.
    pub cors_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig { api_key: None, request_timeout: Duration::from_secs(600), shutdown_grace: Duration::from_secs(10), max_body_bytes: 2 << 20, cors_origins: vec![] }
    }
}

/// How much KV cache to give the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvSize {
    /// Exactly this many blocks of `BLOCK_SIZE` positions.
    Blocks(usize),
    /// As many blocks as fit in this many bytes, but no more than every sequence slot can use.
    Bytes(u64),
}

/// The engine's sizes as the user gives them; `engine_config` turns them into an
/// `EngineConfig` for a particular model.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Positions per sequence; `None`: `DEFAULT_CTX`, or the model's trained context if shorter.
    pub n_ctx: Option<usize>,
    pub max_seqs: usize,
    pub max_queue: usize,
    pub token_budget: usize,
    pub threads: usize,
    pub kv: KvSize,
}

impl Default for EngineOptions {
    fn default() -> EngineOptions {
        EngineOptions {
            n_ctx: None,
            max_seqs: 16,
            max_queue: 64,
            token_budget: 256,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kv: KvSize::Bytes(4 << 30),
        }
    }
}

impl EngineOptions {
    /// What can be checked before the model is known: every count at least 1.
    pub fn validate(&self) -> Result<(), String> {
        let counts = [("--ctx", self.n_ctx.unwrap_or(1)), ("--max-seqs", self.max_seqs), ("--max-queue", self.max_queue), ("--token-budget", self.token_budget), ("--threads", self.threads)];
        match counts.iter().find(|(_, value)| *value == 0) {
            Some((name, _)) => Err(format!("{name} must be at least 1")),
            None if matches!(self.kv, KvSize::Blocks(0) | KvSize::Bytes(0)) => Err("the KV cache size must be above 0".into()),
            None => Ok(()),
        }
    }
}

/// What of a model's shape decides the engine's sizes.
#[derive(Clone, Copy, Debug)]
pub struct ModelShape {
    pub n_layers: usize,
    /// Width of one position's keys (and of its values) in one layer.
    pub kv_dim: usize,
    pub n_ctx_train: usize,
}

impl ModelShape {
    pub fn of(cfg: &Config) -> ModelShape {
        ModelShape { n_layers: cfg.n_layers, kv_dim: cfg.kv_dim(), n_ctx_train: cfg.n_ctx_train }
    }

    /// Bytes of KV cache one block takes: keys and values, f32, every layer.
    pub fn kv_bytes_per_block(&self) -> u64 {
        KvCache::bytes_per_block(self.n_layers, self.kv_dim) as u64
    }
}

/// The engine's configuration for a model of this shape, or why the options cannot work.
pub fn engine_config(model: ModelShape, opts: &EngineOptions) -> Result<EngineConfig, String> {
    opts.validate()?;
    let n_ctx = opts.n_ctx.unwrap_or(DEFAULT_CTX.min(model.n_ctx_train).max(1));
    // The engine keeps one block in reserve: a sequence of n_ctx positions needs this many.
    let one_seq = KvCache::blocks_for(n_ctx) + 1;
    let kv_blocks = match opts.kv {
        KvSize::Blocks(n) => {
            if n < one_seq {
                return Err(format!("--kv-blocks {n} cannot hold one sequence of --ctx {n_ctx} positions (needs at least {one_seq})"));
            }
            n
        }
        KvSize::Bytes(budget) => {
            let per_block = model.kv_bytes_per_block();
            let all_slots = opts.max_seqs.saturating_mul(KvCache::blocks_for(n_ctx)).saturating_add(1);
            let n = usize::try_from(budget / per_block).unwrap_or(usize::MAX).min(all_slots);
            if n < one_seq {
                let mib = |b: u64| b.div_ceil(1 << 20);
                return Err(format!(
                    "a KV budget of {} MiB holds {} positions, fewer than one sequence of --ctx {n_ctx} (needs {} MiB); raise --kv-mem or lower --ctx",
                    mib(budget),
                    n.saturating_sub(1) * BLOCK_SIZE,
                    mib(one_seq as u64 * per_block)
                ));
            }
            n
        }
    };
    Ok(EngineConfig { n_ctx, max_seqs: opts.max_seqs, max_queue: opts.max_queue, kv_blocks, token_budget: opts.token_budget, threads: opts.threads })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-135M's shape: 30 layers, 3 KV heads of 64.
    const SMOL: ModelShape = ModelShape { n_layers: 30, kv_dim: 192, n_ctx_train: 8192 };

    fn check(n_ctx_train: usize, n_ctx: Option<usize>, kv: KvSize, expected: Result<(usize, usize), &str>) {
        let opts = EngineOptions { n_ctx, max_seqs: 4, max_queue: 8, token_budget: 64, threads: 1, kv };
        let got = engine_config(ModelShape { n_ctx_train, ..SMOL }, &opts).map(|c| (c.n_ctx, c.kv_blocks));
        match expected {
            Ok(want) => assert_eq!(got, Ok(want), "{n_ctx:?} {kv:?}"),
            Err(fragment) => assert!(got.as_ref().is_err_and(|e| e.contains(fragment)), "{n_ctx:?} {kv:?}: {got:?}"),
        }
    }

    #[test]
    fn sizes_follow_the_options_and_the_model() {
        let block = SMOL.kv_bytes_per_block();
        assert_eq!(block, 30 * 16 * 192 * 4);
        // Default context: 4096, or the trained context when shorter.
        check(8192, None, KvSize::Blocks(300), Ok((4096, 300)));
        check(2048, None, KvSize::Blocks(300), Ok((2048, 300)));
        // A large budget is capped at what the sequence slots can use: 4 x 256 blocks + 1.
        check(8192, None, KvSize::Bytes(64 << 30), Ok((4096, 4 * 256 + 1)));
        // A budget buys whole blocks.
        check(8192, Some(1024), KvSize::Bytes(100 * block + 5), Ok((1024, 100)));
        // Too little for one full sequence is refused with the numbers.
        check(8192, Some(4096), KvSize::Blocks(256), Err("needs at least 257"));
        check(8192, Some(4096), KvSize::Bytes(10 * block), Err("holds 144 positions"));
        check(8192, Some(0), KvSize::Blocks(300), Err("--ctx must be at least 1"));
    }
}

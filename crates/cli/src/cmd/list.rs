//! `herd list`: the models in the model folder.

use anyhow::Result;
use herd_store::Store;

#[derive(clap::Args)]
pub struct Args {}

pub fn main(_args: Args) -> Result<()> {
    let store = Store::from_env()?;
    let entries = store.list()?;
    if entries.is_empty() {
        eprintln!("herd: no models in {} (herd pull NAME fetches one)", store.models_dir().display());
        return Ok(());
    }
    let rows: Vec<[String; 6]> = entries
        .into_iter()
        .map(|e| {
            let size = if e.n_bytes >= 1 << 30 { format!("{:.1} GiB", e.n_bytes as f64 / (1u64 << 30) as f64) } else { format!("{:.1} MiB", e.n_bytes as f64 / (1 << 20) as f64) };
            [e.name, e.family, size, e.quant, e.context.map_or("-".into(), |c| c.to_string()), e.path.display().to_string()]
        })
        .collect();
    let header = ["NAME", "FAMILY", "SIZE", "QUANT", "CONTEXT", "PATH"].map(String::from);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row.iter().zip(widths).enumerate().map(|(i, (c, w))| if i == 5 { c.clone() } else { format!("{c:w$}") }).collect();
        println!("{}", cells.join("  "));
    }
    Ok(())
}

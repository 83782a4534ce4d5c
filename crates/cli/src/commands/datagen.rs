//! `kiln datagen`: synthetic data sets for tests and benchmarks (`kiln_train::datagen`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;

/// `kiln datagen ...`.
#[derive(Debug, clap::Subcommand)]
pub enum DatagenCommand {
    /// Criteo-layout click data (label, I1..I13, C1..C26) with a learnable signal; read it with
    /// data/criteo/schema.yaml.
    Criteo {
        /// Rows to write.
        #[arg(long)]
        rows: u64,
        /// Seed: the same seed writes the same data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output file (gzip-compressed when it ends in .gz); standard output when absent.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Field separator: tab (Criteo's) or comma.
        #[arg(long, default_value = "tab", value_parser = ["tab", "comma"])]
        delimiter: String,
    },
}

/// Runs a `kiln datagen` command; progress and the counts go to standard error.
pub fn run(command: DatagenCommand) -> anyhow::Result<()> {
    let DatagenCommand::Criteo {
        rows,
        seed,
        output,
        delimiter,
    } = command;
    let delimiter = if delimiter == "comma" { ',' } else { '\t' };
    let mut out: Box<dyn Write> = match &output {
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let file = std::io::BufWriter::with_capacity(1 << 20, file);
            match path.extension().is_some_and(|extension| extension == "gz") {
                true => Box::new(flate2::write::GzEncoder::new(
                    file,
                    flate2::Compression::fast(),
                )),
                false => Box::new(file),
            }
        }
    };
    let started = std::time::Instant::now();
    let stats = kiln_train::datagen::criteo(rows, seed, delimiter, &mut out, &mut |written| {
        eprintln!(
            "{written} of {rows} rows ({:.0} rows/s)",
            written as f64 / started.elapsed().as_secs_f64()
        );
    })?;
    out.flush()?;
    drop(out);
    eprintln!(
        "wrote {} rows: {:.1}% positive, {:.1}% empty cells",
        stats.rows,
        100.0 * stats.positives as f64 / stats.rows.max(1) as f64,
        100.0 * stats.empty_cells as f64 / (stats.rows.max(1) * 39) as f64
    );
    Ok(())
}

//! `kiln admin backup|restore`: a server's metadata and files, taken and put back without a
//! server running.
//!
//! A backup is a directory: `metadata.jsonl` (every row of the metadata database, in the format of
//! `kiln_store::backup`, which restores into SQLite or PostgreSQL alike), and copies of the data
//! directory's `artifacts` (the versions' files) and `logs` (the jobs' logs).

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The file of a backup that holds the metadata.
const METADATA: &str = "metadata.jsonl";

/// The data directory's folders a backup copies.
const FOLDERS: &[&str] = &[kiln_server::ARTIFACTS_DIR, "logs"];

/// `kiln admin ...`.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Writes a backup of a server's metadata, version files and job logs into a new directory.
    /// Take it while no server changes them (stopped, or idle).
    Backup {
        /// The directory to create.
        #[arg(long)]
        to: PathBuf,
        #[command(flatten)]
        place: Place,
    },
    /// Restores a backup into a data directory and database that hold nothing yet.
    Restore {
        /// The backup's directory.
        #[arg(long)]
        from: PathBuf,
        #[command(flatten)]
        place: Place,
    },
}

/// Where a server keeps its data, as `kiln server` is told.
#[derive(Debug, clap::Args)]
pub struct Place {
    /// The server's data directory; default `~/.kiln`.
    #[arg(long, env = "KILN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The server's metadata database, when it is not the data directory's (`kiln server
    /// --database`).
    #[arg(long, env = "KILN_DATABASE", hide_env_values = true)]
    database: Option<String>,
}

/// Runs an admin command.
pub fn run(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Backup { to, place } => backup(&to, &place),
        AdminCommand::Restore { from, place } => restore(&from, &place),
    }
}

fn backup(to: &Path, place: &Place) -> anyhow::Result<()> {
    let data_dir = place
        .data_dir
        .clone()
        .unwrap_or_else(super::server::default_data_dir);
    if place.database.is_none() && !data_dir.join(kiln_server::DATABASE_FILE).exists() {
        bail!("{} holds no Kiln server data", data_dir.display());
    }
    std::fs::create_dir(to)
        .with_context(|| format!("creating the backup directory {}", to.display()))?;
    let store = kiln_server::open_store(&data_dir, place.database.as_deref())?;
    let file = File::create(to.join(METADATA))
        .with_context(|| format!("creating {}", to.join(METADATA).display()))?;
    let rows = kiln_store::backup::write(store.as_ref(), &mut BufWriter::new(file))?;
    let files = copy_folders(&data_dir, to)?;
    eprintln!(
        "Backed up {rows} metadata rows and {files} files into {}.",
        to.display()
    );
    Ok(())
}

fn restore(from: &Path, place: &Place) -> anyhow::Result<()> {
    let data_dir = place
        .data_dir
        .clone()
        .unwrap_or_else(super::server::default_data_dir);
    for folder in FOLDERS {
        let target = data_dir.join(folder);
        if target
            .read_dir()
            .is_ok_and(|mut entries| entries.next().is_some())
        {
            bail!(
                "{} is not empty: a backup restores only into a data directory that holds nothing yet",
                target.display()
            );
        }
    }
    let file = File::open(from.join(METADATA))
        .with_context(|| format!("opening {}", from.join(METADATA).display()))?;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let store = kiln_server::open_store(&data_dir, place.database.as_deref())?;
    let rows = kiln_store::backup::read(store.as_ref(), &mut BufReader::new(file))?;
    let files = copy_folders(from, &data_dir)?;
    eprintln!(
        "Restored {rows} metadata rows and {files} files into {}.",
        data_dir.display()
    );
    Ok(())
}

/// Copies the folders a backup carries from one directory to another; the number of files.
fn copy_folders(from: &Path, to: &Path) -> anyhow::Result<usize> {
    let mut files = 0;
    for folder in FOLDERS {
        if from.join(folder).is_dir() {
            files += copy_tree(&from.join(folder), &to.join(folder))?;
        }
    }
    Ok(files)
}

/// Copies a directory tree, refusing links: a backup holds files, never pointers elsewhere.
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<usize> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let mut files = 0;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            files += copy_tree(&source, &target)?;
        } else if kind.is_file() {
            std::fs::copy(&source, &target)
                .with_context(|| format!("copying {} to {}", source.display(), target.display()))?;
            files += 1;
        } else {
            bail!(
                "{} is not a file or a directory; a backup copies only those",
                source.display()
            );
        }
    }
    Ok(files)
}

//! The built-in trainers' examples: rows from the [`data`](crate::data) readers, encoded on all
//! cores a block at a time (blocks keep file order, so a run is reproducible), then either kept in
//! memory, when the files are small enough, and shuffled whole each epoch; or read again each epoch
//! and shuffled through a buffer of `shuffle_buffer` examples, as `tf.data` does, so files larger
//! than memory train in memory proportional to the model and the buffer. [`Source`] is the
//! feature-column trainer's; the Sequential trainer streams through [`encoded_blocks`] and
//! [`shuffled`] too.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use kiln_model::columns::Encoded;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::TrainError;
use crate::data::Files;
use crate::resolve::RowEncoder;

/// Rows encoded together on the thread pool.
const BLOCK_ROWS: usize = 4096;
/// Files up to this size (a gzip file counted ten times its size) are kept in memory once encoded.
pub const IN_MEMORY_BYTES: u64 = 1 << 30;
/// Batches the reader may be ahead of training.
const BATCHES_AHEAD: usize = 8;

/// Which rows of the files a source takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Every row.
    All,
    /// All rows but every tenth (the rows [`Split::HeldOut`] takes).
    Training,
    /// Every tenth row, held out for evaluation when no evaluation files are given.
    HeldOut,
}

impl Split {
    /// Whether the split takes the row at `index` (from 0, across all files).
    pub fn takes(self, row: usize) -> bool {
        match self {
            Split::All => true,
            Split::Training => row % 10 != 9,
            Split::HeldOut => row % 10 == 9,
        }
    }
}

/// Examples with their labels.
pub type Labelled<T> = (Vec<T>, Vec<f32>);

/// Encoded examples with their labels.
pub type Batch = Labelled<Encoded>;

/// Files, the rows a run takes from them, and how rows become examples.
#[derive(Debug, Clone)]
pub struct Source {
    files: Files,
    split: Split,
    encoder: Arc<RowEncoder>,
    /// What the rows are, for error messages: "training" or "evaluation".
    what: &'static str,
}

impl Source {
    /// A source of the rows `split` takes from `files`.
    pub fn new(files: Files, split: Split, encoder: Arc<RowEncoder>, what: &'static str) -> Self {
        Self {
            files,
            split,
            encoder,
            what,
        }
    }

    /// Whether the files are small enough to keep in memory once encoded.
    pub fn fits_in_memory(&self) -> bool {
        fits_in_memory(&self.files.paths)
    }

    /// Calls `visit` with each block of encoded rows, in file order, until it returns `false`.
    pub fn blocks(
        &self,
        visit: &mut dyn FnMut(Batch) -> Result<bool, TrainError>,
    ) -> Result<(), TrainError> {
        let mut index = 0usize;
        encoded_blocks(
            |take| {
                self.files.scan(&mut |cells| {
                    index += 1;
                    match self.split.takes(index - 1) {
                        true => take(cells),
                        false => Ok(true),
                    }
                })
            },
            |row: &Vec<String>| self.encoder.encode(row).map(Some),
            BLOCK_ROWS,
            &format!("{} row", self.what),
            visit,
        )
    }

    /// Every example, in file order.
    pub fn read_all(&self) -> Result<Batch, TrainError> {
        let (mut examples, mut labels) = (Vec::new(), Vec::new());
        self.blocks(&mut |(block_examples, block_labels)| {
            examples.extend(block_examples);
            labels.extend(block_labels);
            Ok(true)
        })?;
        if examples.is_empty() {
            return Err(TrainError::Data(format!("no {} rows", self.what)));
        }
        Ok((examples, labels))
    }

    /// One epoch's batches, read on a thread of their own through a shuffle buffer seeded by
    /// `seed`. Dropping the receiver stops the reading.
    pub fn shuffled_batches(
        self: &Arc<Self>,
        batch_size: usize,
        buffer_size: usize,
        seed: u64,
    ) -> Receiver<Result<Batch, TrainError>> {
        let source = Arc::clone(self);
        shuffled(
            move |visit| source.blocks(visit),
            batch_size,
            buffer_size,
            seed,
        )
    }
}

/// Whether files this large (a gzip file counted ten times its size) are kept in memory once
/// encoded.
pub fn fits_in_memory(paths: &[PathBuf]) -> bool {
    let bytes: u64 = paths
        .iter()
        .map(|path| {
            let size = std::fs::metadata(path).map_or(0, |meta| meta.len());
            match path.extension().is_some_and(|ext| ext == "gz") {
                true => size * 10,
                false => size,
            }
        })
        .sum();
    bytes <= IN_MEMORY_BYTES
}

/// Reads examples through `scan` and encodes them on all cores `block` at a time, calling `visit`
/// with each block, in file order, until it returns `false`. `encode` may skip an example
/// (`None`); its errors name the example as `what` and its number among those `scan` gave.
pub fn encoded_blocks<R, T, S, E>(
    scan: S,
    encode: E,
    block: usize,
    what: &str,
    visit: &mut dyn FnMut(Labelled<T>) -> Result<bool, TrainError>,
) -> Result<(), TrainError>
where
    R: Send + Sync,
    T: Send,
    S: FnOnce(&mut dyn FnMut(R) -> Result<bool, TrainError>) -> Result<(), TrainError>,
    E: Fn(&R) -> Result<Option<(T, f32)>, String> + Sync,
{
    let mut pending: Vec<R> = Vec::with_capacity(block);
    let mut first = 1;
    let encode_all = |pending: &mut Vec<R>, first: usize| -> Result<Labelled<T>, TrainError> {
        let encoded = pending
            .par_iter()
            .enumerate()
            .map(|(offset, example)| {
                encode(example).map_err(|message| {
                    TrainError::Data(format!("{what} {}: {message}", first + offset))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        pending.clear();
        Ok(encoded.into_iter().flatten().unzip())
    };
    let mut stopped = false;
    scan(&mut |example| {
        pending.push(example);
        if pending.len() < block {
            return Ok(true);
        }
        let encoded = encode_all(&mut pending, first)?;
        first += block;
        stopped = !visit(encoded)?;
        Ok(!stopped)
    })?;
    if !stopped && !pending.is_empty() {
        visit(encode_all(&mut pending, first)?)?;
    }
    Ok(())
}

/// One epoch's batches: `read` runs on a thread of its own, calling its visitor with blocks of
/// examples in file order until the visitor returns `false`; the examples go through a shuffle
/// buffer of `buffer_size` seeded by `seed`, as `tf.data`'s `shuffle` does. Dropping the receiver
/// stops the reading.
pub fn shuffled<T, F>(
    read: F,
    batch_size: usize,
    buffer_size: usize,
    seed: u64,
) -> Receiver<Result<Labelled<T>, TrainError>>
where
    T: Send + 'static,
    F: FnOnce(&mut dyn FnMut(Labelled<T>) -> Result<bool, TrainError>) -> Result<(), TrainError>
        + Send
        + 'static,
{
    let (sender, receiver) = sync_channel(BATCHES_AHEAD);
    std::thread::spawn(move || {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut buffer: Vec<(T, f32)> = Vec::with_capacity(buffer_size.min(1 << 20));
        let empty = || {
            (
                Vec::with_capacity(batch_size),
                Vec::with_capacity(batch_size),
            )
        };
        let mut batch: Labelled<T> = empty();
        // Sends a full batch; false once training no longer listens.
        let emit = |example: (T, f32), batch: &mut Labelled<T>| -> bool {
            batch.0.push(example.0);
            batch.1.push(example.1);
            if batch.0.len() < batch_size {
                return true;
            }
            sender.send(Ok(std::mem::replace(batch, empty()))).is_ok()
        };
        let result = read(&mut |(examples, labels)| {
            for example in examples.into_iter().zip(labels) {
                if buffer.len() < buffer_size {
                    buffer.push(example);
                    continue;
                }
                let slot = rng.random_range(0..buffer.len());
                let out = std::mem::replace(&mut buffer[slot], example);
                if !emit(out, &mut batch) {
                    return Ok(false);
                }
            }
            Ok(true)
        });
        if let Err(error) = result {
            let _ = sender.send(Err(error));
            return;
        }
        // The buffer's rest, in random order, and the last partial batch.
        while !buffer.is_empty() {
            let slot = rng.random_range(0..buffer.len());
            if !emit(buffer.swap_remove(slot), &mut batch) {
                return;
            }
        }
        if !batch.0.is_empty() {
            let _ = sender.send(Ok(batch));
        }
    });
    receiver
}

//! The feature-column trainer's examples: rows from the [`data`](crate::data) readers, encoded on
//! all cores a block at a time (blocks keep file order, so a run is reproducible), then either
//! kept in memory, when the files are small enough, and shuffled whole each epoch; or read again
//! each epoch and shuffled through a buffer of `shuffle_buffer` examples, as `tf.data` does, so
//! files larger than memory train in memory proportional to the model and the buffer.

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

/// Encoded examples with their labels.
pub type Batch = (Vec<Encoded>, Vec<f32>);

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
        let bytes: u64 = self
            .files
            .paths
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

    /// Calls `visit` with each block of encoded rows, in file order, until it returns `false`.
    pub fn blocks(
        &self,
        visit: &mut dyn FnMut(Batch) -> Result<bool, TrainError>,
    ) -> Result<(), TrainError> {
        let mut rows: Vec<Vec<String>> = Vec::with_capacity(BLOCK_ROWS);
        let mut first_row = 1;
        let mut index = 0usize;
        let encode = |rows: &mut Vec<Vec<String>>, first_row: usize| -> Result<Batch, TrainError> {
            let encoded = rows
                .par_iter()
                .enumerate()
                .map(|(offset, row)| {
                    self.encoder.encode(row).map_err(|message| {
                        TrainError::Data(format!(
                            "{} row {}: {message}",
                            self.what,
                            first_row + offset
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            rows.clear();
            Ok(encoded.into_iter().unzip())
        };
        let mut stopped = false;
        self.files.scan(&mut |cells| {
            index += 1;
            if self.split.takes(index - 1) {
                rows.push(cells);
            }
            if rows.len() < BLOCK_ROWS {
                return Ok(true);
            }
            let block = encode(&mut rows, first_row)?;
            first_row += block.0.len();
            stopped = !visit(block)?;
            Ok(!stopped)
        })?;
        if !stopped && !rows.is_empty() {
            visit(encode(&mut rows, first_row)?)?;
        }
        Ok(())
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
        let (sender, receiver) = sync_channel(BATCHES_AHEAD);
        let source = Arc::clone(self);
        std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut buffer: Vec<(Encoded, f32)> = Vec::with_capacity(buffer_size.min(1 << 20));
            let mut batch: Batch = (
                Vec::with_capacity(batch_size),
                Vec::with_capacity(batch_size),
            );
            // Sends a full batch; false once training no longer listens.
            let emit = |example: (Encoded, f32), batch: &mut Batch| -> bool {
                batch.0.push(example.0);
                batch.1.push(example.1);
                if batch.0.len() < batch_size {
                    return true;
                }
                let full = std::mem::replace(
                    batch,
                    (
                        Vec::with_capacity(batch_size),
                        Vec::with_capacity(batch_size),
                    ),
                );
                sender.send(Ok(full)).is_ok()
            };
            let read = source.blocks(&mut |(examples, labels)| {
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
            if let Err(error) = read {
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
}

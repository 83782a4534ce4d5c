//! Sequential examples as training takes them. A first pass over the training files
//! ([`survey`]) counts the examples, collects the labels and the tokenizer's word counts, reading
//! one example at a time. Then every example is encoded on all cores a block at a time, and either
//! kept in memory or, for files larger than memory, read again each epoch through a shuffle
//! buffer ([`stream::shuffled`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use kiln_model::Task;
use kiln_model::sequential::InputSpec;
use kiln_model::sequential::input::WordCounts;

use super::data::{Raw, Source};
use crate::TrainError;
use crate::stream::{self, Labelled, Split};

/// Examples encoded together on the thread pool. Smaller than the feature-column trainer's
/// blocks: an encoded image or text row is thousands of values.
const BLOCK_EXAMPLES: usize = 256;
/// Distinct labels a survey keeps; more cannot be classes (and regression needs none).
pub(super) const MAX_LABELS: usize = 1 << 16;

/// What one pass over the training examples tells before training.
#[derive(Debug, Default)]
pub(super) struct Survey {
    /// Examples of the classes kept.
    pub examples: usize,
    /// Their distinct labels; `None` when there are more than [`MAX_LABELS`].
    pub labels: Option<BTreeSet<String>>,
    /// The texts' word counts, for a text input's tokenizer.
    pub words: WordCounts,
}

/// Reads the examples `split` takes from `source` once; `classes`, when not empty, are the only
/// labels kept.
pub(super) fn survey(
    source: &Source,
    split: Split,
    input: &InputSpec,
    classes: &[String],
) -> Result<Survey, TrainError> {
    let tokenizer = match input {
        InputSpec::Text { tokenizer, .. } => Some(tokenizer),
        _ => None,
    };
    let mut survey = Survey {
        labels: Some(BTreeSet::new()),
        ..Survey::default()
    };
    source.scan(split, &mut |raw, label| {
        if !classes.is_empty() && !classes.contains(&label) {
            return Ok(true);
        }
        survey.examples += 1;
        if let Some(labels) = &mut survey.labels {
            labels.insert(label);
            if labels.len() > MAX_LABELS {
                survey.labels = None;
            }
        }
        if let Some(tokenizer) = tokenizer {
            match &raw {
                Raw::Text(text) => tokenizer.count(text, &mut survey.words),
                Raw::Bytes(bytes) => {
                    tokenizer.count(&String::from_utf8_lossy(bytes), &mut survey.words);
                }
                Raw::Values(_) => {}
            }
        }
        Ok(true)
    })?;
    Ok(survey)
}

/// How raw examples become network rows and numeric labels.
#[derive(Debug)]
pub(super) struct Encoder {
    /// The input, its tokenizer fitted.
    pub input: InputSpec,
    /// The task, which says what a label is.
    pub task: Task,
    /// The classes in label-id order (none for regression).
    pub classes: Vec<String>,
    /// Whether examples of other labels are skipped (the run named its classes) or refused.
    pub skip_others: bool,
}

impl Encoder {
    /// The example's row and numeric label; `None` for an example of a class not trained on.
    fn encode(&self, (raw, label): &(Raw, String)) -> Result<Option<(Vec<f32>, f32)>, String> {
        let label = match self.task {
            Task::Regression => label
                .parse::<f32>()
                .map_err(|_| format!("the label {label:?} is not a number"))?,
            _ => match self.classes.iter().position(|class| class == label) {
                Some(id) => id as f32,
                None if self.skip_others => return Ok(None),
                None => return Err(format!("unknown class {label:?}")),
            },
        };
        let mut row = Vec::with_capacity(self.input.width());
        match raw {
            Raw::Values(values) => self.input.encode_values(values, &mut row),
            Raw::Text(text) => self.input.encode_text(text, &mut row),
            Raw::Bytes(bytes) => self.input.encode_bytes(bytes, &mut row),
        }?;
        Ok(Some((row, label)))
    }
}

/// The examples a split takes from a source, encoded.
#[derive(Debug)]
pub(super) struct Reader {
    /// The files.
    pub source: Source,
    /// The examples taken.
    pub split: Split,
    /// How they are encoded.
    pub encoder: Arc<Encoder>,
    /// What they are, for error messages: "training" or "evaluation".
    pub what: &'static str,
}

impl Reader {
    /// Calls `visit` with each block of encoded examples, in file order, until it returns `false`.
    pub fn blocks(
        &self,
        visit: &mut dyn FnMut(Labelled<Vec<f32>>) -> Result<bool, TrainError>,
    ) -> Result<(), TrainError> {
        stream::encoded_blocks(
            |take| {
                self.source
                    .scan(self.split, &mut |raw, label| take((raw, label)))
            },
            |example| self.encoder.encode(example),
            BLOCK_EXAMPLES,
            &format!("{} example", self.what),
            visit,
        )
    }

    /// Every example, encoded, in file order.
    pub fn read_all(&self) -> Result<Encoded, TrainError> {
        let mut encoded = Encoded {
            width: self.encoder.input.width(),
            values: Vec::new(),
            labels: Vec::new(),
        };
        self.blocks(&mut |(rows, labels)| {
            for row in rows {
                encoded.values.extend(row);
            }
            encoded.labels.extend(labels);
            Ok(true)
        })?;
        Ok(encoded)
    }
}

/// Examples encoded for the network: one row of `width` values each, and numeric labels.
#[derive(Debug)]
pub(super) struct Encoded {
    width: usize,
    values: Vec<f32>,
    /// The labels, one per row.
    pub labels: Vec<f32>,
}

impl Encoded {
    /// The rows at `indices`, back to back.
    pub fn rows(&self, indices: impl Iterator<Item = usize>) -> Vec<f32> {
        let mut values = Vec::new();
        for index in indices {
            values.extend_from_slice(&self.values[index * self.width..(index + 1) * self.width]);
        }
        values
    }
}

/// What [`Examples::each_block`] calls with rows back to back and their labels.
pub(super) type VisitRows<'a> = dyn FnMut(Vec<f32>, &[f32]) -> Result<(), TrainError> + 'a;

/// Examples held in memory, or read from their files again each time.
pub(super) enum Examples {
    /// Encoded once.
    Memory(Arc<Encoded>),
    /// Read and encoded on each pass.
    Stream(Arc<Reader>),
}

impl Examples {
    /// The examples of `reader`: in memory unless `streaming` says otherwise or, left to
    /// choose, the files are larger than [`stream::IN_MEMORY_BYTES`].
    pub fn new(reader: Reader, streaming: Option<bool>) -> Result<Self, TrainError> {
        Ok(
            match streaming.unwrap_or(!stream::fits_in_memory(&reader.source.files)) {
                true => Examples::Stream(Arc::new(reader)),
                false => Examples::Memory(Arc::new(reader.read_all()?)),
            },
        )
    }

    /// Calls `visit` with every example in blocks, rows back to back, in file order.
    pub fn each_block(&self, visit: &mut VisitRows) -> Result<(), TrainError> {
        match self {
            Examples::Memory(encoded) => {
                let rows = encoded.labels.len();
                for start in (0..rows).step_by(1000) {
                    let end = (start + 1000).min(rows);
                    visit(encoded.rows(start..end), &encoded.labels[start..end])?;
                }
                Ok(())
            }
            Examples::Stream(reader) => reader.blocks(&mut |(rows, labels)| {
                visit(rows.concat(), &labels)?;
                Ok(true)
            }),
        }
    }
}

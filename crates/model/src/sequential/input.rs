//! A Sequential model's input and its preprocessing, saved with the model so serving takes raw
//! pixels or raw text and transforms them exactly as training did.
//!
//! Every example becomes one row of f32 values ([`InputSpec::width`] of them): pixels scaled and
//! reordered channels-first, a text's Keras `texts_to_matrix` row, or its padded token ids (ids
//! are below the vocabulary size, far below 2^24, so f32 holds them exactly).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::layers::Shape;

/// What a model takes, and how raw examples become its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputSpec {
    /// Pixels, given row by row with the channels last (`[height][width][channels]`, as Keras and
    /// image files store them), nested or flat.
    Image {
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
        /// Channels per pixel.
        #[serde(default = "one")]
        channels: usize,
        /// Factor applied to every pixel (1/255 takes bytes to [0, 1]).
        #[serde(default = "one_f32")]
        scale: f32,
    },
    /// Raw text, turned into a vector by a tokenizer.
    Text {
        /// The tokenizer; its vocabulary is learnt from the training texts.
        #[serde(default)]
        tokenizer: Tokenizer,
        /// When set, the text becomes this many token ids (for an Embedding layer), padded and
        /// truncated at the front as Keras' `pad_sequences` does; otherwise a matrix row.
        #[serde(default)]
        sequence_length: Option<usize>,
    },
    /// A vector of numbers.
    Numbers {
        /// How many.
        width: usize,
    },
}

fn one() -> usize {
    1
}

fn one_f32() -> f32 {
    1.0
}

impl InputSpec {
    /// The shape of one example as the first layer sees it.
    pub fn shape(&self) -> Shape {
        match self {
            InputSpec::Image {
                height,
                width,
                channels,
                ..
            } => Shape::Image {
                channels: *channels,
                height: *height,
                width: *width,
            },
            InputSpec::Text {
                tokenizer,
                sequence_length,
            } => match sequence_length {
                Some(length) => Shape::Ids(*length),
                None => Shape::Flat(tokenizer.size()),
            },
            InputSpec::Numbers { width } => Shape::Flat(*width),
        }
    }

    /// Values per encoded example.
    pub fn width(&self) -> usize {
        match self.shape() {
            Shape::Flat(width) | Shape::Ids(width) => width,
            Shape::Image {
                channels,
                height,
                width,
            } => channels * height * width,
            Shape::Sequence { length, dim } => length * dim,
        }
    }

    /// The tokenizer's vocabulary size, for text input.
    pub fn vocabulary(&self) -> Option<usize> {
        match self {
            InputSpec::Text { tokenizer, .. } => Some(tokenizer.size()),
            _ => None,
        }
    }

    /// Encodes pixels (channels last) or numbers into `out`.
    pub fn encode_values(&self, values: &[f32], out: &mut Vec<f32>) -> Result<(), String> {
        match self {
            InputSpec::Image {
                height,
                width,
                channels,
                scale,
            } => {
                let expected = height * width * channels;
                if values.len() != expected {
                    return Err(format!(
                        "an image of {height} x {width} x {channels} has {expected} values; got {}",
                        values.len()
                    ));
                }
                // Channels last (as given) to channels first (as the convolutions take them).
                for channel in 0..*channels {
                    out.extend(
                        values
                            .iter()
                            .skip(channel)
                            .step_by(*channels)
                            .map(|value| value * scale),
                    );
                }
                Ok(())
            }
            InputSpec::Numbers { width } if values.len() == *width => {
                out.extend_from_slice(values);
                Ok(())
            }
            InputSpec::Numbers { width } => Err(format!(
                "the model takes {width} numbers; got {}",
                values.len()
            )),
            InputSpec::Text { .. } => Err("the model takes text; got numbers".into()),
        }
    }

    /// Encodes an image file's bytes (PNG or JPEG) into `out`: decoded to the model's channels
    /// (grey, RGB or RGBA) and resized to its height and width (bilinear) when it differs, so its
    /// pixels are the bytes training read from image files.
    pub fn encode_image_file(&self, bytes: &[u8], out: &mut Vec<f32>) -> Result<(), String> {
        let InputSpec::Image {
            height,
            width,
            channels,
            ..
        } = self
        else {
            return Err("the model does not take images".into());
        };
        let mut image = image::load_from_memory(bytes)
            .map_err(|error| format!("the bytes are not a PNG or JPEG image: {error}"))?;
        let (rows, columns) = (*height as u32, *width as u32);
        if (image.height(), image.width()) != (rows, columns) {
            image = image.resize_exact(columns, rows, image::imageops::FilterType::Triangle);
        }
        let pixels = match channels {
            1 => image.into_luma8().into_raw(),
            3 => image.into_rgb8().into_raw(),
            4 => image.into_rgba8().into_raw(),
            other => return Err(format!("an image file cannot fill {other} channels")),
        };
        self.encode_values(&pixels_to_f32(&pixels), out)
    }

    /// Encodes a text into `out`.
    pub fn encode_text(&self, text: &str, out: &mut Vec<f32>) -> Result<(), String> {
        match self {
            InputSpec::Text {
                tokenizer,
                sequence_length: Some(length),
            } => {
                let ids = tokenizer.sequence(text);
                let kept = &ids[ids.len().saturating_sub(*length)..];
                out.extend(std::iter::repeat_n(0.0, length - kept.len()));
                out.extend(kept.iter().map(|&id| id as f32));
                Ok(())
            }
            InputSpec::Text {
                tokenizer,
                sequence_length: None,
            } => {
                out.extend(tokenizer.matrix_row(text));
                Ok(())
            }
            _ => Err("the model takes numbers; got text".into()),
        }
    }

    /// Encodes a byte string, as TFRecord files hold inputs: UTF-8 text for text models; for image
    /// models raw pixels when there are exactly as many bytes as values, else an image file.
    pub fn encode_bytes(&self, bytes: &[u8], out: &mut Vec<f32>) -> Result<(), String> {
        match self {
            InputSpec::Text { .. } => {
                let text = std::str::from_utf8(bytes)
                    .map_err(|error| format!("the text is not UTF-8: {error}"))?;
                self.encode_text(text, out)
            }
            InputSpec::Image { .. } if bytes.len() == self.width() => {
                self.encode_values(&pixels_to_f32(bytes), out)
            }
            InputSpec::Image { .. } => self.encode_image_file(bytes, out),
            InputSpec::Numbers { .. } => Err("the model takes numbers; got a byte string".into()),
        }
    }

    /// Encodes one JSON instance: a text (or `{"text": ...}`) for text models; numbers, flat or
    /// nested, for the rest (or an object holding them under one key); for image models also an
    /// encoded PNG or JPEG as `{"b64": ...}` (or under one key: `{"image_bytes": {"b64": ...}}`,
    /// ML Engine's convention).
    pub fn encode_json(&self, instance: &Value, out: &mut Vec<f32>) -> Result<(), String> {
        let value = match instance {
            Value::Object(fields) if fields.len() == 1 && fields.contains_key("b64") => instance,
            Value::Object(fields) if fields.len() == 1 => {
                fields.values().next().unwrap_or(instance)
            }
            Value::Object(fields) => {
                return Err(format!(
                    "an instance is the input itself or an object with one field; got fields {}",
                    fields.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            other => other,
        };
        match (self, value) {
            (InputSpec::Image { .. }, Value::Object(b64)) if b64.contains_key("b64") => {
                let bytes = b64_bytes(&b64["b64"])?;
                self.encode_image_file(&bytes, out)
            }
            (InputSpec::Text { .. }, Value::String(text)) => self.encode_text(text, out),
            (InputSpec::Text { .. }, other) => Err(format!("the model takes text; got {other}")),
            (_, value) => {
                let mut numbers = Vec::with_capacity(self.width());
                flatten_numbers(value, &mut numbers)
                    .map_err(|got| format!("the model takes numbers; got {got}"))?;
                self.encode_values(&numbers, out)
            }
        }
    }
}

/// 8-bit pixels as the values [`InputSpec::encode_values`] takes.
pub fn pixels_to_f32(pixels: &[u8]) -> Vec<f32> {
    pixels.iter().map(|&pixel| f32::from(pixel)).collect()
}

/// The bytes of a `{"b64": ...}` value (standard base64, as ML Engine takes); shared with
/// serving's instance decoding.
pub fn b64_bytes(value: &Value) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let text = value
        .as_str()
        .ok_or_else(|| format!("b64 must be a string; got {value}"))?;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|error| format!("invalid base64: {error}"))
}

/// Appends the numbers of a number or a nested list of them; the error is the first value
/// that is neither.
pub fn flatten_numbers<'v>(value: &'v Value, out: &mut Vec<f32>) -> Result<(), &'v Value> {
    match value {
        Value::Number(number) => {
            out.push(number.as_f64().unwrap_or(f64::NAN) as f32);
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(|item| flatten_numbers(item, out)),
        other => Err(other),
    }
}

/// How a text becomes a matrix row, as Keras' `Tokenizer.texts_to_matrix(mode=...)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatrixMode {
    /// 1 where the word occurs.
    Binary,
    /// How often the word occurs.
    #[default]
    Count,
    /// Occurrences over the text's length in known words.
    Freq,
    /// `(1 + ln count) * ln(1 + documents / (1 + documents with the word))`.
    Tfidf,
}

/// How a matrix row is scaled once its values are set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// As the mode sets it (Keras).
    #[default]
    None,
    /// To unit Euclidean length, as scikit-learn's `TfidfVectorizer` does, so that long and short
    /// texts weigh alike.
    L2,
}

/// Keras' default `filters`: the characters replaced by spaces before splitting.
const KERAS_FILTERS: &str = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n";

/// A word tokenizer that behaves as Keras' `Tokenizer`: words are ranked by frequency in the
/// training texts (ties by first appearance) and numbered from 1; only the `num_words - 1` most
/// frequent are kept, index 0 is never used. Beyond Keras, its terms may include runs of up to
/// `ngrams` words, and its matrix rows may be scaled to unit length (`norm`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tokenizer {
    /// One more than the number of words kept (Keras' `num_words`); all words when absent.
    #[serde(default)]
    pub num_words: Option<usize>,
    /// The matrix mode, for models that take a matrix row.
    #[serde(default)]
    pub mode: MatrixMode,
    /// Whether texts are lowercased first.
    #[serde(default = "yes")]
    pub lower: bool,
    /// Characters treated as separators.
    #[serde(default = "keras_filters")]
    pub filters: String,
    /// The longest run of words counted as one term: 1 for words alone (Keras), 2 for words and
    /// the pairs of adjacent words, ...
    #[serde(default = "one")]
    pub ngrams: usize,
    /// How each matrix row is scaled.
    #[serde(default)]
    pub norm: Norm,
    /// The kept words, most frequent first: `words[i]` has index `i + 1`.
    #[serde(default)]
    pub words: Vec<String>,
    /// For each kept word, in how many training texts it occurs (for tf-idf).
    #[serde(default)]
    pub document_frequencies: Vec<u32>,
    /// How many texts the tokenizer was fitted on.
    #[serde(default)]
    pub document_count: usize,
    #[serde(skip)]
    index: HashMap<String, usize>,
}

fn yes() -> bool {
    true
}

fn keras_filters() -> String {
    KERAS_FILTERS.to_string()
}

/// Word counts gathered one text at a time ([`Tokenizer::count`]), so a vocabulary can be learnt
/// from texts read past once rather than held in memory.
#[derive(Debug, Default)]
pub struct WordCounts {
    /// Each word with its occurrences and the texts it occurs in, in order of first appearance.
    words: Vec<(String, u64, u32)>,
    /// Where each word is in `words`.
    position: HashMap<String, usize>,
    /// Texts counted.
    documents: usize,
}

impl Default for Tokenizer {
    fn default() -> Self {
        Self {
            num_words: None,
            mode: MatrixMode::default(),
            lower: true,
            filters: keras_filters(),
            ngrams: 1,
            norm: Norm::None,
            words: Vec::new(),
            document_frequencies: Vec::new(),
            document_count: 0,
            index: HashMap::new(),
        }
    }
}

impl Tokenizer {
    /// The width of a matrix row and the number of ids: kept words plus the unused index 0.
    pub fn size(&self) -> usize {
        self.words.len() + 1
    }

    /// Splits a text into words as Keras' `text_to_word_sequence` does.
    pub fn split(&self, text: &str) -> Vec<String> {
        let cleaned: String = text
            .chars()
            .map(|c| match self.filters.contains(c) {
                true => ' ',
                false => c,
            })
            .collect();
        let cleaned = match self.lower {
            true => cleaned.to_lowercase(),
            false => cleaned,
        };
        cleaned
            .split(' ')
            .filter(|word| !word.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// A text's terms in order: its words, then each run of 2 to `ngrams` adjacent words joined
    /// by a space.
    pub fn terms(&self, text: &str) -> Vec<String> {
        let mut terms = self.split(text);
        let words = terms.len();
        for length in 2..=self.ngrams {
            for start in 0..(words + 1).saturating_sub(length) {
                let run = terms[start..start + length].join(" ");
                terms.push(run);
            }
        }
        terms
    }

    /// Learns the vocabulary from the training texts (Keras' `fit_on_texts`).
    pub fn fit<'a>(&mut self, texts: impl IntoIterator<Item = &'a str>) {
        let mut counts = WordCounts::default();
        for text in texts {
            self.count(text, &mut counts);
        }
        self.fit_counts(counts);
    }

    /// Adds one training text's words to `counts`.
    pub fn count(&self, text: &str, counts: &mut WordCounts) {
        counts.documents += 1;
        let mut seen = std::collections::HashSet::new();
        for word in self.terms(text) {
            let slot = match counts.position.get(&word) {
                Some(&slot) => slot,
                None => {
                    counts.position.insert(word.clone(), counts.words.len());
                    counts.words.push((word, 0, 0));
                    counts.words.len() - 1
                }
            };
            counts.words[slot].1 += 1;
            if seen.insert(slot) {
                counts.words[slot].2 += 1;
            }
        }
    }

    /// Learns the vocabulary from the counts of every training text.
    pub fn fit_counts(&mut self, counts: WordCounts) {
        let mut words = counts.words;
        // A stable sort keeps first appearance among equal counts, as Keras' does.
        words.sort_by_key(|(_, count, _)| std::cmp::Reverse(*count));
        let keep = self
            .num_words
            .map_or(words.len(), |num_words| num_words.saturating_sub(1));
        words.truncate(keep);
        self.document_count = counts.documents;
        self.document_frequencies = words.iter().map(|(_, _, docs)| *docs).collect();
        self.words = words.into_iter().map(|(word, _, _)| word).collect();
        self.index.clear();
        self.build_index();
    }

    fn build_index(&mut self) {
        if self.index.is_empty() {
            self.index = self
                .words
                .iter()
                .enumerate()
                .map(|(rank, word)| (word.clone(), rank + 1))
                .collect();
        }
    }

    /// Makes a tokenizer read from a saved model ready to use.
    pub(crate) fn prepare(&mut self) {
        self.build_index();
    }

    /// The ids of a text's known terms, in order (Keras' `texts_to_sequences`).
    pub fn sequence(&self, text: &str) -> Vec<usize> {
        self.terms(text)
            .iter()
            .filter_map(|word| self.index.get(word).copied())
            .collect()
    }

    /// A text's matrix row (Keras' `texts_to_matrix`), `size()` wide.
    pub fn matrix_row(&self, text: &str) -> Vec<f32> {
        let ids = self.sequence(text);
        let mut counts: HashMap<usize, u32> = HashMap::new();
        for &id in &ids {
            *counts.entry(id).or_default() += 1;
        }
        let mut row = vec![0.0f32; self.size()];
        for (id, count) in counts {
            let count = f64::from(count);
            row[id] = match self.mode {
                MatrixMode::Binary => 1.0,
                MatrixMode::Count => count as f32,
                MatrixMode::Freq => (count / ids.len() as f64) as f32,
                MatrixMode::Tfidf => {
                    let documents = self.document_frequencies[id - 1];
                    let tf = 1.0 + count.ln();
                    let idf =
                        (1.0 + self.document_count as f64 / (1.0 + f64::from(documents))).ln();
                    (tf * idf) as f32
                }
            };
        }
        if self.norm == Norm::L2 {
            let length = row
                .iter()
                .map(|v| f64::from(*v).powi(2))
                .sum::<f64>()
                .sqrt();
            if length > 0.0 {
                row.iter_mut()
                    .for_each(|v| *v = (f64::from(*v) / length) as f32);
            }
        }
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fitted(num_words: Option<usize>, mode: MatrixMode) -> Tokenizer {
        let mut tokenizer = Tokenizer {
            num_words,
            mode,
            ..Tokenizer::default()
        };
        tokenizer.fit(["The cat sat.", "The dog, the cat!", "A bird"]);
        tokenizer
    }

    /// The values Keras 2.x' Tokenizer gives on the same texts.
    #[test]
    fn matches_keras() {
        let tokenizer = fitted(None, MatrixMode::Count);
        assert_eq!(tokenizer.words, ["the", "cat", "sat", "dog", "a", "bird"]);
        assert_eq!(tokenizer.sequence("the Bird, the unknown"), [1, 6, 1]);
        assert_eq!(
            tokenizer.matrix_row("the cat the"),
            [0.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0]
        );
        let limited = fitted(Some(3), MatrixMode::Binary);
        assert_eq!(limited.size(), 3);
        assert_eq!(limited.matrix_row("the cat the dog"), [0.0, 1.0, 1.0]);
        let freq = fitted(Some(3), MatrixMode::Freq);
        assert_eq!(
            freq.matrix_row("the cat the dog"),
            [0.0, 2.0 / 3.0, 1.0 / 3.0]
        );
        let tfidf = fitted(None, MatrixMode::Tfidf);
        let row = tfidf.matrix_row("the the sat");
        let the = (1.0 + 2f64.ln()) * (1.0 + 3.0 / 3.0f64).ln();
        let sat = 1.0 * (1.0 + 3.0 / 2.0f64).ln();
        assert!((f64::from(row[1]) - the).abs() < 1e-6);
        assert!((f64::from(row[3]) - sat).abs() < 1e-6);
    }

    #[test]
    fn word_pairs_are_terms_and_rows_may_have_unit_length() {
        let mut tokenizer = Tokenizer {
            ngrams: 2,
            norm: Norm::L2,
            ..Tokenizer::default()
        };
        assert_eq!(
            tokenizer.terms("The cat sat."),
            ["the", "cat", "sat", "the cat", "cat sat"]
        );
        tokenizer.fit(["The cat sat.", "The cat ran"]);
        assert_eq!(
            tokenizer.words,
            ["the", "cat", "the cat", "sat", "cat sat", "ran", "cat ran"]
        );
        assert_eq!(tokenizer.sequence("a cat ran"), [2, 6, 7]);
        // Counts 2 (the), then 1 (cat, the cat, sat, cat sat), scaled by their length, √8;
        // "the the" is no term of the vocabulary.
        let row = tokenizer.matrix_row("the the cat sat");
        let length = 8f32.sqrt();
        assert_eq!(row[1], 2.0 / length);
        assert_eq!(row[5], 1.0 / length);
        assert!((row.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(
            tokenizer
                .matrix_row("nothing known")
                .iter()
                .all(|v| *v == 0.0)
        );
    }

    #[test]
    fn pads_and_truncates_at_the_front() {
        let input = InputSpec::Text {
            tokenizer: fitted(None, MatrixMode::Count),
            sequence_length: Some(3),
        };
        let mut out = Vec::new();
        input.encode_text("cat", &mut out).unwrap();
        assert_eq!(out, [0.0, 0.0, 2.0]);
        out.clear();
        input.encode_text("the cat sat dog", &mut out).unwrap();
        assert_eq!(out, [2.0, 3.0, 4.0]);
    }

    #[test]
    fn images_become_channels_first_and_scaled() {
        let input = InputSpec::Image {
            height: 1,
            width: 2,
            channels: 2,
            scale: 0.5,
        };
        let mut out = Vec::new();
        input
            .encode_json(&serde_json::json!([[[1, 2], [3, 4]]]), &mut out)
            .unwrap();
        assert_eq!(out, [0.5, 1.5, 1.0, 2.0]);
        let error = input
            .encode_json(&serde_json::json!([1, 2, 3]), &mut out)
            .unwrap_err();
        assert!(error.contains("has 4 values; got 3"), "{error}");
    }

    #[test]
    fn image_files_decode_to_the_models_pixels() {
        use base64::Engine;
        let input = InputSpec::Image {
            height: 2,
            width: 2,
            channels: 1,
            scale: 1.0,
        };
        let grey = image::GrayImage::from_raw(2, 2, vec![0, 16, 128, 255]).unwrap();
        let mut png = std::io::Cursor::new(Vec::new());
        grey.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(png.get_ref());
        for instance in [
            serde_json::json!({"b64": b64}),
            serde_json::json!({"image_bytes": {"b64": b64}}),
        ] {
            let mut out = Vec::new();
            input.encode_json(&instance, &mut out).unwrap();
            assert_eq!(out, [0.0, 16.0, 128.0, 255.0]);
        }
        // A larger image is resized to the model's; colour becomes grey.
        let large = image::RgbImage::from_pixel(8, 6, image::Rgb([200, 200, 200]));
        let mut png = std::io::Cursor::new(Vec::new());
        large.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(png.get_ref());
        let mut out = Vec::new();
        input
            .encode_json(&serde_json::json!({ "b64": b64 }), &mut out)
            .unwrap();
        assert_eq!(out, [200.0; 4]);
        let mut out = Vec::new();
        let error = input
            .encode_json(&serde_json::json!({"b64": "aGVsbG8="}), &mut out)
            .unwrap_err();
        assert!(error.contains("not a PNG or JPEG image"), "{error}");
    }
}

//! Synthetic data with a known signal, for tests and benchmarks that need data the real sources
//! may not redistribute.
//!
//! [`criteo`] writes rows in the Criteo display-advertising layout: a 0/1 click label, 13 integer
//! features `I1..I13` (heavy-tailed counts) and 26 categorical features `C1..C26` (8-hex-digit
//! hashes, as in the Kaggle release) whose cardinalities are the Kaggle set's, from 3 to 10M.
//! About 15% of the cells are empty and about 21% of the labels are 1. The label follows a
//! logistic model: a weight per integer feature (on its log scale), an effect per categorical
//! value (derived from a hash, so no table is kept however large the vocabulary), and one
//! interaction between a count and a category, so a deep model has something a linear one misses.
//! Values are drawn from heavy-headed (log-uniform) distributions, so frequent values, whose effects
//! can be learned, carry most rows. The same seed writes the same bytes; different seeds draw
//! different rows from the same population (train and eval files).
//!
//! [`topics`] writes short documents in four groups, as JSON lines `{"group", "id", "text"}` (the
//! layout of the 20 Newsgroups copies text classifiers are tried on): each word is one of the
//! group's own words a fifth of the time, another group's now and then, and otherwise a common
//! word, so a text classifier can learn the groups from the words alone.

use std::io::Write;

/// The Kaggle Criteo set's cardinality of each categorical column.
const CARDINALITIES: [u64; 26] = [
    1460, 583, 10_131_227, 2_202_608, 305, 24, 12517, 633, 3, 93145, 5683, 8_351_593, 3194, 27,
    14992, 5_461_306, 10, 5652, 2173, 4, 7_046_547, 18, 15, 286_181, 105, 142_572,
];

/// Share of empty cells of each of the 39 feature columns (mean ~0.15), integers first.
fn empty_share(column: usize) -> f64 {
    const SHARES: [f64; 8] = [0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.13];
    SHARES[(column * 5 + 3) % SHARES.len()]
}

/// What was written.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CriteoStats {
    /// Rows written.
    pub rows: u64,
    /// Rows labelled 1.
    pub positives: u64,
    /// Empty feature cells.
    pub empty_cells: u64,
}

/// SplitMix64: a fast, well-mixed generator and hash (no dependency, stable across releases, so a
/// seed means the same data forever).
fn mix(mut value: u64) -> u64 {
    value = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

struct Stream(u64);

impl Stream {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        mix(self.0)
    }

    /// Uniform on [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-300), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// A deterministic N(0, 1)-like number for `key` (sum of four uniforms, centred and scaled).
fn hashed_normal(key: u64) -> f64 {
    let sum: f64 = (0..4)
        .map(|i| (mix(key ^ (i * 0x1234_5678_9abc)) >> 11) as f64 / (1u64 << 53) as f64)
        .sum();
    (sum - 2.0) * 3f64.sqrt()
}

/// Fixes the population (category strings and effects): every seed samples the same one, so files
/// written with different seeds are splits of one data set.
const WORLD: u64 = 0x6b69_6c6e_6372_7465;

/// Weight of each integer feature on its log scale.
const INTEGER_WEIGHTS: [f64; 13] = [
    0.35, -0.25, 0.0, 0.2, -0.15, 0.3, 0.0, 0.1, -0.2, 0.25, 0.0, 0.15, -0.1,
];

/// Scale of the categorical effects of each column: some columns carry much signal, most little.
fn category_scale(column: usize) -> f64 {
    match column {
        0 | 5 | 8 | 13 | 16 | 19 | 22 => 0.8,
        2 | 11 | 15 => 0.4,
        _ => 0.1,
    }
}

/// One row's cells and label logit, before the intercept.
fn row(stream: &mut Stream, cells: &mut Vec<String>) -> f64 {
    cells.clear();
    let mut logit = 0.0;
    let mut latent_count = 0.0;
    for (index, weight) in INTEGER_WEIGHTS.iter().enumerate() {
        let z = stream.normal();
        if stream.unit() < empty_share(index) {
            cells.push(String::new());
            continue;
        }
        let count = (1.5 + 1.6 * z).exp().floor() as i64 - i64::from(index == 1);
        cells.push(count.to_string());
        logit += weight * z;
        if index == 4 {
            latent_count = z;
        }
    }
    for (column, cardinality) in CARDINALITIES.iter().enumerate() {
        // Log-uniform index: a heavy head of frequent values and a long tail.
        let index = ((*cardinality as f64).powf(stream.unit()).floor() as u64).min(cardinality - 1);
        if stream.unit() < empty_share(13 + column) {
            cells.push(String::new());
            continue;
        }
        let key = mix(WORLD ^ ((column as u64) << 40) ^ index);
        cells.push(format!("{:08x}", key as u32));
        let effect = hashed_normal(key) * category_scale(column);
        logit += effect;
        if column == 5 {
            // The interaction: this category flips the sign of the count's effect.
            logit += 0.6 * latent_count * effect.signum();
        }
    }
    logit
}

/// The intercept that makes about `rate` of the labels 1, found on a sample of the population.
fn intercept(rate: f64) -> f64 {
    let mut stream = Stream(mix(WORLD));
    let mut cells = Vec::new();
    let logits: Vec<f64> = (0..20_000).map(|_| row(&mut stream, &mut cells)).collect();
    let share = |bias: f64| {
        logits
            .iter()
            .map(|logit| 1.0 / (1.0 + (-(logit + bias)).exp()))
            .sum::<f64>()
            / logits.len() as f64
    };
    let (mut low, mut high) = (-20.0, 20.0);
    for _ in 0..60 {
        let middle = (low + high) / 2.0;
        if share(middle) < rate {
            low = middle
        } else {
            high = middle
        }
    }
    (low + high) / 2.0
}

/// Writes `rows` Criteo-layout rows separated by `delimiter` (Criteo's files use tabs), calling
/// `progress` with the rows written so far every million rows.
pub fn criteo(
    rows: u64,
    seed: u64,
    delimiter: char,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> std::io::Result<CriteoStats> {
    let bias = intercept(0.21);
    let mut stream = Stream(mix(seed));
    let mut cells = Vec::with_capacity(39);
    let mut stats = CriteoStats::default();
    let mut line = String::new();
    for written in 0..rows {
        let logit = row(&mut stream, &mut cells) + bias;
        let label = stream.unit() < 1.0 / (1.0 + (-logit).exp());
        line.clear();
        line.push(if label { '1' } else { '0' });
        for cell in &cells {
            line.push(delimiter);
            line.push_str(cell);
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
        stats.rows += 1;
        stats.positives += u64::from(label);
        stats.empty_cells += cells.iter().filter(|cell| cell.is_empty()).count() as u64;
        if (written + 1) % 1_000_000 == 0 {
            progress(written + 1);
        }
    }
    Ok(stats)
}

/// The column names of a Criteo row: `label`, `I1..I13`, `C1..C26`.
pub fn criteo_columns() -> Vec<String> {
    std::iter::once("label".to_string())
        .chain((1..=13).map(|i| format!("I{i}")))
        .chain((1..=26).map(|i| format!("C{i}")))
        .collect()
}

/// The groups of [`topics`], each with the words that mark it.
pub const TOPICS: [(&str, &[&str]); 4] = [
    (
        "alt.atheism",
        &[
            "atheist",
            "atheism",
            "evidence",
            "existence",
            "argument",
            "reason",
            "moral",
            "belief",
            "skeptic",
            "logic",
            "proof",
            "secular",
            "darwin",
            "science",
        ],
    ),
    (
        "talk.religion.misc",
        &[
            "church",
            "scripture",
            "faith",
            "prayer",
            "bible",
            "christian",
            "gospel",
            "sermon",
            "prophet",
            "worship",
            "heaven",
            "salvation",
            "koresh",
            "pastor",
        ],
    ),
    (
        "comp.graphics",
        &[
            "jpeg",
            "image",
            "graphics",
            "gif",
            "pixel",
            "render",
            "viewer",
            "polygon",
            "bitmap",
            "format",
            "display",
            "texture",
            "shading",
            "raytracer",
        ],
    ),
    (
        "sci.space",
        &[
            "shuttle",
            "orbit",
            "launch",
            "nasa",
            "moon",
            "rocket",
            "satellite",
            "astronaut",
            "spacecraft",
            "mission",
            "planet",
            "lunar",
            "telescope",
            "payload",
        ],
    ),
];

/// The words every group uses.
const COMMON: &[&str] = &[
    "the", "of", "and", "to", "a", "in", "is", "it", "that", "for", "was", "on", "with", "as",
    "this", "be", "at", "by", "not", "are", "from", "or", "have", "an", "they", "which", "one",
    "you", "were", "all", "we", "there", "been", "if", "more", "when", "will", "would", "who",
    "so", "no", "about", "out", "up", "what", "can", "said", "some", "time", "people", "year",
    "like", "only", "know", "think", "also", "first", "new", "good", "just", "way", "well", "make",
    "use", "work", "see", "get", "thing", "question", "point", "read", "post", "write", "mail",
    "news", "article", "group", "reply", "thanks", "anyone", "help", "really", "still", "many",
    "much", "most", "other", "than", "then", "them", "these", "those", "very",
];

/// Writes `documents` documents of [`TOPICS`]' groups in turn (so each group has a quarter), one
/// JSON line each; the same seed writes the same bytes.
pub fn topics(documents: usize, seed: u64, out: &mut dyn Write) -> std::io::Result<()> {
    let mut stream = Stream(mix(seed ^ 0x7031_6373));
    let pick = |stream: &mut Stream, words: &[&'static str]| -> &'static str {
        words[(stream.next() % words.len() as u64) as usize]
    };
    let mut text = String::new();
    for index in 0..documents {
        let (group, own) = TOPICS[index % TOPICS.len()];
        let length = 40 + (stream.next() % 80) as usize;
        text.clear();
        for position in 0..length {
            let draw = stream.unit();
            let word = if draw < 0.2 {
                pick(&mut stream, own)
            } else if draw < 0.23 {
                let other = TOPICS[(stream.next() % TOPICS.len() as u64) as usize].1;
                pick(&mut stream, other)
            } else {
                pick(&mut stream, COMMON)
            };
            if position > 0 {
                text.push(' ');
            }
            text.push_str(word);
        }
        let line = serde_json::json!({"group": group, "id": format!("{index}"), "text": text});
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Every word [`topics`] may write.
pub fn topic_words() -> std::collections::BTreeSet<&'static str> {
    TOPICS
        .iter()
        .flat_map(|(_, words)| words.iter().copied())
        .chain(COMMON.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_have_the_layout_rates_and_determinism_promised() {
        let mut first = Vec::new();
        let stats = criteo(20_000, 3, '\t', &mut first, &mut |_| {}).unwrap();
        let mut again = Vec::new();
        criteo(20_000, 3, '\t', &mut again, &mut |_| {}).unwrap();
        assert_eq!(first, again, "same seed, same bytes");
        let mut other = Vec::new();
        criteo(100, 4, '\t', &mut other, &mut |_| {}).unwrap();
        assert_ne!(
            &first[..other.len().min(first.len())],
            &other[..],
            "another seed, other data"
        );
        let text = String::from_utf8(first).unwrap();
        assert_eq!(text.lines().count(), 20_000);
        for line in text.lines().take(200) {
            let cells: Vec<&str> = line.split('\t').collect();
            assert_eq!(cells.len(), 40, "{line}");
            assert!(cells[0] == "0" || cells[0] == "1");
            assert!(
                cells[1..14]
                    .iter()
                    .all(|c| c.is_empty() || c.parse::<i64>().is_ok()),
                "{line}"
            );
            assert!(
                cells[14..]
                    .iter()
                    .all(|c| c.is_empty() || c.len() == 8 && u32::from_str_radix(c, 16).is_ok()),
                "{line}"
            );
        }
        let positives = stats.positives as f64 / stats.rows as f64;
        assert!((0.19..0.23).contains(&positives), "{positives}");
        let empty = stats.empty_cells as f64 / (stats.rows * 39) as f64;
        assert!((0.12..0.18).contains(&empty), "{empty}");
        assert_eq!(criteo_columns().len(), 40);
    }

    #[test]
    fn topics_are_balanced_reproducible_and_use_their_words() {
        let (mut first, mut again, mut other) = (Vec::new(), Vec::new(), Vec::new());
        topics(400, 1, &mut first).unwrap();
        topics(400, 1, &mut again).unwrap();
        topics(400, 2, &mut other).unwrap();
        assert_eq!(first, again);
        assert_ne!(first, other);
        let words = topic_words();
        let mut counts = std::collections::BTreeMap::new();
        for line in String::from_utf8(first).unwrap().lines() {
            let document: serde_json::Value = serde_json::from_str(line).unwrap();
            *counts
                .entry(document["group"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
            let text = document["text"].as_str().unwrap();
            assert!(text.split(' ').all(|word| words.contains(word)), "{text}");
        }
        assert_eq!(counts.len(), 4);
        assert!(counts.values().all(|count| *count == 100), "{counts:?}");
    }
}

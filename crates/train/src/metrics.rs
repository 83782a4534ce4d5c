//! Evaluation metrics, named as TensorFlow's canned estimators name them.

use std::collections::BTreeMap;

use kiln_model::Prediction;

/// Metrics of predictions against labels (class ids or values).
pub fn evaluate(predictions: &[Prediction], labels: &[f32]) -> BTreeMap<String, f64> {
    let mut metrics = BTreeMap::new();
    let count = labels.len().max(1) as f64;
    match predictions.first() {
        Some(Prediction::Regression { .. }) => {
            let errors: Vec<f64> = predictions
                .iter()
                .zip(labels)
                .map(|(prediction, &label)| match prediction {
                    Prediction::Regression { value } => f64::from(*value) - f64::from(label),
                    _ => 0.0,
                })
                .collect();
            let mse = errors.iter().map(|error| error * error).sum::<f64>() / count;
            metrics.insert("loss".into(), mse);
            metrics.insert("rmse".into(), mse.sqrt());
            metrics.insert(
                "mae".into(),
                errors.iter().map(|error| error.abs()).sum::<f64>() / count,
            );
        }
        Some(_) => {
            let mut correct = 0usize;
            let mut log_loss = 0.0;
            let mut scores = Vec::new();
            for (prediction, &label) in predictions.iter().zip(labels) {
                let label = label as usize;
                let (class_id, probability_of_label) = match prediction {
                    Prediction::Binary {
                        probability,
                        class_id,
                        ..
                    } => {
                        scores.push((f64::from(*probability), label == 1));
                        let p = if label == 1 {
                            *probability
                        } else {
                            1.0 - probability
                        };
                        (*class_id, p)
                    }
                    Prediction::MultiClass {
                        probabilities,
                        class_id,
                        ..
                    } => (*class_id, probabilities.get(label).copied().unwrap_or(0.0)),
                    Prediction::Regression { .. } => (usize::MAX, 0.0),
                };
                correct += usize::from(class_id == label);
                log_loss -= f64::from(probability_of_label).max(1e-7).ln();
            }
            metrics.insert("accuracy".into(), correct as f64 / count);
            metrics.insert("loss".into(), log_loss / count);
            if !scores.is_empty() {
                metrics.insert("auc".into(), auc(&mut scores));
            }
        }
        None => {}
    }
    metrics
}

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting one half (Mann-Whitney U).
pub fn auc(scores: &mut [(f64, bool)]) -> f64 {
    scores.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = scores.iter().filter(|(_, positive)| *positive).count() as f64;
    let negatives = scores.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return 0.5;
    }
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < scores.len() {
        let mut end = start;
        while end + 1 < scores.len() && scores[end + 1].0 == scores[start].0 {
            end += 1;
        }
        let average_rank = (start + end) as f64 / 2.0 + 1.0;
        rank_sum += average_rank
            * scores[start..=end]
                .iter()
                .filter(|(_, positive)| *positive)
                .count() as f64;
        start = end + 1;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_random_and_inverted_rankings() {
        assert_eq!(
            auc(&mut [(0.1, false), (0.9, true), (0.2, false), (0.8, true)]),
            1.0
        );
        assert_eq!(auc(&mut [(0.5, false), (0.5, true)]), 0.5);
        assert_eq!(auc(&mut [(0.9, false), (0.1, true)]), 0.0);
        assert!(
            (auc(&mut [(0.1, false), (0.4, true), (0.5, false), (0.8, true)]) - 0.75).abs() < 1e-12
        );
    }

    #[test]
    fn regression_metrics() {
        let predictions = [
            Prediction::Regression { value: 1.0 },
            Prediction::Regression { value: 4.0 },
        ];
        let metrics = evaluate(&predictions, &[2.0, 2.0]);
        assert_eq!(metrics["mae"], 1.5);
        assert_eq!(metrics["loss"], 2.5);
    }
}

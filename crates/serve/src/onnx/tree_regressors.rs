//! Tree ensemble regressors on tract, which has `TreeEnsembleClassifier` but not
//! `TreeEnsembleRegressor` (XGBoost's, LightGBM's and scikit-learn's tree regressors all export
//! to it).
//!
//! A one-target regressor summing (or averaging) its trees is the score column of a one-class
//! classifier without a post transform: the leaves' `target_*` become `class_*` (weights divided
//! by the number of trees for `AVERAGE`), and the score is read back from the classifier's
//! probabilities. tract gives a one-class ensemble's probabilities as `[1 - score, score]`, so the
//! score is column 1, sliced out to the regressor's `[N, 1]` output.

use std::collections::HashSet;

use tract_onnx::pb::{AttributeProto, GraphProto, NodeProto, attribute_proto};

use super::graph::{binary, int64_vector, replace_nodes};

/// Rewrites every one-target `SUM`/`AVERAGE` regressor of `graph`; returns whether one was found.
pub fn rewrite(graph: &mut GraphProto) -> bool {
    replace_nodes(graph, |node, initializers| {
        let Some(classifier) = as_classifier(&node) else {
            return Err(Box::new(node));
        };
        let output = node.output[0].clone();
        let [label, scores, bounds_start, bounds_end, axis] =
            ["label", "scores", "start", "end", "axis"].map(|part| format!("{output}.kiln_{part}"));
        let mut classifier = classifier;
        classifier.output = vec![label, scores.clone()];
        initializers.extend([
            int64_vector(&bounds_start, vec![1]),
            int64_vector(&bounds_end, vec![2]),
            int64_vector(&axis, vec![1]),
        ]);
        let mut slice = binary("Slice", [scores, bounds_start], &output);
        slice.input.extend([bounds_end, axis]);
        Ok(vec![classifier, slice])
    })
}

/// The one-class classifier computing `node`'s score, if `node` is a regressor it can stand for.
fn as_classifier(node: &NodeProto) -> Option<NodeProto> {
    if node.op_type != "TreeEnsembleRegressor" || node.domain != "ai.onnx.ml" {
        return None;
    }
    let attribute = |name: &str| node.attribute.iter().find(|a| a.name == name);
    let text = |name: &str| attribute(name).map(|a| a.s.as_slice());
    let one_target = attribute("n_targets").is_none_or(|a| a.i == 1);
    let plain = text("post_transform").is_none_or(|s| s == b"NONE");
    let aggregate = text("aggregate_function").unwrap_or(b"SUM");
    if !one_target || !plain || !matches!(aggregate, b"SUM" | b"AVERAGE") {
        return None;
    }
    let trees: HashSet<i64> = attribute("nodes_treeids")?.ints.iter().copied().collect();
    let scale = match aggregate {
        b"AVERAGE" => 1.0 / trees.len().max(1) as f32,
        _ => 1.0,
    };
    let mut attributes: Vec<AttributeProto> = node
        .attribute
        .iter()
        .filter(|a| !matches!(a.name.as_str(), "n_targets" | "aggregate_function"))
        .cloned()
        .map(|mut a| {
            if let Some(leaf) = a.name.strip_prefix("target_").map(str::to_owned) {
                a.name = format!("class_{leaf}");
                if leaf == "weights" {
                    a.floats.iter_mut().for_each(|weight| *weight *= scale);
                }
            }
            a
        })
        .collect();
    attributes.push(AttributeProto {
        name: "classlabels_int64s".into(),
        r#type: attribute_proto::AttributeType::Ints as i32,
        ints: vec![0],
        ..AttributeProto::default()
    });
    Some(NodeProto {
        op_type: "TreeEnsembleClassifier".into(),
        domain: node.domain.clone(),
        input: node.input.clone(),
        name: node.name.clone(),
        attribute: attributes,
        ..NodeProto::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(name: &str, values: &[i64]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            ints: values.to_vec(),
            ..AttributeProto::default()
        }
    }

    fn regressor(aggregate: &str) -> NodeProto {
        let mut attribute = vec![
            ints("nodes_treeids", &[0, 0, 0, 1]),
            ints("target_ids", &[0, 0, 0]),
            AttributeProto {
                name: "target_weights".into(),
                floats: vec![1.0, 2.0, 4.0],
                ..AttributeProto::default()
            },
            ints("n_targets", &[]),
        ];
        attribute[3].i = 1;
        attribute.push(AttributeProto {
            name: "aggregate_function".into(),
            s: aggregate.as_bytes().to_vec(),
            ..AttributeProto::default()
        });
        NodeProto {
            op_type: "TreeEnsembleRegressor".into(),
            domain: "ai.onnx.ml".into(),
            input: vec!["x".into()],
            output: vec!["variable".into()],
            attribute,
            ..NodeProto::default()
        }
    }

    #[test]
    fn an_averaging_regressor_becomes_a_scaled_one_class_classifier_and_a_slice() {
        let mut graph = GraphProto {
            node: vec![regressor("AVERAGE")],
            ..GraphProto::default()
        };
        assert!(rewrite(&mut graph));
        let [classifier, slice] = graph.node.as_slice() else {
            panic!("{:?}", graph.node);
        };
        assert_eq!(classifier.op_type, "TreeEnsembleClassifier");
        let find = |name: &str| classifier.attribute.iter().find(|a| a.name == name);
        assert_eq!(find("class_weights").unwrap().floats, [0.5, 1.0, 2.0]);
        assert_eq!(find("classlabels_int64s").unwrap().ints, [0]);
        assert!(find("n_targets").is_none() && find("target_ids").is_none());
        assert_eq!(slice.op_type, "Slice");
        assert_eq!(slice.input[0], classifier.output[1]);
        assert_eq!(slice.output, ["variable"]);
        let start = graph.initializer.iter().find(|t| t.name == slice.input[1]);
        let start = start.unwrap();
        assert_eq!(start.int64_data, [1]);
    }

    #[test]
    fn a_regressor_taking_the_largest_tree_is_left_alone() {
        let mut graph = GraphProto {
            node: vec![regressor("MAX")],
            ..GraphProto::default()
        };
        assert!(!rewrite(&mut graph));
        assert_eq!(graph.node[0].op_type, "TreeEnsembleRegressor");
    }
}

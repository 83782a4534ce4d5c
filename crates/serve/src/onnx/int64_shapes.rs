//! Widening TensorFlow's int32 shape arithmetic to int64, for tract.
//!
//! tf2onnx (and so Keras' `model.export(format="onnx")`) computes shapes as TensorFlow does, in
//! int32: `Shape` → `Cast(to=INT32)` → `Slice`/`Concat` with int32 constants → `Cast(to=INT64)`
//! → `Reshape`. tract follows a symbolic batch size through shape arithmetic only in int64, so it
//! refused such a `Reshape` ("shape input is variable"). This pass turns each such region into
//! int64: the int32 `Cast` becomes an int64 one and the int32 constants the region meets become
//! int64 copies. A region that reaches anything but shape operators, a `Cast` or a `Reshape`'s
//! shape is left alone.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb::{GraphProto, TensorProto, tensor_proto::DataType};

/// Operators through which a shape computation is followed, both back to its `Shape` and
/// forward to where it ends.
const SHAPE_OPS: [&str; 10] = [
    "Gather",
    "Slice",
    "Squeeze",
    "Unsqueeze",
    "Concat",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Identity",
];

/// Rewrites every int32 shape region of `graph` to int64; returns whether one was found.
pub fn widen(graph: &mut GraphProto) -> bool {
    let producers: HashMap<String, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(index, node)| node.output.iter().map(move |name| (name.clone(), index)))
        .collect();
    let int32_constants: HashMap<String, Vec<i64>> = graph
        .initializer
        .iter()
        .filter_map(|tensor| Some((tensor.name.clone(), int32_values(tensor)?)))
        .collect();
    let mut widened = false;
    for cast in 0..graph.node.len() {
        let node = &graph.node[cast];
        let to_int32 = node.op_type == "Cast"
            && node
                .attribute
                .iter()
                .any(|a| a.name == "to" && a.i == DataType::Int32 as i64);
        if !to_int32 || !from_shape(graph, &producers, &node.input[0]) {
            continue;
        }
        let Some(region) = region(graph, cast, &int32_constants) else {
            continue;
        };
        for attribute in &mut graph.node[cast].attribute {
            if attribute.name == "to" {
                attribute.i = DataType::Int64 as i64;
            }
        }
        for index in region {
            for input in 0..graph.node[index].input.len() {
                let name = graph.node[index].input[input].clone();
                if let Some(values) = int32_constants.get(&name) {
                    let wide = format!("{name}.kiln_int64");
                    if !graph.initializer.iter().any(|tensor| tensor.name == wide) {
                        let dims = graph
                            .initializer
                            .iter()
                            .find(|tensor| tensor.name == name)
                            .map(|tensor| tensor.dims.clone())
                            .unwrap_or_default();
                        graph.initializer.push(TensorProto {
                            name: wide.clone(),
                            dims,
                            data_type: DataType::Int64 as i32,
                            int64_data: values.clone(),
                            ..TensorProto::default()
                        });
                    }
                    graph.node[index].input[input] = wide;
                }
            }
        }
        widened = true;
    }
    widened
}

/// Whether `tensor` is computed from a `Shape` through shape operators only.
fn from_shape(graph: &GraphProto, producers: &HashMap<String, usize>, tensor: &str) -> bool {
    let mut tensor = tensor;
    while let Some(&index) = producers.get(tensor) {
        let node = &graph.node[index];
        match node.op_type.as_str() {
            "Shape" => return true,
            op if SHAPE_OPS.contains(&op) || op == "Cast" => match node.input.first() {
                Some(first) => tensor = first,
                None => return false,
            },
            _ => return false,
        }
    }
    false
}

/// The nodes fed, directly or through shape operators, by the int32 output of node `cast`, when
/// every path ends in a `Cast` or a `Reshape`'s shape and every other int32 input they take is a
/// constant; `None` otherwise.
fn region(
    graph: &GraphProto,
    cast: usize,
    int32_constants: &HashMap<String, Vec<i64>>,
) -> Option<Vec<usize>> {
    let mut region = Vec::new();
    let mut seen = HashSet::new();
    let mut frontier = graph.node[cast].output.clone();
    let mut inside: HashSet<String> = frontier.iter().cloned().collect();
    while let Some(tensor) = frontier.pop() {
        if graph.output.iter().any(|output| output.name == tensor) {
            return None;
        }
        for (index, node) in graph.node.iter().enumerate() {
            let Some(position) = node.input.iter().position(|input| *input == tensor) else {
                continue;
            };
            let ends_here = node.op_type == "Cast" || (node.op_type == "Reshape" && position == 1);
            if ends_here || !seen.insert(index) {
                continue;
            }
            if !SHAPE_OPS.contains(&node.op_type.as_str()) {
                return None;
            }
            // Gather's indices and Slice's bounds are their own type; the other inputs of an
            // arithmetic or Concat node must be widened constants or the region itself.
            let typed_together = !matches!(node.op_type.as_str(), "Gather" | "Slice");
            let foreign = node.input.iter().enumerate().any(|(at, input)| {
                typed_together
                    && at != position
                    && !inside.contains(input)
                    && !int32_constants.contains_key(input)
            });
            if foreign {
                return None;
            }
            region.push(index);
            for output in &node.output {
                if inside.insert(output.clone()) {
                    frontier.push(output.clone());
                }
            }
        }
    }
    Some(region)
}

/// The values of an int32 constant, from `int32_data` or little-endian `raw_data`.
fn int32_values(tensor: &TensorProto) -> Option<Vec<i64>> {
    if tensor.data_type != DataType::Int32 as i32 {
        return None;
    }
    if !tensor.int32_data.is_empty() {
        return Some(tensor.int32_data.iter().map(|&v| i64::from(v)).collect());
    }
    let raw = &tensor.raw_data;
    raw.len().is_multiple_of(4).then(|| {
        raw.chunks_exact(4)
            .map(|bytes| i64::from(i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use tract_onnx::pb::{AttributeProto, NodeProto, ValueInfoProto};

    use super::*;

    fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..NodeProto::default()
        }
    }

    fn cast(input: &str, output: &str, to: DataType) -> NodeProto {
        let mut node = node("Cast", &[input], output);
        node.attribute.push(AttributeProto {
            name: "to".into(),
            i: to as i64,
            ..AttributeProto::default()
        });
        node
    }

    fn int32(name: &str, values: &[i32]) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: vec![values.len() as i64],
            data_type: DataType::Int32 as i32,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..TensorProto::default()
        }
    }

    /// Keras' Flatten as tf2onnx writes it.
    fn flatten(last: NodeProto) -> GraphProto {
        GraphProto {
            node: vec![
                node("Shape", &["x"], "shape"),
                cast("shape", "shape32", DataType::Int32),
                node("Slice", &["shape32", "zero", "one"], "batch"),
                node("Concat", &["batch", "width"], "target32"),
                last,
                node("Reshape", &["x", "target"], "y"),
            ],
            initializer: vec![int32("width", &[128])],
            output: vec![ValueInfoProto {
                name: "y".into(),
                ..ValueInfoProto::default()
            }],
            ..GraphProto::default()
        }
    }

    #[test]
    fn keras_flatten_shape_arithmetic_becomes_int64() {
        let mut graph = flatten(cast("target32", "target", DataType::Int64));
        assert!(widen(&mut graph));
        let to = &graph.node[1].attribute[0];
        assert_eq!(to.i, DataType::Int64 as i64);
        assert_eq!(graph.node[3].input, ["batch", "width.kiln_int64"]);
        let wide = graph.initializer.last().unwrap();
        assert_eq!(
            (wide.data_type, wide.int64_data.as_slice()),
            (DataType::Int64 as i32, &[128][..])
        );
    }

    #[test]
    fn a_region_that_reaches_other_operators_is_left_alone() {
        let mut graph = flatten(node("Sigmoid", &["target32"], "target"));
        assert!(!widen(&mut graph));
        assert_eq!(graph.node[1].attribute[0].i, DataType::Int32 as i64);
        assert_eq!(graph.initializer.len(), 1);
    }
}

//! The ONNX graph before the runtime sees it: the operator check that version create reports,
//! and the rewrites that let scikit-learn's, XGBoost's and Keras' default exports run on tract
//! and answer right.
//!
//! ML Engine users met an unsupported operator only at predict time ("Op type not registered");
//! here every node, subgraphs included, is checked against the runtime's operator table when the
//! model loads, and all the missing ones are named at once.

use std::collections::HashSet;

use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, TypeProto, attribute_proto,
    tensor_proto, type_proto,
};

use crate::ServeError;

/// Operator domains whose operators the runtime's table names; operators of other domains
/// (`com.microsoft`, custom ones) are unsupported whatever their name.
const KNOWN_DOMAINS: [&str; 3] = ["", "ai.onnx", "ai.onnx.ml"];

/// One output of the model as the response names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The graph output's name, the key of a multi-output prediction.
    pub name: String,
    /// Set when a `ZipMap` was removed from this output: its class labels, which key the
    /// probabilities of each instance the way the `ZipMap` would have.
    pub class_labels: Option<Vec<String>>,
    /// Its element type as the graph declares it, in NumPy's words (`None`: not a tensor, or of
    /// a type no instance or prediction carries).
    pub dtype: Option<&'static str>,
    /// Its dimensions as declared, `None` where symbolic or unknown.
    pub dims: Vec<Option<usize>>,
}

/// A model made ready for an engine.
#[derive(Debug)]
pub struct Prepared {
    /// The outputs, as the response names them.
    pub outputs: Vec<Output>,
    /// The inputs, as the graph declares them.
    pub inputs: Vec<GraphInput>,
    /// Whether the graph was rewritten (else the file on disk can be given to the engine as is).
    pub rewritten: bool,
}

/// A graph input as declared: what instances must fill.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphInput {
    /// Its name.
    pub name: String,
    /// Its element type.
    pub element: Element,
    /// Its dimensions, `None` where symbolic or unknown.
    pub dims: Vec<Option<usize>>,
}

/// The element types JSON instances can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element {
    F32,
    F64,
    I32,
    I64,
    Bool,
    String,
    /// Bytes: numbers from 0 to 255, or an instance's `{"b64": ...}`.
    U8,
}

impl Element {
    /// Its name in NumPy's words, as signatures and [`crate::tensor::Data::dtype`] give it.
    pub fn dtype(self) -> &'static str {
        match self {
            Element::F32 => "float32",
            Element::F64 => "float64",
            Element::I32 => "int32",
            Element::I64 => "int64",
            Element::Bool => "bool",
            Element::String => "string",
            Element::U8 => "uint8",
        }
    }
}

/// Rewrites `model` for its engine and checks that the engine can run every remaining operator.
/// `tract_ops` is tract's operator table: tract gets the rewrites of what it lacks and the check
/// against its table. Without it (ONNX Runtime, which has every standard operator) only output
/// `ZipMap`s are stripped and only operators of unknown domains are refused.
pub fn prepare(
    model: &mut ModelProto,
    tract_ops: Option<&dyn Fn(&str) -> bool>,
) -> Result<Prepared, ServeError> {
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| ServeError::Load("model.onnx holds no graph".into()))?;
    let mut rewritten = false;
    if tract_ops.is_some() {
        rewritten |= expand_scalers(graph);
        rewritten |= relabel_binary_tree_classifiers(graph);
        rewritten |= super::tree_regressors::rewrite(graph);
        rewritten |= super::int64_shapes::widen(graph);
    }
    let (outputs, stripped) = strip_output_zipmaps(graph);
    let rewritten = rewritten || stripped;
    let mut missing = Vec::new();
    unsupported(
        graph,
        &|op| tract_ops.is_none_or(|table| table(op)),
        &mut missing,
    );
    if !missing.is_empty() {
        let zipmap_hint = if missing.iter().any(|op| op.starts_with("ZipMap ")) {
            " ZipMap is supported only on a graph output; export with zipmap disabled \
             (skl2onnx: options={'zipmap': False}) otherwise."
        } else {
            ""
        };
        return Err(ServeError::Unsupported(format!(
            "the ONNX model uses operators this Kiln build cannot run: {}.{zipmap_hint}",
            missing.join(", ")
        )));
    }
    let inputs = inputs(graph)?;
    Ok(Prepared {
        outputs,
        inputs,
        rewritten,
    })
}

/// The graph's inputs that are not initializers, with their declared types and shapes.
fn inputs(graph: &GraphProto) -> Result<Vec<GraphInput>, ServeError> {
    use tensor_proto::DataType;
    let initialized: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut inputs = Vec::new();
    for input in &graph.input {
        if initialized.contains(input.name.as_str()) {
            continue;
        }
        let name = &input.name;
        let Some(TypeProto {
            value: Some(type_proto::Value::TensorType(tensor)),
            ..
        }) = &input.r#type
        else {
            return Err(ServeError::Load(format!("input '{name}' is not a tensor")));
        };
        let element = match DataType::try_from(tensor.elem_type) {
            Ok(DataType::Float) => Element::F32,
            Ok(DataType::Double) => Element::F64,
            Ok(DataType::Int32) => Element::I32,
            Ok(DataType::Int64) => Element::I64,
            Ok(DataType::Bool) => Element::Bool,
            Ok(DataType::String) => Element::String,
            Ok(DataType::Uint8) => Element::U8,
            other => {
                return Err(ServeError::Load(format!(
                    "input '{name}' takes {other:?} tensors, which JSON instances cannot fill"
                )));
            }
        };
        let shape = tensor.shape.as_ref().ok_or_else(|| {
            ServeError::Load(format!(
                "input '{name}' has no shape in the graph; export it with one (a symbolic batch \
                 dimension first)"
            ))
        })?;
        let dims = dims(shape);
        inputs.push(GraphInput {
            name: name.clone(),
            element,
            dims,
        });
    }
    Ok(inputs)
}

/// A declared shape's dimensions, `None` where symbolic or unknown.
fn dims(shape: &tract_onnx::pb::TensorShapeProto) -> Vec<Option<usize>> {
    shape
        .dim
        .iter()
        .map(|dim| match dim.value {
            Some(tract_onnx::pb::tensor_shape_proto::dimension::Value::DimValue(value))
                if value > 0 =>
            {
                usize::try_from(value).ok()
            }
            _ => None,
        })
        .collect()
}

/// An output as declared: its element type's NumPy name and its dimensions.
fn declared(output: &tract_onnx::pb::ValueInfoProto) -> (Option<&'static str>, Vec<Option<usize>>) {
    use tensor_proto::DataType;
    let Some(TypeProto {
        value: Some(type_proto::Value::TensorType(tensor)),
        ..
    }) = &output.r#type
    else {
        return (None, Vec::new());
    };
    let dtype = match DataType::try_from(tensor.elem_type) {
        Ok(DataType::Float) => Some("float32"),
        Ok(DataType::Double) => Some("float64"),
        Ok(DataType::Int32) => Some("int32"),
        Ok(DataType::Int64) => Some("int64"),
        Ok(DataType::Bool) => Some("bool"),
        Ok(DataType::String) => Some("string"),
        Ok(DataType::Uint8) => Some("uint8"),
        _ => None,
    };
    (dtype, tensor.shape.as_ref().map(dims).unwrap_or_default())
}

/// Lists, once each and in graph order, the operators of `graph` and its subgraphs that the
/// runtime lacks, as `Op (domain)`.
fn unsupported(graph: &GraphProto, supported: &impl Fn(&str) -> bool, missing: &mut Vec<String>) {
    for node in &graph.node {
        let known = KNOWN_DOMAINS.contains(&node.domain.as_str()) && supported(&node.op_type);
        let domain = if node.domain.is_empty() {
            "ai.onnx"
        } else {
            &node.domain
        };
        let name = format!("{} ({domain})", node.op_type);
        if !known && !missing.contains(&name) {
            missing.push(name);
        }
        for attribute in &node.attribute {
            for subgraph in attribute.g.iter().chain(&attribute.graphs) {
                unsupported(subgraph, supported, missing);
            }
        }
    }
}

/// Rebuilds `graph.node` in order, letting `replace` swap a node for others (it may add
/// initializers) or hand it back unchanged; returns whether any node was replaced.
pub(super) fn replace_nodes(
    graph: &mut GraphProto,
    mut replace: impl FnMut(NodeProto, &mut Vec<TensorProto>) -> Result<Vec<NodeProto>, Box<NodeProto>>,
) -> bool {
    let mut replaced = false;
    for node in std::mem::take(&mut graph.node) {
        match replace(node, &mut graph.initializer) {
            Ok(nodes) => {
                replaced = true;
                graph.node.extend(nodes);
            }
            Err(kept) => graph.node.push(*kept),
        }
    }
    replaced
}

/// Replaces each `Scaler` (ai.onnx.ml: `y = (x - offset) * scale`, as float) with
/// `Cast`, `Sub` and `Mul` on constant initializers, which the runtime has.
fn expand_scalers(graph: &mut GraphProto) -> bool {
    replace_nodes(graph, |node, initializers| {
        if node.op_type != "Scaler" || node.domain != "ai.onnx.ml" || node.input.len() != 1 {
            return Err(Box::new(node));
        }
        let floats = |name: &str| {
            node.attribute
                .iter()
                .find(|attribute| attribute.name == name)
                .map(|attribute| attribute.floats.clone())
                .unwrap_or_default()
        };
        let (offset, scale) = (floats("offset"), floats("scale"));
        let output = node.output.first().cloned().unwrap_or_default();
        let names =
            ["cast", "offset", "centred", "scale"].map(|part| format!("{output}.kiln_{part}"));
        let [cast, offset_name, centred, scale_name] = names;
        initializers.push(float_vector(&offset_name, offset));
        initializers.push(float_vector(&scale_name, scale));
        let mut to_float = unary("Cast", node.input[0].clone(), &cast);
        to_float.attribute = vec![int_attribute("to", tensor_proto::DataType::Float as i64)];
        Ok(vec![
            to_float,
            binary("Sub", [cast, offset_name], &centred),
            binary("Mul", [centred, scale_name], &output),
        ])
    })
}

/// Recomputes the label of each two-class `TreeEnsembleClassifier` as the class of highest
/// probability (`ArgMax`, then `Gather` from the class labels). tract 0.23 takes the argmax of
/// the single score column of a binary ensemble, so it always answered the first class
/// (scikit-learn's binary random forests); the probabilities it gives are right. A single
/// `base_values` entry (XGBoost's exports: the base score of the one score column) is padded with
/// a zero for the second class, as tract takes one per class.
fn relabel_binary_tree_classifiers(graph: &mut GraphProto) -> bool {
    replace_nodes(graph, |mut node, initializers| {
        let labels = class_labels(&node);
        let two_classes = labels.as_ref().is_some_and(|labels| labels.len() == 2);
        if node.op_type != "TreeEnsembleClassifier" || node.output.len() != 2 || !two_classes {
            return Err(Box::new(node));
        }
        if let Some(base) = node
            .attribute
            .iter_mut()
            .find(|attribute| attribute.name == "base_values" && attribute.floats.len() == 1)
        {
            base.floats.push(0.0);
        }
        let (label, probabilities) = (node.output[0].clone(), node.output[1].clone());
        let [unused, classes, winner] =
            ["unused", "classes", "winner"].map(|part| format!("{label}.kiln_{part}"));
        node.output[0] = unused;
        let mut table = TensorProto {
            name: classes.clone(),
            dims: vec![2],
            ..TensorProto::default()
        };
        match labels {
            Some(ClassLabels::Ints(ints)) => {
                table.data_type = tensor_proto::DataType::Int64 as i32;
                table.int64_data = ints;
            }
            Some(ClassLabels::Strings(strings)) => {
                table.data_type = tensor_proto::DataType::String as i32;
                table.string_data = strings;
            }
            None => {}
        }
        initializers.push(table);
        let mut argmax = unary("ArgMax", probabilities, &winner);
        argmax.attribute = vec![int_attribute("axis", 1), int_attribute("keepdims", 0)];
        Ok(vec![
            node,
            argmax,
            binary("Gather", [classes, winner], &label),
        ])
    })
}

/// A classifier's class labels, from `classlabels_int64s` or `classlabels_strings`.
enum ClassLabels {
    Ints(Vec<i64>),
    Strings(Vec<Vec<u8>>),
}

impl ClassLabels {
    fn len(&self) -> usize {
        match self {
            ClassLabels::Ints(ints) => ints.len(),
            ClassLabels::Strings(strings) => strings.len(),
        }
    }

    /// The labels as JSON object keys.
    fn keys(&self) -> Vec<String> {
        match self {
            ClassLabels::Ints(ints) => ints.iter().map(i64::to_string).collect(),
            ClassLabels::Strings(strings) => strings
                .iter()
                .map(|label| String::from_utf8_lossy(label).into_owned())
                .collect(),
        }
    }
}

fn class_labels(node: &NodeProto) -> Option<ClassLabels> {
    node.attribute
        .iter()
        .find_map(|attribute| match attribute.name.as_str() {
            "classlabels_int64s" => Some(ClassLabels::Ints(attribute.ints.clone())),
            "classlabels_strings" => Some(ClassLabels::Strings(attribute.strings.clone())),
            _ => None,
        })
}

fn int_attribute(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_proto::AttributeType::Int as i32,
        i: value,
        ..AttributeProto::default()
    }
}

fn unary(op_type: &str, input: String, output: &str) -> NodeProto {
    NodeProto {
        op_type: op_type.into(),
        input: vec![input],
        output: vec![output.into()],
        ..NodeProto::default()
    }
}

pub(super) fn binary(op_type: &str, inputs: [String; 2], output: &str) -> NodeProto {
    NodeProto {
        op_type: op_type.into(),
        input: inputs.into(),
        output: vec![output.into()],
        ..NodeProto::default()
    }
}

pub(super) fn int64_vector(name: &str, values: Vec<i64>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![values.len() as i64],
        data_type: tensor_proto::DataType::Int64 as i32,
        int64_data: values,
        ..TensorProto::default()
    }
}

fn float_vector(name: &str, values: Vec<f32>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![values.len() as i64],
        data_type: tensor_proto::DataType::Float as i32,
        float_data: values,
        ..TensorProto::default()
    }
}

/// Removes each `ZipMap` whose result is a graph output, making its input tensor the output and
/// remembering the class labels, so the response keys probabilities by class as the `ZipMap`
/// would. (Its sequence-of-maps result is not a tensor, which the runtime requires.)
fn strip_output_zipmaps(graph: &mut GraphProto) -> (Vec<Output>, bool) {
    let mut outputs: Vec<Output> = graph
        .output
        .iter()
        .map(|output| {
            let (dtype, dims) = declared(output);
            Output {
                name: output.name.clone(),
                class_labels: None,
                dtype,
                dims,
            }
        })
        .collect();
    let mut removed = HashSet::new();
    for (index, node) in graph.node.iter().enumerate() {
        let (true, [input], [result]) = (
            node.op_type == "ZipMap" && node.domain == "ai.onnx.ml",
            node.input.as_slice(),
            node.output.as_slice(),
        ) else {
            continue;
        };
        let Some(position) = graph
            .output
            .iter()
            .position(|output| &output.name == result)
        else {
            continue;
        };
        let labels = class_labels(node).map(|labels| labels.keys());
        graph.output[position].name = input.clone();
        graph.output[position].r#type = Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: tensor_proto::DataType::Float as i32,
                shape: None,
            })),
            ..TypeProto::default()
        });
        outputs[position].dims = vec![None, labels.as_ref().map(Vec::len)];
        outputs[position].dtype = Some("float32");
        outputs[position].class_labels = labels;
        removed.insert(index);
    }
    let mut index = 0;
    graph.node.retain(|_| {
        index += 1;
        !removed.contains(&(index - 1))
    });
    (outputs, !removed.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op_type: &str, domain: &str, input: &str, output: &str) -> NodeProto {
        NodeProto {
            op_type: op_type.into(),
            domain: domain.into(),
            input: vec![input.into()],
            output: vec![output.into()],
            ..NodeProto::default()
        }
    }

    fn model(nodes: Vec<NodeProto>, outputs: &[&str]) -> ModelProto {
        ModelProto {
            graph: Some(GraphProto {
                node: nodes,
                output: outputs
                    .iter()
                    .map(|name| tract_onnx::pb::ValueInfoProto {
                        name: (*name).into(),
                        ..Default::default()
                    })
                    .collect(),
                ..GraphProto::default()
            }),
            ..ModelProto::default()
        }
    }

    fn runtime_ops(op: &str) -> bool {
        ["Cast", "Sub", "Mul", "Relu", "LinearClassifier"].contains(&op)
    }

    #[test]
    fn names_every_unsupported_operator_once_including_subgraphs() {
        let mut branch = node("If", "", "condition", "y");
        branch.attribute.push(AttributeProto {
            name: "then_branch".into(),
            g: Some(GraphProto {
                node: vec![node("Gelu", "com.microsoft", "x", "y")],
                ..GraphProto::default()
            }),
            ..AttributeProto::default()
        });
        let mut proto = model(
            vec![
                node("Relu", "", "x", "a"),
                node("SVMClassifier", "ai.onnx.ml", "a", "b"),
                node("SVMClassifier", "ai.onnx.ml", "b", "c"),
                branch,
            ],
            &["y"],
        );
        let error = prepare(&mut proto, Some(&runtime_ops))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "the ONNX model uses operators this Kiln build cannot run: SVMClassifier (ai.onnx.ml), \
             If (ai.onnx), Gelu (com.microsoft)."
        );
    }

    #[test]
    fn scaler_becomes_cast_sub_mul_and_output_zipmap_is_stripped() {
        let mut scaler = node("Scaler", "ai.onnx.ml", "x", "scaled");
        for (name, floats) in [("offset", vec![1.0, 2.0]), ("scale", vec![0.5, 0.25])] {
            scaler.attribute.push(AttributeProto {
                name: name.into(),
                floats,
                ..AttributeProto::default()
            });
        }
        let mut zipmap = node(
            "ZipMap",
            "ai.onnx.ml",
            "probabilities",
            "output_probability",
        );
        zipmap.attribute.push(AttributeProto {
            name: "classlabels_int64s".into(),
            ints: vec![0, 1],
            ..AttributeProto::default()
        });
        let mut proto = model(
            vec![
                scaler,
                node("LinearClassifier", "ai.onnx.ml", "scaled", "probabilities"),
                zipmap,
            ],
            &["output_probability"],
        );
        let prepared = prepare(&mut proto, Some(&runtime_ops)).unwrap();
        assert!(prepared.rewritten);
        assert_eq!(
            prepared.outputs,
            vec![Output {
                name: "output_probability".into(),
                class_labels: Some(vec!["0".into(), "1".into()]),
                dtype: Some("float32"),
                dims: vec![None, Some(2)],
            }]
        );
        let graph = proto.graph.unwrap();
        let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Cast", "Sub", "Mul", "LinearClassifier"]);
        assert_eq!(graph.node[2].output, ["scaled"]);
        assert_eq!(graph.output[0].name, "probabilities");
        let offset = &graph.initializer[0];
        assert_eq!(
            (offset.dims.as_slice(), offset.float_data.as_slice()),
            (&[2][..], &[1.0, 2.0][..])
        );
    }

    #[test]
    fn a_binary_tree_ensemble_labels_by_its_probabilities() {
        let mut trees = node("TreeEnsembleClassifier", "ai.onnx.ml", "x", "label");
        trees.output.push("probabilities".into());
        trees.attribute.push(AttributeProto {
            name: "classlabels_strings".into(),
            strings: vec![b"no".to_vec(), b"yes".to_vec()],
            ..AttributeProto::default()
        });
        trees.attribute.push(AttributeProto {
            name: "base_values".into(),
            floats: vec![0.5],
            ..AttributeProto::default()
        });
        let mut proto = model(vec![trees], &["label", "probabilities"]);
        let supported = |op: &str| ["TreeEnsembleClassifier", "ArgMax", "Gather"].contains(&op);
        prepare(&mut proto, Some(&supported)).unwrap();
        let graph = proto.graph.unwrap();
        let wiring: Vec<(&str, &[String], &[String])> = graph
            .node
            .iter()
            .map(|n| (n.op_type.as_str(), &n.input[..], &n.output[..]))
            .collect();
        assert_eq!(
            wiring,
            [
                (
                    "TreeEnsembleClassifier",
                    &["x".to_string()][..],
                    &["label.kiln_unused".to_string(), "probabilities".to_string()][..]
                ),
                (
                    "ArgMax",
                    &["probabilities".to_string()][..],
                    &["label.kiln_winner".to_string()][..]
                ),
                (
                    "Gather",
                    &[
                        "label.kiln_classes".to_string(),
                        "label.kiln_winner".to_string()
                    ][..],
                    &["label".to_string()][..]
                ),
            ]
        );
        assert_eq!(
            graph.initializer[0].string_data,
            [b"no".to_vec(), b"yes".to_vec()]
        );
        let base = graph.node[0]
            .attribute
            .iter()
            .find(|a| a.name == "base_values");
        assert_eq!(base.map(|a| a.floats.as_slice()), Some(&[0.5, 0.0][..]));
    }

    #[test]
    fn a_zipmap_inside_the_graph_is_refused_with_a_hint() {
        let mut proto = model(
            vec![
                node("ZipMap", "ai.onnx.ml", "p", "map"),
                node("Relu", "", "map", "y"),
            ],
            &["y"],
        );
        let error = prepare(&mut proto, Some(&runtime_ops))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("ZipMap (ai.onnx.ml)") && error.contains("zipmap"),
            "{error}"
        );
    }
}

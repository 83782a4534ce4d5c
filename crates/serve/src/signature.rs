//! What a model takes and returns as named tensors: the metadata that inference protocols (the
//! Open Inference Protocol's model metadata) describe a model by.

/// A model's named inputs and outputs, each with the batch as its first dimension.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signature {
    /// What each instance gives the model.
    pub inputs: Vec<TensorSpec>,
    /// What the model answers per instance (empty where the runtime cannot tell before it runs).
    pub outputs: Vec<TensorSpec>,
}

/// One named tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// Its name: the instance key that feeds it, or the prediction key it fills.
    pub name: String,
    /// Its element type, in NumPy's words: `float32`, `float64`, `int32`, `int64`, `uint8`,
    /// `bool`, `string` (text or bytes).
    pub dtype: &'static str,
    /// Its dimensions, `-1` where any size goes (the batch first).
    pub shape: Vec<i64>,
}

/// The element type of a NumPy or TensorFlow dtype name (`float32`, `string`, `int64`, ...).
pub fn dtype(name: &str) -> Option<&'static str> {
    Some(match name {
        "float32" | "float" => "float32",
        "float64" | "double" => "float64",
        "int32" => "int32",
        "int64" => "int64",
        "uint8" => "uint8",
        "bool" => "bool",
        "string" | "object" | "bytes" => "string",
        _ => return None,
    })
}

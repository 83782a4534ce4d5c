//! The Open Inference Protocol's tensors, JSON and binary, to and from Kiln's instances.
//!
//! An inference request's input tensors are batch-major: row `i` of every input is instance `i`.
//! A request with one input makes bare instances (its rows); several make an object per instance
//! keyed by input name, as `:predict` takes them. Predictions go back the other way: objects give
//! one output tensor per key, bare values one tensor. With the binary tensor data extension, the
//! body is `Inference-Header-Content-Length` bytes of JSON followed by the raw data of the inputs
//! that declare `binary_data_size`, in order; outputs asked for as `binary_data` are sent the same
//! way. `BYTES` elements are 4-byte little-endian lengths followed by the bytes; they become JSON
//! strings, or `{"b64": ...}` when they are not UTF-8 (as `:predict` takes bytes).

use base64::Engine as _;
use kiln_serve::tensor::{Array, Data, Tensor};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An inference request's JSON part.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    /// Echoed in the response.
    #[serde(default)]
    pub id: Option<String>,
    /// `binary_data_output`: every output as binary data.
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// The input tensors.
    pub inputs: Vec<InputTensor>,
    /// Which outputs to return (all when absent), and how.
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutput>>,
}

/// One input tensor.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputTensor {
    /// The model input it feeds.
    pub name: String,
    /// Its dimensions, the batch first.
    pub shape: Vec<i64>,
    /// `FP32`, `INT64`, `BYTES`, ...
    pub datatype: String,
    /// `binary_data_size` when its data follows the JSON.
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// Its elements in row-major order (flat or nested), when not binary.
    #[serde(default)]
    pub data: Option<Value>,
}

/// An output the request asks for.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestedOutput {
    /// The output's name.
    pub name: String,
    /// `binary_data`: send its data after the JSON.
    #[serde(default)]
    pub parameters: Map<String, Value>,
}

/// One output tensor of a response.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OutputTensor {
    /// The prediction key it holds (or the model's one output).
    pub name: String,
    /// Its dimensions, the batch first.
    pub shape: Vec<usize>,
    /// Its element type.
    pub datatype: &'static str,
    /// `binary_data_size` when its data follows the JSON.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub parameters: Map<String, Value>,
    /// Its elements in row-major order, when not binary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<Value>>,
}

/// One input tensor as the request gives it, its shape checked.
struct Given<'a> {
    /// `inputs[i] (name)`, for errors.
    field: String,
    /// Its first dimension.
    batch: usize,
    /// Its other dimensions.
    row_shape: Vec<usize>,
    /// Its elements: the binary data that is its own, or its JSON `data`.
    elements: Elements<'a>,
}

enum Elements<'a> {
    Binary(&'a [u8]),
    Json(&'a Value),
}

/// Reads the inputs' shapes and finds their elements (with `binary`, the bytes after the
/// JSON); every input must have the same batch.
fn given<'a>(inputs: &'a [InputTensor], mut binary: &'a [u8]) -> Result<Vec<Given<'a>>, String> {
    if inputs.is_empty() {
        return Err("inputs: at least one input tensor is required".into());
    }
    let mut all: Vec<Given> = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        let field = format!("inputs[{index}] ({})", input.name);
        let Some((&batch, row_shape)) = input.shape.split_first() else {
            return Err(format!(
                "{field}: shape must have the batch as its first dimension"
            ));
        };
        if input.shape.iter().any(|dim| *dim < 0) {
            return Err(format!(
                "{field}: shape {:?} has a negative dimension",
                input.shape
            ));
        }
        input
            .shape
            .iter()
            .try_fold(1usize, |count, dim| count.checked_mul(*dim as usize))
            .ok_or_else(|| format!("{field}: shape {:?} is too large", input.shape))?;
        let elements = match input.parameters.get("binary_data_size") {
            Some(size) => {
                let size = size
                    .as_u64()
                    .ok_or_else(|| format!("{field}: binary_data_size must be a number"))?
                    as usize;
                if size > binary.len() {
                    return Err(format!(
                        "{field}: binary_data_size {size} is more than the {} bytes left in the body",
                        binary.len()
                    ));
                }
                let (data, rest) = binary.split_at(size);
                binary = rest;
                Elements::Binary(data)
            }
            None => Elements::Json(
                input
                    .data
                    .as_ref()
                    .ok_or_else(|| format!("{field}: data is required"))?,
            ),
        };
        if let Some(first) = all.first()
            && first.batch != batch as usize
        {
            return Err(format!(
                "{field}: {batch} rows, where inputs[0] has {}; every input has one row per instance",
                first.batch
            ));
        }
        all.push(Given {
            field,
            batch: batch as usize,
            row_shape: row_shape.iter().map(|dim| *dim as usize).collect(),
            elements,
        });
    }
    Ok(all)
}

impl Given<'_> {
    /// How many elements its shape holds.
    fn count(&self) -> usize {
        self.batch * self.row_shape.iter().product::<usize>()
    }

    /// Checks that `found` elements fill its shape.
    fn filled(&self, found: usize) -> Result<(), String> {
        let count = self.count();
        match found == count {
            true => Ok(()),
            false => Err(format!(
                "{}: shape {:?} holds {count} elements, the data {found}",
                self.field,
                std::iter::once(self.batch)
                    .chain(self.row_shape.iter().copied())
                    .collect::<Vec<_>>()
            )),
        }
    }
}

/// Turns the inputs (with `binary`, the bytes after the JSON) into one JSON instance per row.
pub fn instances(inputs: &[InputTensor], binary: &[u8]) -> Result<Vec<Value>, String> {
    let given = given(inputs, binary)?;
    let mut columns = Vec::with_capacity(given.len());
    for (input, given) in inputs.iter().zip(&given) {
        let field = &given.field;
        let elements = match given.elements {
            Elements::Binary(data) => {
                decode(&input.datatype, data).map_err(|error| format!("{field}: {error}"))?
            }
            Elements::Json(data) => {
                let mut flat = Vec::with_capacity(given.count());
                flatten(data, &mut flat);
                flat.into_iter()
                    .map(|value| check(&input.datatype, value))
                    .collect::<Result<_, _>>()
                    .map_err(|error| format!("{field}: {error}"))?
            }
        };
        given.filled(elements.len())?;
        columns.push(split_rows(elements, given.batch, &given.row_shape));
    }
    let rows = given.first().map_or(0, |given| given.batch);
    Ok((0..rows)
        .map(|row| match columns.as_mut_slice() {
            [only] => std::mem::take(&mut only[row]),
            all => Value::Object(
                inputs
                    .iter()
                    .zip(all.iter_mut())
                    .map(|(input, column)| (input.name.clone(), std::mem::take(&mut column[row])))
                    .collect(),
            ),
        })
        .collect())
}

/// Whether every input holds numbers or booleans, which a model that reads tensors takes as
/// they are; `BYTES` inputs are made into instances, whose strings and `{"b64": ...}` bytes
/// follow `:predict`'s rules.
pub fn plain(inputs: &[InputTensor]) -> bool {
    inputs.iter().all(|input| input.datatype != "BYTES")
}

/// Turns the [plain](plain) inputs (with `binary`, the bytes after the JSON) into named tensors.
pub fn tensors(inputs: &[InputTensor], binary: &[u8]) -> Result<Vec<Tensor>, String> {
    let given = given(inputs, binary)?;
    inputs
        .iter()
        .zip(given)
        .map(|(input, given)| {
            let field = &given.field;
            let data = match given.elements {
                Elements::Binary(data) => raw(&input.datatype, data),
                Elements::Json(data) => {
                    let mut flat = Vec::with_capacity(given.count());
                    flatten(data, &mut flat);
                    typed(&input.datatype, flat)
                }
            }
            .map_err(|error| format!("{field}: {error}"))?;
            given.filled(data.len())?;
            Ok(Tensor {
                name: input.name.clone(),
                array: Array {
                    shape: std::iter::once(given.batch)
                        .chain(given.row_shape.iter().copied())
                        .collect(),
                    data,
                },
            })
        })
        .collect()
}

/// Binary elements of a `datatype` other than `BYTES` (little-endian) as the array type that
/// holds them.
fn raw(datatype: &str, data: &[u8]) -> Result<Data, String> {
    fn fixed<const N: usize, T>(
        data: &[u8],
        datatype: &str,
        convert: impl Fn([u8; N]) -> Option<T>,
    ) -> Result<Vec<T>, String> {
        if !data.len().is_multiple_of(N) {
            return Err(format!(
                "{} bytes of {datatype} data is not a whole number of {N}-byte elements",
                data.len()
            ));
        }
        data.chunks_exact(N)
            .map(|chunk| {
                let mut bytes = [0; N];
                bytes.copy_from_slice(chunk);
                convert(bytes)
            })
            .collect::<Option<_>>()
            .ok_or_else(|| format!("a {datatype} element is beyond int64's range"))
    }
    Ok(match datatype {
        "BOOL" => Data::Bool(fixed::<1, _>(data, datatype, |[byte]| Some(byte != 0))?),
        "UINT8" => Data::U8(data.to_vec()),
        "INT8" => Data::I32(fixed::<1, _>(data, datatype, |bytes| {
            Some(i8::from_le_bytes(bytes).into())
        })?),
        "UINT16" => Data::I32(fixed::<2, _>(data, datatype, |bytes| {
            Some(u16::from_le_bytes(bytes).into())
        })?),
        "INT16" => Data::I32(fixed::<2, _>(data, datatype, |bytes| {
            Some(i16::from_le_bytes(bytes).into())
        })?),
        "UINT32" => Data::I64(fixed::<4, _>(data, datatype, |bytes| {
            Some(u32::from_le_bytes(bytes).into())
        })?),
        "INT32" => Data::I32(fixed::<4, _>(data, datatype, |bytes| {
            Some(i32::from_le_bytes(bytes))
        })?),
        "UINT64" => Data::I64(fixed::<8, _>(data, datatype, |bytes| {
            i64::try_from(u64::from_le_bytes(bytes)).ok()
        })?),
        "INT64" => Data::I64(fixed::<8, _>(data, datatype, |bytes| {
            Some(i64::from_le_bytes(bytes))
        })?),
        "FP32" => Data::F32(fixed::<4, _>(data, datatype, |bytes| {
            Some(f32::from_le_bytes(bytes))
        })?),
        "FP64" => Data::F64(fixed::<8, _>(data, datatype, |bytes| {
            Some(f64::from_le_bytes(bytes))
        })?),
        other => return Err(format!("datatype {other:?} is not one this server reads")),
    })
}

/// JSON elements of a plain `datatype` as the array type that holds them.
fn typed(datatype: &str, values: Vec<Value>) -> Result<Data, String> {
    fn each<T>(
        values: &[Value],
        datatype: &str,
        convert: impl Fn(&Value) -> Option<T>,
    ) -> Result<Vec<T>, String> {
        values
            .iter()
            .map(|value| {
                convert(value).ok_or_else(|| format!("{value} is not a {datatype} element"))
            })
            .collect()
    }
    let values = values.as_slice();
    Ok(match datatype {
        "BOOL" => Data::Bool(each(values, datatype, Value::as_bool)?),
        "UINT8" => Data::U8(each(values, datatype, |value| {
            value.as_u64().and_then(|value| u8::try_from(value).ok())
        })?),
        "INT8" | "INT16" | "UINT16" | "INT32" => Data::I32(each(values, datatype, |value| {
            value.as_i64().and_then(|value| i32::try_from(value).ok())
        })?),
        "UINT32" | "UINT64" => Data::I64(each(values, datatype, |value| {
            value.as_u64().and_then(|value| i64::try_from(value).ok())
        })?),
        "INT64" => Data::I64(each(values, datatype, Value::as_i64)?),
        "FP16" | "FP32" => Data::F32(each(values, datatype, |value| {
            value.as_f64().map(|value| value as f32)
        })?),
        "FP64" => Data::F64(each(values, datatype, Value::as_f64)?),
        other => return Err(format!("datatype {other:?} is not one this server reads")),
    })
}

/// Makes the response's outputs from the predictions: one per key of keyed predictions, else one
/// named `single_name`. `dtype_of` gives the element type of an output the model declares;
/// `requested` chooses outputs and which are binary, `all_binary` makes every one binary.
/// Returns the outputs and the binary data to send after the JSON.
pub fn outputs(
    predictions: Vec<Value>,
    single_name: &str,
    dtype_of: &dyn Fn(&str) -> Option<&'static str>,
    requested: Option<&[RequestedOutput]>,
    all_binary: bool,
) -> Result<(Vec<OutputTensor>, Vec<u8>), String> {
    let keyed = !predictions.is_empty() && predictions.iter().all(Value::is_object);
    let mut columns: Vec<(String, Vec<Value>)> = Vec::new();
    if keyed {
        for prediction in predictions {
            let Value::Object(prediction) = prediction else {
                continue;
            };
            for (key, value) in prediction {
                match columns.iter_mut().find(|(name, _)| *name == key) {
                    Some((_, column)) => column.push(value),
                    None => columns.push((key, vec![value])),
                }
            }
        }
    } else {
        columns.push((single_name.to_string(), predictions));
    }
    let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
    let wanted = selection(requested, &names, all_binary)?;
    let mut tensors = Vec::new();
    let mut binary = Vec::new();
    for (name, as_binary) in wanted {
        let Some((_, column)) = columns.iter().find(|(column, _)| column == name) else {
            continue;
        };
        let mut shape = vec![column.len()];
        if let Some(first) = column.first() {
            let mut value = first;
            while let Value::Array(items) = value {
                shape.push(items.len());
                match items.first() {
                    Some(item) => value = item,
                    None => break,
                }
            }
        }
        let mut flat = Vec::new();
        for value in column {
            flatten(value, &mut flat);
        }
        let expected: usize = shape.iter().product();
        if flat.len() != expected {
            return Err(format!(
                "output {name:?} is ragged: its rows do not share one shape"
            ));
        }
        let datatype = datatype_of(&flat, dtype_of(name));
        let mut parameters = Map::new();
        let data = match as_binary {
            true => {
                let start = binary.len();
                encode(datatype, &flat, &mut binary)?;
                parameters.insert("binary_data_size".into(), (binary.len() - start).into());
                None
            }
            false => Some(flat),
        };
        tensors.push(OutputTensor {
            name: name.to_string(),
            shape,
            datatype,
            parameters,
            data,
        });
    }
    Ok((tensors, binary))
}

/// Makes the response's outputs from a model's output tensors; `requested` and `all_binary` as
/// for [`outputs`].
pub fn tensor_outputs(
    outputs: Vec<Tensor>,
    requested: Option<&[RequestedOutput]>,
    all_binary: bool,
) -> Result<(Vec<OutputTensor>, Vec<u8>), String> {
    let names: Vec<&str> = outputs.iter().map(|output| output.name.as_str()).collect();
    let wanted = selection(requested, &names, all_binary)?;
    let mut tensors = Vec::with_capacity(wanted.len());
    let mut binary = Vec::new();
    for (name, as_binary) in wanted {
        let Some(output) = outputs.iter().find(|output| output.name == name) else {
            continue;
        };
        let datatype = protocol_datatype(output.array.data.dtype());
        let mut parameters = Map::new();
        let data = match as_binary {
            true => {
                let start = binary.len();
                raw_bytes(&output.array.data, &mut binary);
                parameters.insert("binary_data_size".into(), (binary.len() - start).into());
                None
            }
            false => Some(output.array.data.to_json()),
        };
        tensors.push(OutputTensor {
            name: name.to_string(),
            shape: output.array.shape.clone(),
            datatype,
            parameters,
            data,
        });
    }
    Ok((tensors, binary))
}

/// The outputs to send, in order, and whether each goes as binary data: those `requested`
/// (each must be one of `names`), else all.
fn selection<'a>(
    requested: Option<&'a [RequestedOutput]>,
    names: &[&'a str],
    all_binary: bool,
) -> Result<Vec<(&'a str, bool)>, String> {
    let Some(requested) = requested else {
        return Ok(names.iter().map(|name| (*name, all_binary)).collect());
    };
    requested
        .iter()
        .map(|output| {
            if !names.contains(&output.name.as_str()) {
                return Err(format!(
                    "outputs: the model has no output {:?}; it has {}",
                    output.name,
                    names.join(", ")
                ));
            }
            let binary = output.parameters.get("binary_data") == Some(&Value::Bool(true));
            Ok((output.name.as_str(), binary || all_binary))
        })
        .collect()
}

/// Writes an array's elements as the protocol's binary data (little-endian; `BYTES` as 4-byte
/// lengths and bytes).
fn raw_bytes(data: &Data, out: &mut Vec<u8>) {
    match data {
        Data::F32(values) => values
            .iter()
            .for_each(|value| out.extend(value.to_le_bytes())),
        Data::F64(values) => values
            .iter()
            .for_each(|value| out.extend(value.to_le_bytes())),
        Data::I32(values) => values
            .iter()
            .for_each(|value| out.extend(value.to_le_bytes())),
        Data::I64(values) => values
            .iter()
            .for_each(|value| out.extend(value.to_le_bytes())),
        Data::Bool(values) => out.extend(values.iter().map(|value| u8::from(*value))),
        Data::U8(values) => out.extend_from_slice(values),
        Data::String(values) => values.iter().for_each(|value| {
            out.extend((value.len() as u32).to_le_bytes());
            out.extend(value.as_bytes());
        }),
    }
}

/// The protocol's name of a NumPy element type.
pub fn protocol_datatype(dtype: &str) -> &'static str {
    match dtype {
        "float32" => "FP32",
        "float64" => "FP64",
        "int32" => "INT32",
        "int64" => "INT64",
        "uint8" => "UINT8",
        "bool" => "BOOL",
        _ => "BYTES",
    }
}

/// The element type of an output: the declared one, else what its values are.
fn datatype_of(values: &[Value], declared: Option<&'static str>) -> &'static str {
    if let Some(declared) = declared {
        return protocol_datatype(declared);
    }
    if values.iter().all(Value::is_boolean) && !values.is_empty() {
        "BOOL"
    } else if values.iter().all(|value| value.is_i64() || value.is_u64()) && !values.is_empty() {
        "INT64"
    } else if values
        .iter()
        .all(|value| value.is_number() || value.is_null())
    {
        "FP64"
    } else {
        "BYTES"
    }
}

fn flatten(value: &Value, out: &mut Vec<Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| flatten(item, out)),
        other => out.push(other.clone()),
    }
}

/// Splits `elements` into `rows` rows of `dims` each (a scalar per row when `dims` is empty).
fn split_rows(elements: Vec<Value>, rows: usize, dims: &[usize]) -> Vec<Value> {
    fn nest(elements: &mut std::vec::IntoIter<Value>, dims: &[usize]) -> Value {
        match dims.split_first() {
            None => elements.next().unwrap_or(Value::Null),
            Some((&size, rest)) => Value::Array((0..size).map(|_| nest(elements, rest)).collect()),
        }
    }
    let mut elements = elements.into_iter();
    (0..rows).map(|_| nest(&mut elements, dims)).collect()
}

/// Checks a JSON element against the declared type.
fn check(datatype: &str, value: Value) -> Result<Value, String> {
    let fits = match datatype {
        "BOOL" => value.is_boolean(),
        "BYTES" => value.is_string(),
        "FP16" | "FP32" | "FP64" => value.is_number(),
        "INT8" | "INT16" | "INT32" | "INT64" => value.is_i64(),
        "UINT8" | "UINT16" | "UINT32" | "UINT64" => value.is_u64(),
        other => return Err(format!("datatype {other:?} is not one this server reads")),
    };
    match fits {
        true => Ok(value),
        false => Err(format!("{value} is not a {datatype} element")),
    }
}

/// Reads binary elements of `datatype` (little-endian) as JSON values.
fn decode(datatype: &str, data: &[u8]) -> Result<Vec<Value>, String> {
    if datatype != "BYTES" {
        return Ok(raw(datatype, data)?.to_json());
    }
    let mut elements = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (length, tail) = rest
            .split_first_chunk::<4>()
            .ok_or("BYTES data ends inside an element's length")?;
        let length = u32::from_le_bytes(*length) as usize;
        if length > tail.len() {
            return Err("BYTES data ends inside an element".into());
        }
        let (element, tail) = tail.split_at(length);
        elements.push(match std::str::from_utf8(element) {
            Ok(text) => Value::String(text.to_string()),
            Err(_) => serde_json::json!({
                "b64": base64::engine::general_purpose::STANDARD.encode(element)
            }),
        });
        rest = tail;
    }
    Ok(elements)
}

/// Writes elements as binary data of `datatype`.
fn encode(datatype: &str, values: &[Value], out: &mut Vec<u8>) -> Result<(), String> {
    for value in values {
        let number = || value.as_f64().unwrap_or(f64::NAN);
        match datatype {
            "BOOL" => out.push(u8::from(value.as_bool().unwrap_or(false))),
            "UINT8" => out.push(value.as_u64().unwrap_or(0) as u8),
            "INT32" => out.extend((value.as_i64().unwrap_or(0) as i32).to_le_bytes()),
            "INT64" => out.extend(value.as_i64().unwrap_or(0).to_le_bytes()),
            "FP32" => out.extend((number() as f32).to_le_bytes()),
            "FP64" => out.extend(number().to_le_bytes()),
            "BYTES" => {
                let text = match value {
                    Value::String(text) => text.clone().into_bytes(),
                    Value::Object(object) if object.len() == 1 => object
                        .get("b64")
                        .and_then(Value::as_str)
                        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
                        .unwrap_or_else(|| value.to_string().into_bytes()),
                    other => other.to_string().into_bytes(),
                };
                out.extend((text.len() as u32).to_le_bytes());
                out.extend(text);
            }
            other => return Err(format!("output datatype {other} cannot be sent as binary")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(name: &str, shape: &[i64], datatype: &str, data: Value) -> InputTensor {
        InputTensor {
            name: name.into(),
            shape: shape.to_vec(),
            datatype: datatype.into(),
            parameters: Map::new(),
            data: Some(data),
        }
    }

    #[test]
    fn rows_of_one_input_are_bare_instances_and_of_several_objects() {
        let one = instances(
            &[input("x", &[2, 2], "FP32", json!([1.0, 2.0, 3.0, 4.0]))],
            &[],
        );
        assert_eq!(one.unwrap(), [json!([1.0, 2.0]), json!([3.0, 4.0])]);
        let two = instances(
            &[
                input("x", &[2, 1], "FP32", json!([[1.5], [2.5]])),
                input("s", &[2], "BYTES", json!(["a", "b"])),
            ],
            &[],
        );
        assert_eq!(
            two.unwrap(),
            [json!({"x": [1.5], "s": "a"}), json!({"x": [2.5], "s": "b"})]
        );
        let error =
            instances(&[input("x", &[2, 2], "FP32", json!([1.0, 2.0, 3.0]))], &[]).unwrap_err();
        assert!(
            error.contains("inputs[0] (x)") && error.contains("4 elements"),
            "{error}"
        );
        let error = instances(&[input("x", &[1], "INT64", json!(["a"]))], &[]).unwrap_err();
        assert!(error.contains("not a INT64"), "{error}");
    }

    #[test]
    fn binary_data_round_trips() {
        let mut body = Vec::new();
        encode("FP32", &[json!(1.5), json!(-2.0)], &mut body).unwrap();
        encode("BYTES", &[json!("hé"), json!({"b64": "/wA="})], &mut body).unwrap();
        let mut x = input("x", &[2], "FP32", Value::Null);
        x.data = None;
        x.parameters.insert("binary_data_size".into(), 8.into());
        let mut s = input("s", &[2], "BYTES", Value::Null);
        s.data = None;
        s.parameters
            .insert("binary_data_size".into(), (body.len() - 8).into());
        let rows = instances(&[x, s], &body).unwrap();
        assert_eq!(rows[0], json!({"x": 1.5, "s": "hé"}));
        assert_eq!(rows[1], json!({"x": -2.0, "s": {"b64": "/wA="}}));
    }

    #[test]
    fn keyed_predictions_make_one_output_per_key() {
        let predictions = vec![
            json!({"y": [1.0, 2.0], "label": 3}),
            json!({"y": [3.0, 4.0], "label": 4}),
        ];
        let (tensors, binary) =
            outputs(predictions, "predictions", &|_| None, None, false).unwrap();
        assert!(binary.is_empty());
        let named = |name: &str| tensors.iter().find(|tensor| tensor.name == name).unwrap();
        assert_eq!(named("y").shape, [2, 2]);
        assert_eq!(named("y").datatype, "FP64");
        assert_eq!(
            named("y").data,
            Some(vec![json!(1.0), json!(2.0), json!(3.0), json!(4.0)])
        );
        assert_eq!(named("label").datatype, "INT64");
        let (tensors, binary) = outputs(
            vec![json!(0.25), json!(0.5)],
            "probability",
            &|_| Some("float32"),
            None,
            true,
        )
        .unwrap();
        assert_eq!(tensors[0].datatype, "FP32");
        assert_eq!(binary.len(), 8);
        assert_eq!(tensors[0].parameters["binary_data_size"], 8);
    }

    #[test]
    fn plain_inputs_become_typed_tensors_and_outputs_go_back_as_asked() {
        let mut x = input("x", &[2, 2], "FP32", Value::Null);
        x.data = None;
        x.parameters.insert("binary_data_size".into(), 16.into());
        let ids = input("ids", &[2], "UINT16", json!([1, 65535]));
        let body: Vec<u8> = [1.5f32, -2.0, 0.25, 4.0]
            .iter()
            .flat_map(|value| value.to_le_bytes())
            .collect();
        let inputs = [x, ids];
        assert!(plain(&inputs));
        let given = tensors(&inputs, &body).unwrap();
        assert_eq!(given[0].array.shape, [2, 2]);
        assert_eq!(given[0].array.data, Data::F32(vec![1.5, -2.0, 0.25, 4.0]));
        assert_eq!(given[1].array.data, Data::I32(vec![1, 65535]));
        let words = input("s", &[1], "BYTES", json!(["a"]));
        assert!(!plain(&[words]));
        let error = tensors(&[input("x", &[1], "INT64", json!([0.5]))], &[]).unwrap_err();
        assert!(
            error.contains("inputs[0] (x): 0.5 is not a INT64"),
            "{error}"
        );

        let outputs = vec![
            Tensor {
                name: "label".into(),
                array: Array {
                    shape: vec![2],
                    data: Data::I64(vec![3, 4]),
                },
            },
            Tensor {
                name: "score".into(),
                array: Array {
                    shape: vec![2, 1],
                    data: Data::F32(vec![0.1, 0.5]),
                },
            },
        ];
        let requested = [RequestedOutput {
            name: "score".into(),
            parameters: Map::from_iter([("binary_data".to_string(), json!(true))]),
        }];
        let (sent, binary) = tensor_outputs(outputs.clone(), Some(&requested), false).unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].datatype, &sent[0].shape), ("FP32", &vec![2, 1]));
        assert_eq!(
            binary,
            [0.1f32.to_le_bytes(), 0.5f32.to_le_bytes()].concat()
        );
        let (sent, binary) = tensor_outputs(outputs.clone(), None, false).unwrap();
        assert!(binary.is_empty());
        assert_eq!(sent[0].data, Some(vec![json!(3), json!(4)]));
        assert_eq!(sent[1].data, Some(vec![json!(0.1), json!(0.5)]));
        let missing = [RequestedOutput {
            name: "y".into(),
            parameters: Map::new(),
        }];
        let error = tensor_outputs(outputs, Some(&missing), false).unwrap_err();
        assert!(
            error.contains("no output \"y\"; it has label, score"),
            "{error}"
        );
    }
}

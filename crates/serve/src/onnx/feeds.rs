//! Named tensors, as an inference protocol carries them, straight to the graph's inputs: no
//! instance is built. Each tensor must hold the batch along its first dimension and an
//! instance's shape after it; numbers are cast to the input's element type where no value
//! changes (a float given to an integer input must be whole, an integer must fit).
//!
//! A model with one input takes one tensor whatever its name, as it takes bare instances.

use crate::ServeError;
use crate::tensor::{Array, Data, Tensor};

use super::graph::Element;
use super::tensors::Input;

/// The arrays to run the graph on, in the order of `inputs`, and the batch they hold.
pub fn arrange(inputs: &[Input], tensors: Vec<Tensor>) -> Result<(Vec<Array>, usize), ServeError> {
    let names = || {
        inputs
            .iter()
            .map(|input| input.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if tensors.len() != inputs.len() && !(inputs.len() == 1 && tensors.len() == 1) {
        return Err(ServeError::Request(format!(
            "inputs: the model takes {} input tensors ({}); the request has {}",
            inputs.len(),
            names(),
            tensors.len()
        )));
    }
    let mut given: Vec<Option<Tensor>> = tensors.into_iter().map(Some).collect();
    let mut arrays = Vec::with_capacity(inputs.len());
    let mut batch = None;
    for input in inputs {
        let tensor = match given.as_mut_slice() {
            [only] if inputs.len() == 1 => only.take(),
            all => all
                .iter_mut()
                .find(|tensor| tensor.as_ref().is_some_and(|t| t.name == input.name))
                .and_then(Option::take),
        }
        .ok_or_else(|| {
            ServeError::Request(format!(
                "inputs: no tensor for input '{}'; the model takes {}",
                input.name,
                names()
            ))
        })?;
        let rows = fit(input, &tensor.array)
            .map_err(|error| ServeError::Request(format!("input '{}': {error}", input.name)))?;
        match batch {
            None => batch = Some(rows),
            Some(batch) if batch != rows => {
                return Err(ServeError::Request(format!(
                    "input '{}': {rows} rows, where the other inputs have {batch}; every input \
                     has one row per instance",
                    input.name
                )));
            }
            Some(_) => {}
        }
        let Array { shape, data } = tensor.array;
        let data = cast(data, input.element)
            .map_err(|error| ServeError::Request(format!("input '{}': {error}", input.name)))?;
        arrays.push(Array { shape, data });
    }
    let batch = batch.unwrap_or_default();
    if batch == 0 {
        return Err(ServeError::Request(
            "inputs: the batch is empty; at least one instance is required".into(),
        ));
    }
    Ok((arrays, batch))
}

/// The rows `array` holds for `input`, when its shape is a batch of the input's instances.
fn fit(input: &Input, array: &Array) -> Result<usize, String> {
    let fits = array.shape.len() == input.row_shape.len() + 1
        && array.shape[1..]
            .iter()
            .zip(&input.row_shape)
            .all(|(given, want)| want.is_none_or(|want| want == *given));
    if !fits {
        let want: Vec<String> = std::iter::once("batch".to_string())
            .chain(input.row_shape.iter().map(|dim| match dim {
                Some(dim) => dim.to_string(),
                None => "?".into(),
            }))
            .collect();
        return Err(format!(
            "takes shape [{}]; got {:?}",
            want.join(", "),
            array.shape
        ));
    }
    let count = array.shape.iter().product::<usize>();
    if count != array.data.len() {
        return Err(format!(
            "shape {:?} holds {count} elements, the data {}",
            array.shape,
            array.data.len()
        ));
    }
    Ok(array.shape[0])
}

/// `data` as `element`s, when every value survives the cast.
fn cast(data: Data, element: Element) -> Result<Data, String> {
    if data.dtype() == element.dtype() {
        return Ok(data);
    }
    let refuse = || format!("takes {} elements; got {}", element.dtype(), data.dtype());
    /// The integers of `data` as `T`s; `what` names `T` in the refusal of one that does not fit.
    fn whole<T: TryFrom<i64>>(data: &Data, what: &str) -> Option<Result<Vec<T>, String>> {
        let values = integers(data)?
            .map(|value| value.and_then(|value| T::try_from(value).ok()))
            .collect::<Option<_>>();
        Some(values.ok_or_else(|| format!("takes {what}; a value given does not fit")))
    }
    Ok(match element {
        Element::F32 => Data::F32(
            floats(&data)
                .ok_or_else(refuse)?
                .map(|value| value as f32)
                .collect(),
        ),
        Element::F64 => Data::F64(floats(&data).ok_or_else(refuse)?.collect()),
        Element::I32 => Data::I32(whole(&data, "int32 elements").ok_or_else(refuse)??),
        Element::I64 => {
            Data::I64(whole(&data, "int64 elements (whole numbers)").ok_or_else(refuse)??)
        }
        Element::U8 => Data::U8(whole(&data, "uint8 elements (0 to 255)").ok_or_else(refuse)??),
        Element::Bool | Element::String => return Err(refuse()),
    })
}

/// The numbers of numeric data, as floats.
fn floats(data: &Data) -> Option<Box<dyn Iterator<Item = f64> + '_>> {
    Some(match data {
        Data::F32(values) => Box::new(values.iter().map(|&value| f64::from(value))),
        Data::F64(values) => Box::new(values.iter().copied()),
        Data::I32(values) => Box::new(values.iter().map(|&value| f64::from(value))),
        Data::I64(values) => Box::new(values.iter().map(|&value| value as f64)),
        Data::U8(values) => Box::new(values.iter().map(|&value| f64::from(value))),
        Data::Bool(_) | Data::String(_) => return None,
    })
}

/// The numbers of numeric data as integers; `None` for a float that is not whole.
fn integers(data: &Data) -> Option<Box<dyn Iterator<Item = Option<i64>> + '_>> {
    let whole = |value: f64| (value.fract() == 0.0 && value.abs() < 9.2e18).then_some(value as i64);
    Some(match data {
        Data::F32(values) => Box::new(values.iter().map(move |&value| whole(f64::from(value)))),
        Data::F64(values) => Box::new(values.iter().map(move |&value| whole(value))),
        Data::I32(values) => Box::new(values.iter().map(|&value| Some(i64::from(value)))),
        Data::I64(values) => Box::new(values.iter().map(|&value| Some(value))),
        Data::U8(values) => Box::new(values.iter().map(|&value| Some(i64::from(value)))),
        Data::Bool(_) | Data::String(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, shape: &[usize], data: Data) -> Tensor {
        Tensor {
            name: name.into(),
            array: Array {
                shape: shape.to_vec(),
                data,
            },
        }
    }

    #[test]
    fn tensors_go_to_their_inputs_in_graph_order_cast_where_nothing_changes() {
        let inputs = [
            Input::batched("ids", Element::I64, &[Some(2)]),
            Input::batched("x", Element::F32, &[None]),
        ];
        let (arrays, rows) = arrange(
            &inputs,
            vec![
                tensor("x", &[2, 3], Data::F64(vec![0.5; 6])),
                tensor("ids", &[2, 2], Data::F32(vec![1.0, 2.0, 3.0, 4.0])),
            ],
        )
        .unwrap();
        assert_eq!(rows, 2);
        assert_eq!(arrays[0].data, Data::I64(vec![1, 2, 3, 4]));
        assert_eq!(arrays[1].data, Data::F32(vec![0.5; 6]));
    }

    #[test]
    fn a_tensor_that_does_not_fit_is_refused_naming_its_input() {
        let inputs = [
            Input::batched("ids", Element::I64, &[Some(2)]),
            Input::batched("x", Element::F32, &[Some(1)]),
        ];
        let refuse = |tensors: Vec<Tensor>| arrange(&inputs, tensors).unwrap_err().to_string();
        let ids = || tensor("ids", &[1, 2], Data::I64(vec![1, 2]));
        let error = refuse(vec![ids(), tensor("x", &[1, 2], Data::F32(vec![0.0; 2]))]);
        assert!(
            error.contains("input 'x': takes shape [batch, 1]"),
            "{error}"
        );
        let error = refuse(vec![ids(), tensor("x", &[2, 1], Data::F32(vec![0.0; 2]))]);
        assert!(error.contains("input 'x': 2 rows"), "{error}");
        let error = refuse(vec![ids(), tensor("y", &[1, 1], Data::F32(vec![0.0]))]);
        assert!(error.contains("no tensor for input 'x'"), "{error}");
        let error = refuse(vec![ids()]);
        assert!(error.contains("takes 2 input tensors (ids, x)"), "{error}");
        let halves = tensor("ids", &[1, 2], Data::F32(vec![0.5, 1.0]));
        let error = refuse(vec![halves, tensor("x", &[1, 1], Data::F32(vec![0.0]))]);
        assert!(error.contains("input 'ids': takes int64"), "{error}");
        let words = tensor("x", &[1, 1], Data::String(vec!["a".into()]));
        let error = refuse(vec![ids(), words]);
        assert!(
            error.contains("takes float32 elements; got string"),
            "{error}"
        );
        let short = tensor("x", &[1, 1], Data::F32(vec![]));
        let error = refuse(vec![ids(), short]);
        assert!(error.contains("holds 1 elements, the data 0"), "{error}");
    }

    #[test]
    fn a_single_input_takes_one_tensor_by_any_name_but_not_an_empty_batch() {
        let inputs = [Input::batched("input", Element::F32, &[Some(2)])];
        let (arrays, rows) = arrange(
            &inputs,
            vec![tensor("instances", &[1, 2], Data::F32(vec![1.0, 2.0]))],
        )
        .unwrap();
        assert_eq!((arrays.len(), rows), (1, 1));
        let error = arrange(&inputs, vec![tensor("x", &[0, 2], Data::F32(vec![]))]).unwrap_err();
        assert!(error.to_string().contains("the batch is empty"), "{error}");
    }
}

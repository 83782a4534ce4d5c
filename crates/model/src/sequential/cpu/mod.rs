//! Kiln's own CPU kernels for the image layers whose burn-flex versions dominated a training
//! step: Conv2D with its ReLU ([`conv2d`]) and MaxPool2D ([`max_pool2d`]).
//!
//! Each is a burn backend extension implemented for Flex (Kiln's CPU device) and for
//! `Autodiff<Flex>`, where it records a backward pass of its own, so burn's autodiff and
//! optimizers use them like any other operation. On another device (CUDA), or on tensors that are
//! not `f32`, the layers fall back to burn's.

mod conv;
mod pool;

pub use conv::{ConvOptions, conv2d};
pub use pool::{Window, max_pool2d};

use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{DispatchDevice, Flex, TensorMetadata};
use burn::prelude::*;
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

/// Whether `x` can take Kiln's kernels: an `f32` tensor on the Flex device.
pub(crate) fn on_flex<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == DType::F32 && matches!(x.device().inner().as_dispatch(), DispatchDevice::Flex(_))
}

/// A Flex tensor laid out contiguously from offset 0, so that `storage()` borrows exactly its
/// values in row-major order. Free when it already is.
fn contiguous(tensor: &FloatTensor<Flex>) -> FloatTensor<Flex> {
    tensor.to_contiguous()
}

/// A Flex tensor of `values` in `shape`, on the device of `like`.
fn tensor(values: Vec<f32>, shape: Vec<usize>, like: &FloatTensor<Flex>) -> FloatTensor<Flex> {
    Flex::float_from_data(TensorData::new(values, shape), &like.device())
}

/// `len` zeros written by all threads: `vec![0; len]` zeroes on the calling thread alone, which
/// left a few percent of a training step to one core.
pub(crate) fn zeros<T: Default + Copy + Send + Sync>(len: usize) -> Vec<T> {
    (0..len).into_par_iter().map(|_| T::default()).collect()
}

/// The four sizes of an image batch or a convolution's weight.
fn dims4(tensor: &FloatTensor<Flex>) -> [usize; 4] {
    let shape = tensor.shape();
    [shape[0], shape[1], shape[2], shape[3]]
}

/// Asserts that two tensors have the same shape and values within float rounding.
#[cfg(test)]
fn assert_close<const D: usize>(ours: Tensor<D>, burns: Tensor<D>, what: &str) {
    assert_eq!(ours.dims(), burns.dims(), "{what}");
    let ours = ours.into_data().try_to_vec::<f32>().expect("floats");
    let burns = burns.into_data().try_to_vec::<f32>().expect("floats");
    for (index, (a, b)) in ours.iter().zip(&burns).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
            "{what}[{index}]: {a} vs {b}"
        );
    }
}

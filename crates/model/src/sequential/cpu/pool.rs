//! MaxPool2D with `valid` padding (Keras' default). The forward pass remembers where each
//! window's maximum was, so the backward pass only routes each output gradient to that pixel.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Dispatch, Flex, backend_extension};
use burn::nn::pool::MaxPool2dConfig;
use burn::prelude::*;
use rayon::prelude::*;

use super::{contiguous, dims4, on_flex, tensor, zeros};

/// Planes (one image's channel) handed to a thread at a time: enough to amortise the hand-over.
const PLANES_PER_TASK: usize = 32;

/// A pooling window: its size and the step between two windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Rows and columns in a window.
    pub size: [usize; 2],
    /// Rows and columns between two windows.
    pub stride: [usize; 2],
}

/// The maximum of every `window` of a `[batch, channels, height, width]` batch: Kiln's kernel on
/// the CPU, burn's pooling elsewhere.
pub fn max_pool2d(x: Tensor<4>, window: Window) -> Tensor<4> {
    match on_flex(&x) {
        true => Tensor::from_dispatch(<Dispatch as ImagePool>::max_pool2d_valid(
            x.into_dispatch(),
            window,
        )),
        false => MaxPool2dConfig::new(window.size)
            .with_strides(window.stride)
            .init()
            .forward(x),
    }
}

/// Max pooling as a backend operation, so that autodiff can record its own backward pass.
#[backend_extension(Flex, Autodiff)]
pub trait ImagePool: burn::backend::Backend {
    /// The maximum of every `window` of `x` `[batch, channels, height, width]`, windows wholly
    /// inside the image.
    fn max_pool2d_valid(x: FloatTensor<Self>, window: Window) -> FloatTensor<Self>;
}

impl ImagePool for Flex {
    fn max_pool2d_valid(x: FloatTensor<Self>, window: Window) -> FloatTensor<Self> {
        let dims = Dims::new(&x, window);
        let x = contiguous(&x);
        let (out, _) = forward(x.storage(), &dims);
        tensor(out, dims.output_shape(), &x)
    }
}

impl<C: CheckpointStrategy> ImagePool for Autodiff<Flex, C> {
    fn max_pool2d_valid(x: FloatTensor<Self>, window: Window) -> FloatTensor<Self> {
        match MaxPoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let x = contiguous(&x.into_primitive());
                let dims = Dims::new(&x, window);
                let (out, winners) = forward(x.storage(), &dims);
                prep.finish((dims, winners), tensor(out, dims.output_shape(), &x))
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(Flex::max_pool2d_valid(x.into_primitive(), window))
            }
        }
    }
}

/// Hands each output's gradient to the input pixel that won its window.
#[derive(Debug)]
struct MaxPoolBackward;

impl Backward<Flex, 1> for MaxPoolBackward {
    /// The sizes, and for every output the index of its window's maximum within its plane.
    type State = (Dims, Vec<u32>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [Some(node)] = ops.parents else {
            return;
        };
        let output_grad = contiguous(&grads.consume::<Flex>(&ops.node));
        let (dims, winners) = ops.state;
        let (plane, out_plane) = (dims.plane(), dims.out[0] * dims.out[1]);
        let mut x_grad = zeros(dims.planes * plane);
        x_grad
            .par_chunks_mut(plane)
            .zip(output_grad.storage::<f32>().par_chunks(out_plane))
            .zip(winners.par_chunks(out_plane))
            .with_min_len(PLANES_PER_TASK)
            .for_each(|((x_grad, out_grad), winners)| {
                for (grad, winner) in out_grad.iter().zip(winners) {
                    x_grad[*winner as usize] += grad;
                }
            });
        let x_grad = tensor(x_grad, dims.input_shape(), &output_grad);
        grads.register::<Flex>(node.id, x_grad);
    }
}

/// The sizes of one pooling.
#[derive(Debug, Clone, Copy)]
struct Dims {
    batch: usize,
    channels: usize,
    /// `batch * channels`.
    planes: usize,
    height: usize,
    width: usize,
    out: [usize; 2],
    window: Window,
}

impl Dims {
    fn new(x: &FloatTensor<Flex>, window: Window) -> Self {
        let [batch, channels, height, width] = dims4(x);
        let out = |size: usize, axis: usize| {
            size.saturating_sub(window.size[axis]) / window.stride[axis] + 1
        };
        Self {
            batch,
            channels,
            planes: batch * channels,
            height,
            width,
            out: [out(height, 0), out(width, 1)],
            window,
        }
    }

    fn plane(&self) -> usize {
        self.height * self.width
    }

    fn input_shape(&self) -> Vec<usize> {
        vec![self.batch, self.channels, self.height, self.width]
    }

    fn output_shape(&self) -> Vec<usize> {
        vec![self.batch, self.channels, self.out[0], self.out[1]]
    }
}

/// Every window's maximum, and where in its plane it was (the first, on ties).
fn forward(x: &[f32], dims: &Dims) -> (Vec<f32>, Vec<u32>) {
    let (plane, out_plane) = (dims.plane(), dims.out[0] * dims.out[1]);
    let [size_y, size_x] = dims.window.size;
    let [stride_y, stride_x] = dims.window.stride;
    let mut out = zeros(dims.planes * out_plane);
    let mut winners = zeros(dims.planes * out_plane);
    out.par_chunks_mut(out_plane)
        .zip(winners.par_chunks_mut(out_plane))
        .zip(x.par_chunks(plane))
        .with_min_len(PLANES_PER_TASK)
        .for_each(|((out, winners), image)| {
            let rows = out
                .chunks_mut(dims.out[1])
                .zip(winners.chunks_mut(dims.out[1]));
            for (oy, (out, winners)) in rows.enumerate() {
                let top = oy * stride_y * dims.width;
                for (ox, (out, winner)) in out.iter_mut().zip(winners).enumerate() {
                    let corner = top + ox * stride_x;
                    let (mut best, mut max) = (corner, image[corner]);
                    for row in (0..size_y).map(|i| corner + i * dims.width) {
                        for (at, value) in (row..).zip(&image[row..row + size_x]) {
                            // Selects rather than a branch: which pixel wins is unpredictable.
                            let better = *value > max;
                            best = if better { at } else { best };
                            max = if better { *value } else { max };
                        }
                    }
                    *out = max;
                    *winner = best as u32;
                }
            }
        });
    (out, winners)
}

#[cfg(test)]
mod tests {
    use super::super::assert_close;
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn matches_burns_pooling_and_its_gradient() {
        let device = Device::flex().autodiff();
        let windows = [([2, 2], [2, 2]), ([3, 2], [1, 2]), ([2, 3], [3, 1])];
        for (size, stride) in windows {
            let window = Window { size, stride };
            let x =
                Tensor::<4>::random([2, 3, 7, 8], Distribution::Default, &device).require_grad();
            let ours = max_pool2d(x.clone(), window);
            let burns = MaxPool2dConfig::new(size)
                .with_strides(stride)
                .init()
                .forward(x.clone());
            assert_close(
                ours.clone(),
                burns.clone(),
                &format!("output of {window:?}"),
            );
            let weights = burns.random_like(Distribution::Default);
            let ours = x.grad(&(ours * weights.clone()).sum().backward());
            let burns = x.grad(&(burns * weights).sum().backward());
            assert_close(
                ours.expect("a gradient"),
                burns.expect("a gradient"),
                &format!("x grad of {window:?}"),
            );
        }
    }
}

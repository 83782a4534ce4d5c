//! Conv2D off Kiln's CPU (on a GPU): the patch matrix built from one strided slice of the input
//! per kernel position, then a matrix product batched over the images, all in burn's tensor
//! operations.
//!
//! burn's own CUDA convolution grows linearly with the batch, so a GPU spends its time in the
//! convolution kernels. As slices, a concatenation and a batched matrix product, the forward pass
//! and both gradients (autodiff's, of the same operations) run on burn's matrix multiplication
//! (`bench/gpu.py` compares the two).

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::Slice;
use burn::tensor::activation::relu;
use burn::tensor::ops::PadMode;

use super::cpu::ConvOptions;

/// `conv` over a `[batch, channels, height, width]` batch with `options`' padding and stride,
/// then its ReLU if asked.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>, options: ConvOptions) -> Tensor<4> {
    let [(top, bottom), (left, right)] = options.padding;
    let x = match top + bottom + left + right {
        0 => x,
        _ => x.pad([(top, bottom), (left, right)], PadMode::Constant(0.0)),
    };
    let [batch, channels, height, width] = x.dims();
    let [filters, _, kernel_height, kernel_width] = conv.weight.dims();
    let [stride_y, stride_x] = options.stride;
    let out_height = (height - kernel_height) / stride_y + 1;
    let out_width = (width - kernel_width) / stride_x + 1;
    let span = |offset: usize, stride: usize, len: usize| {
        Slice::new(
            offset as isize,
            Some((offset + (len - 1) * stride + 1) as isize),
            stride as isize,
        )
    };
    // One [batch, channels, out_height, out_width] view per kernel position, stacked along the
    // channels in (row, column, channel) order.
    let shifted: Vec<Tensor<4>> = (0..kernel_height)
        .flat_map(|row| (0..kernel_width).map(move |column| (row, column)))
        .map(|(row, column)| {
            x.clone().slice([
                Slice::from(0..batch),
                Slice::from(0..channels),
                span(row, stride_y, out_height),
                span(column, stride_x, out_width),
            ])
        })
        .collect();
    // Images stay a batch dimension of the product: autodiff then forms the weight's gradient as
    // one small product per image, summed, rather than one product whose inner dimension is
    // every output pixel of the batch, which GPU matrix kernels run on a handful of cores.
    let patch = kernel_height * kernel_width * channels;
    let patches = Tensor::cat(shifted, 1).permute([0, 2, 3, 1]).reshape([
        batch,
        out_height * out_width,
        patch,
    ]);
    let weight = conv
        .weight
        .val()
        .permute([0, 2, 3, 1])
        .reshape([filters, patch])
        .transpose()
        .unsqueeze_dim::<3>(0)
        .expand([batch, patch, filters]);
    let mut out = patches.matmul(weight);
    if let Some(bias) = &conv.bias {
        out = out + bias.val().reshape([1, 1, filters]);
    }
    let out = out
        .reshape([batch, out_height, out_width, filters])
        .permute([0, 3, 1, 2]);
    match options.relu {
        true => relu(out),
        false => out,
    }
}

//! Conv2D on the CPU as im2col + GEMM, one image at a time, with a backward pass of its own.
//!
//! burn-flex's forward convolution is already im2col + GEMM, but its backward pass is burn's
//! generic one: the input gradient as a transposed convolution and the weight gradient as a
//! convolution whose kernel is the whole output map, which GEMM runs a few columns wide. On the
//! Keras MNIST network that made a training step several times slower than TensorFlow's. Here
//! the forward pass and both gradients are GEMMs over one image's patch matrix, which is
//! rebuilt in the backward pass rather than kept, so it stays in cache and memory stays at the
//! size of the activations. Images run in parallel; each GEMM runs on one thread.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Dispatch, Flex, backend_extension};
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use rayon::prelude::*;
use std::ops::Range;

use super::super::patch_conv;
use super::{contiguous, dims4, on_flex, tensor, zeros};

/// Stride and zero padding of a convolution, and whether a ReLU follows it; the kernel's size
/// comes from its weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvOptions {
    /// Rows and columns between two kernel positions.
    pub stride: [usize; 2],
    /// Zero rows (top, bottom) and columns (left, right) around the image.
    pub padding: [(usize, usize); 2],
    /// Whether the output goes through a ReLU, applied (and differentiated) image by image in
    /// the same pass rather than as two more passes over the whole batch.
    pub relu: bool,
}

impl ConvOptions {
    /// Keras' padding for an image of `size` (height, width), without a ReLU: none for `valid`;
    /// for `same`, as much as makes the output `ceil(size / stride)` long, the odd one at the end.
    pub fn keras(same: bool, kernel: [usize; 2], stride: [usize; 2], size: [usize; 2]) -> Self {
        let pad = |axis: usize| {
            let out = size[axis].div_ceil(stride[axis]);
            let total = match same && out > 0 {
                true => ((out - 1) * stride[axis] + kernel[axis]).saturating_sub(size[axis]),
                false => 0,
            };
            (total / 2, total - total / 2)
        };
        Self {
            stride,
            padding: [pad(0), pad(1)],
            relu: false,
        }
    }
}

/// Applies `conv` to a `[batch, channels, height, width]` batch with padding `options`, then
/// the ReLU if `options` asks: Kiln's im2col + GEMM on the CPU, the patch-matrix product of
/// burn's tensor operations elsewhere (a GPU) or without a bias.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>, options: ConvOptions) -> Tensor<4> {
    match (&conv.bias, on_flex(&x)) {
        (Some(bias), true) => Tensor::from_dispatch(<Dispatch as ImageConv>::conv2d_gemm(
            x.into_dispatch(),
            conv.weight.val().into_dispatch(),
            bias.val().into_dispatch(),
            options,
        )),
        _ => patch_conv::conv2d(conv, x, options),
    }
}

/// The convolution as a backend operation, so that autodiff can record its own backward pass.
#[backend_extension(Flex, Autodiff)]
pub trait ImageConv: burn::backend::Backend {
    /// `x` `[batch, channels, height, width]` convolved with `weight`
    /// `[filters, channels, kernel height, kernel width]`, plus `bias` `[filters]`.
    fn conv2d_gemm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions,
    ) -> FloatTensor<Self>;
}

impl ImageConv for Flex {
    fn conv2d_gemm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions,
    ) -> FloatTensor<Self> {
        let dims = Dims::new(&x, &weight, options);
        let (x, weight, bias) = (contiguous(&x), contiguous(&weight), contiguous(&bias));
        let out = forward(x.storage(), weight.storage(), bias.storage(), &dims);
        tensor(out, dims.output_shape(), &x)
    }
}

impl<C: CheckpointStrategy> ImageConv for Autodiff<Flex, C> {
    fn conv2d_gemm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions,
    ) -> FloatTensor<Self> {
        match Conv2dBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, weight) = (x.into_primitive(), weight.into_primitive());
                let bias = bias.into_primitive();
                let out = Flex::conv2d_gemm(x.clone(), weight.clone(), bias, options);
                let relu_out = options.relu.then(|| out.clone());
                prep.finish((x, weight, options, relu_out), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::conv2d_gemm(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                options,
            )),
        }
    }
}

/// The gradients of [`ImageConv::conv2d_gemm`] with respect to its three inputs.
#[derive(Debug)]
struct Conv2dBackward;

impl Backward<Flex, 3> for Conv2dBackward {
    /// The input, the weight, the options, and the output when a ReLU made it (its zeros say
    /// where the gradient stops).
    type State = (
        FloatTensor<Flex>,
        FloatTensor<Flex>,
        ConvOptions,
        Option<FloatTensor<Flex>>,
    );

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let output_grad = grads.consume::<Flex>(&ops.node);
        let (x, weight, options, relu_out) = ops.state;
        let dims = Dims::new(&x, &weight, options);
        let (x, weight) = (contiguous(&x), contiguous(&weight));
        let output_grad = contiguous(&output_grad);
        let relu_out = relu_out.as_ref().map(contiguous);
        let gradients = backward(
            x.storage(),
            weight.storage(),
            (
                output_grad.storage(),
                relu_out.as_ref().map(|out| out.storage()),
            ),
            &dims,
            node_x.is_some(),
        );
        if let (Some(node), Some(x_grad)) = (node_x, gradients.x) {
            grads.register::<Flex>(node.id, tensor(x_grad, dims.input_shape(), &x));
        }
        if let Some(node) = node_weight {
            let shape = dims.weight_shape();
            grads.register::<Flex>(node.id, tensor(gradients.weight, shape, &x));
        }
        if let Some(node) = node_bias {
            let shape = vec![dims.filters];
            grads.register::<Flex>(node.id, tensor(gradients.bias, shape, &x));
        }
    }
}

/// The sizes of one convolution.
#[derive(Debug, Clone, Copy)]
struct Dims {
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    filters: usize,
    kernel: [usize; 2],
    out: [usize; 2],
    options: ConvOptions,
}

impl Dims {
    fn new(x: &FloatTensor<Flex>, weight: &FloatTensor<Flex>, options: ConvOptions) -> Self {
        let [batch, channels, height, width] = dims4(x);
        let [filters, _, kernel_height, kernel_width] = dims4(weight);
        let kernel = [kernel_height, kernel_width];
        let out = |axis: usize, size: usize| {
            let (before, after) = options.padding[axis];
            (size + before + after).saturating_sub(kernel[axis]) / options.stride[axis] + 1
        };
        Self {
            batch,
            channels,
            height,
            width,
            filters,
            kernel,
            out: [out(0, height), out(1, width)],
            options,
        }
    }

    /// Values in one input image.
    fn image(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Rows of the patch matrix: one per channel and kernel offset.
    fn patch(&self) -> usize {
        self.channels * self.kernel[0] * self.kernel[1]
    }

    /// Columns of the patch matrix: one per output position.
    fn positions(&self) -> usize {
        self.out[0] * self.out[1]
    }

    fn input_shape(&self) -> Vec<usize> {
        vec![self.batch, self.channels, self.height, self.width]
    }

    fn weight_shape(&self) -> Vec<usize> {
        vec![self.filters, self.channels, self.kernel[0], self.kernel[1]]
    }

    fn output_shape(&self) -> Vec<usize> {
        vec![self.batch, self.filters, self.out[0], self.out[1]]
    }

    /// Calls `visit` with every segment of the patch matrix: the `out width` entries of one
    /// patch row (a channel and kernel offset) that make up one output row.
    fn segments(&self, mut visit: impl FnMut(Segment)) {
        let [stride_y, stride_x] = self.options.stride;
        let [(top, _), (left, _)] = self.options.padding;
        let [out_height, out_width] = self.out;
        let (columns, height, width) = (self.positions(), self.height, self.width);
        // The output columns whose input column `ox * stride + j - left` is on the image.
        let span = |j: usize| {
            let first = left.saturating_sub(j).div_ceil(stride_x);
            let end = (width + left).saturating_sub(j).div_ceil(stride_x);
            first.min(out_width)..end.min(out_width)
        };
        for channel in 0..self.channels {
            for i in 0..self.kernel[0] {
                for j in 0..self.kernel[1] {
                    let row = (channel * self.kernel[0] + i) * self.kernel[1] + j;
                    let columns_on = span(j);
                    for oy in 0..out_height {
                        let at = row * columns + oy * out_width;
                        let y = (oy * stride_y + i)
                            .checked_sub(top)
                            .filter(|y| *y < height && !columns_on.is_empty());
                        visit(match y {
                            Some(y) => Segment {
                                at,
                                on: columns_on.clone(),
                                pixel: (channel * height + y) * width
                                    + columns_on.start * stride_x
                                    + j
                                    - left,
                            },
                            None => Segment {
                                at,
                                on: 0..0,
                                pixel: 0,
                            },
                        });
                    }
                }
            }
        }
    }
}

/// One output row of one patch-matrix row, as [`Dims::segments`] gives them: `out width`
/// entries from `at` in the matrix. Entries `on` take the image's values from `pixel` on, one
/// stride apart; the others fall on the padding.
struct Segment {
    at: usize,
    on: Range<usize>,
    pixel: usize,
}

/// Writes one image's patch matrix `[patch, positions]` into `patches`, zeros where a kernel
/// position falls on the padding.
fn im2col(dims: &Dims, image: &[f32], patches: &mut [f32]) {
    let (stride, out_width) = (dims.options.stride[1], dims.out[1]);
    dims.segments(|Segment { at, on, pixel }| {
        let row = &mut patches[at..at + out_width];
        row[..on.start].fill(0.0);
        row[on.end..].fill(0.0);
        let row = &mut row[on];
        match stride {
            1 => row.copy_from_slice(&image[pixel..pixel + row.len()]),
            _ => {
                for (k, value) in row.iter_mut().enumerate() {
                    *value = image[pixel + k * stride];
                }
            }
        }
    });
}

/// Adds a patch matrix's gradient back onto its image's gradient: the transpose of [`im2col`].
fn col2im(dims: &Dims, patches: &[f32], image: &mut [f32]) {
    let stride = dims.options.stride[1];
    dims.segments(|Segment { at, on, pixel }| {
        let patches = &patches[at + on.start..at + on.end];
        match stride {
            1 => {
                let image = &mut image[pixel..pixel + patches.len()];
                for (sum, value) in image.iter_mut().zip(patches) {
                    *sum += value;
                }
            }
            _ => {
                for (k, value) in patches.iter().enumerate() {
                    image[pixel + k * stride] += value;
                }
            }
        }
    });
}

/// A row-major matrix, or a transposed view of one: element `(r, c)` is at
/// `values[r * row_stride + c * column_stride]`.
struct Matrix<'a> {
    values: &'a [f32],
    row_stride: usize,
    column_stride: usize,
}

impl<'a> Matrix<'a> {
    /// `values` as a `columns`-wide row-major matrix.
    fn rows(values: &'a [f32], columns: usize) -> Self {
        Self {
            values,
            row_stride: columns,
            column_stride: 1,
        }
    }

    /// The transpose of `values` taken as a `columns`-wide row-major matrix.
    fn transposed(values: &'a [f32], columns: usize) -> Self {
        Self {
            values,
            row_stride: 1,
            column_stride: columns,
        }
    }

    /// Whether `rows` × `columns` elements lie inside `values`.
    fn fits(&self, rows: usize, columns: usize) -> bool {
        rows == 0
            || columns == 0
            || (rows - 1) * self.row_stride + (columns - 1) * self.column_stride < self.values.len()
    }
}

/// `out` (row-major `m` × `n`) `= lhs · rhs`, plus what `out` held when `accumulate`, with `lhs`
/// `m` × `k` and `rhs` `k` × `n`. Runs on the calling thread.
fn matmul(out: &mut [f32], accumulate: bool, lhs: Matrix, rhs: Matrix, [m, k, n]: [usize; 3]) {
    assert!(
        out.len() >= m * n && lhs.fits(m, k) && rhs.fits(k, n),
        "matmul operands are smaller than {m} x {k} x {n}. This is a bug."
    );
    // SAFETY: the assertion keeps every element gemm reads or writes inside the three slices,
    // and `out` is borrowed mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.values.as_ptr(),
            lhs.column_stride as isize,
            lhs.row_stride as isize,
            rhs.values.as_ptr(),
            rhs.column_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// The convolution of a batch: `weight · patches(image) + bias` for each image.
fn forward(x: &[f32], weight: &[f32], bias: &[f32], dims: &Dims) -> Vec<f32> {
    let (patch, positions, filters) = (dims.patch(), dims.positions(), dims.filters);
    let mut out = zeros(dims.batch * filters * positions);
    out.par_chunks_mut(filters * positions)
        .zip(x.par_chunks(dims.image()))
        .for_each_init(
            || vec![0.0; patch * positions],
            |patches, (out, image)| {
                im2col(dims, image, patches);
                for (row, bias) in out.chunks_mut(positions).zip(bias) {
                    row.fill(*bias);
                }
                let weight = Matrix::rows(weight, patch);
                let patches = Matrix::rows(patches, positions);
                matmul(out, true, weight, patches, [filters, patch, positions]);
                if dims.options.relu {
                    for value in out.iter_mut() {
                        *value = value.max(0.0);
                    }
                }
            },
        );
    out
}

/// The sum of `values`, over 16 lanes: a plain `iter().sum()` adds one float at a time, in
/// order, which made the bias gradient a tenth of the backward pass.
fn vector_sum(values: &[f32]) -> f32 {
    let mut lanes = [0.0_f32; 16];
    let mut chunks = values.chunks_exact(16);
    for chunk in &mut chunks {
        for (lane, value) in lanes.iter_mut().zip(chunk) {
            *lane += value;
        }
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// The gradients of a convolution's loss, given the gradient of its output.
struct ConvGradients {
    /// With respect to the input, when asked for.
    x: Option<Vec<f32>>,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// Images whose weight and bias gradients one task sums.
const IMAGES_PER_GROUP: usize = 8;

/// Sums of the weight and bias gradients over some of the images, with the scratch space for
/// one image's patch matrix and its gradient.
#[derive(Default)]
struct Partial {
    weight: Vec<f32>,
    bias: Vec<f32>,
    patches: Vec<f32>,
    patches_grad: Vec<f32>,
    /// The output gradient where the ReLU let it through.
    relu_grad: Vec<f32>,
}

impl Partial {
    /// Zero sums and scratch space for the convolution `dims`.
    fn new(dims: &Dims) -> Self {
        Self {
            weight: vec![0.0; dims.filters * dims.patch()],
            bias: vec![0.0; dims.filters],
            patches: vec![0.0; dims.patch() * dims.positions()],
            ..Self::default()
        }
    }

    fn add(mut self, other: Partial) -> Partial {
        for (sum, value) in self.weight.iter_mut().zip(&other.weight) {
            *sum += value;
        }
        for (sum, value) in self.bias.iter_mut().zip(&other.bias) {
            *sum += value;
        }
        self
    }
}

/// Backpropagates `output_grad` `[batch, filters, out height, out width]` through the
/// convolution of `x` by `weight`, and first through the ReLU whose output `relu_out` is when
/// there was one; the input's gradient only when `want_x`.
fn backward(
    x: &[f32],
    weight: &[f32],
    (output_grad, relu_out): (&[f32], Option<&[f32]>),
    dims: &Dims,
    want_x: bool,
) -> ConvGradients {
    let out_size = dims.filters * dims.positions();
    let relu_outs: Vec<Option<&[f32]>> = match relu_out {
        Some(out) => out.chunks(out_size).map(Some).collect(),
        None => vec![None; dims.batch],
    };
    let (patch, positions, filters) = (dims.patch(), dims.positions(), dims.filters);
    let mut x_grad = want_x.then(|| zeros(dims.batch * dims.image()));
    let image_grads: Vec<Option<&mut [f32]>> = match &mut x_grad {
        Some(grad) => grad.chunks_mut(dims.image()).map(Some).collect(),
        None => (0..dims.batch).map(|_| None).collect(),
    };
    // The images are summed in groups of a fixed size, and the groups in order, so the gradients
    // do not depend on how the pool schedules the work: runs repeat bit for bit. Groups much
    // smaller than a thread's share keep the threads evenly busy.
    let sums = image_grads
        .into_par_iter()
        .zip(x.par_chunks(dims.image()))
        .zip(output_grad.par_chunks(out_size))
        .zip(relu_outs)
        .chunks(IMAGES_PER_GROUP)
        .map(|images| {
            images.into_iter().fold(
                Partial::new(dims),
                |mut sums, (((image_grad, image), out_grad), relu_out)| {
                    let out_grad = match relu_out {
                        Some(relu_out) => {
                            let passed = out_grad.iter().zip(relu_out);
                            let passed =
                                passed.map(|(grad, out)| if *out > 0.0 { *grad } else { 0.0 });
                            sums.relu_grad.clear();
                            sums.relu_grad.extend(passed);
                            &sums.relu_grad
                        }
                        None => out_grad,
                    };
                    im2col(dims, image, &mut sums.patches);
                    matmul(
                        &mut sums.weight,
                        true,
                        Matrix::rows(out_grad, positions),
                        Matrix::transposed(&sums.patches, positions),
                        [filters, positions, patch],
                    );
                    for (sum, row) in sums.bias.iter_mut().zip(out_grad.chunks(positions)) {
                        *sum += vector_sum(row);
                    }
                    if let Some(image_grad) = image_grad {
                        sums.patches_grad.resize(patch * positions, 0.0);
                        matmul(
                            &mut sums.patches_grad,
                            false,
                            Matrix::transposed(weight, patch),
                            Matrix::rows(out_grad, positions),
                            [patch, filters, positions],
                        );
                        col2im(dims, &sums.patches_grad, image_grad);
                    }
                    sums
                },
            )
        })
        .collect::<Vec<_>>()
        .into_iter()
        .reduce(Partial::add)
        .unwrap_or_else(|| Partial::new(dims));
    ConvGradients {
        x: x_grad,
        weight: sums.weight,
        bias: sums.bias,
    }
}

#[cfg(test)]
mod tests {
    use super::super::assert_close;
    use super::*;
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::Distribution;
    use burn::tensor::activation::relu;

    /// Kernel, stride, `same` padding, image size.
    type Case = ([usize; 2], [usize; 2], bool, [usize; 2]);

    /// Square kernels and not, odd and even, with and without Keras' asymmetric `same` padding.
    const CASES: [Case; 5] = [
        ([3, 3], [1, 1], false, [8, 8]),
        ([3, 3], [1, 1], true, [6, 7]),
        ([3, 2], [2, 1], true, [7, 6]),
        ([1, 1], [2, 2], true, [5, 5]),
        ([5, 4], [2, 3], true, [6, 9]),
    ];

    fn layer(kernel: [usize; 2], stride: [usize; 2], same: bool, device: &Device) -> Conv2d {
        let padding = match same {
            true => PaddingConfig2d::Same,
            false => PaddingConfig2d::Valid,
        };
        let conv = Conv2dConfig::new([3, 4], kernel)
            .with_stride(stride)
            .with_padding(padding)
            .init(device);
        // burn starts biases at zero; a random one shows that it is added.
        let bias = conv
            .bias
            .as_ref()
            .map(|bias| bias.val().random_like(Distribution::Default));
        Conv2d {
            bias: bias.map(burn::module::Param::from_tensor),
            ..conv
        }
    }

    /// Kiln's CPU kernel and the patch-matrix product used on GPUs, each against burn's.
    #[test]
    fn matches_burns_convolution_and_its_gradients() {
        type Conv = fn(&Conv2d, Tensor<4>, ConvOptions) -> Tensor<4>;
        let device = Device::flex().autodiff();
        let implementations: [(&str, Conv); 2] = [("cpu", conv2d), ("patches", patch_conv::conv2d)];
        for (((kernel, stride, same, size), with_relu), (name, conv2d)) in CASES
            .into_iter()
            .zip([false, true].repeat(3))
            .flat_map(|case| implementations.map(|implementation| (case, implementation)))
        {
            let conv = layer(kernel, stride, same, &device);
            let x = Tensor::<4>::random([2, 3, size[0], size[1]], Distribution::Default, &device)
                .require_grad();
            let options = ConvOptions {
                relu: with_relu,
                ..ConvOptions::keras(same, kernel, stride, size)
            };
            let ours = conv2d(&conv, x.clone(), options);
            let burns = match with_relu {
                true => relu(conv.forward(x.clone())),
                false => conv.forward(x.clone()),
            };
            let case = format!(
                "{name}: {kernel:?} stride {stride:?} same {same} relu {with_relu} on {size:?}"
            );
            assert_close(ours.clone(), burns.clone(), &format!("output of {case}"));

            let weights = burns.random_like(Distribution::Default);
            let ours = (ours * weights.clone()).sum().backward();
            let burns = (burns * weights).sum().backward();
            let grad = |tensor: &Tensor<4>, grads| tensor.grad(grads).expect("a gradient");
            assert_close(
                grad(&x, &ours),
                grad(&x, &burns),
                &format!("x grad of {case}"),
            );
            let weight = conv.weight.val();
            assert_close(
                grad(&weight, &ours),
                grad(&weight, &burns),
                &format!("weight grad of {case}"),
            );
            let bias = conv.bias.as_ref().expect("a bias").val();
            let bias_grad = |grads| bias.grad(grads).expect("a gradient");
            assert_close(
                bias_grad(&ours),
                bias_grad(&burns),
                &format!("bias grad of {case}"),
            );
        }
    }

    #[test]
    fn serves_without_autodiff() {
        let device = Device::flex();
        let (kernel, stride, same, size) = CASES[2];
        let conv = layer(kernel, stride, same, &device);
        let x = Tensor::<4>::random([1, 3, size[0], size[1]], Distribution::Default, &device);
        let ours = conv2d(
            &conv,
            x.clone(),
            ConvOptions::keras(same, kernel, stride, size),
        );
        assert_close(ours, conv.forward(x), "output");
    }

    /// The weight and bias gradients sum many images; they must not depend on how many threads
    /// share the work, or a resumed run would not repeat the uninterrupted one.
    #[test]
    fn gradients_do_not_depend_on_the_threads() {
        let dims = Dims {
            batch: 37,
            channels: 2,
            height: 6,
            width: 5,
            filters: 3,
            kernel: [3, 3],
            out: [4, 3],
            options: ConvOptions::keras(false, [3, 3], [1, 1], [6, 5]),
        };
        let values = |count: usize, salt: usize| -> Vec<f32> {
            (0..count)
                .map(|i| ((i * 7919 + salt) % 1000) as f32 / 997.0 - 0.5)
                .collect()
        };
        let x = values(dims.batch * dims.image(), 1);
        let weight = values(dims.filters * dims.patch(), 2);
        let output_grad = values(dims.batch * dims.filters * dims.positions(), 3);
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool");
            pool.install(|| backward(&x, &weight, (&output_grad, None), &dims, true))
        };
        let (one, four) = (on(1), on(4));
        assert_eq!(one.weight, four.weight);
        assert_eq!(one.bias, four.bias);
        assert_eq!(one.x, four.x);
    }
}

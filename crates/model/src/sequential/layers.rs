//! The layers of a Sequential model, as Keras names them, and the burn network they build.
//!
//! A definition is a list of [`LayerSpec`]s. [`plan`] checks it against the input's shape and
//! gives every layer's output shape, so a bad definition fails before training with the index of
//! the layer at fault. [`Network`] holds the parameters of the layers that have some (Dense,
//! Conv2D, Embedding); [`forward`] walks the specs and applies each layer in turn.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid, softmax, tanh};
use burn::tensor::{Distribution, TensorData};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::cpu::{ConvOptions, Window, conv2d, max_pool2d, on_flex, zeros};
use crate::ModelError;
use crate::export::{Weights, WeightsWriter};

/// A layer's activation function.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// The identity (Keras' default).
    #[default]
    Linear,
    /// `max(x, 0)`.
    Relu,
    /// The logistic function.
    Sigmoid,
    /// The hyperbolic tangent.
    Tanh,
    /// Softmax over the last dimension.
    Softmax,
}

/// A size given as one number (square) or two (`[height, width]`), as Keras accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Pair {
    /// The same size in both dimensions.
    Square(usize),
    /// `[height, width]`.
    Sizes([usize; 2]),
}

impl Pair {
    /// `[height, width]`.
    pub fn dims(self) -> [usize; 2] {
        match self {
            Pair::Square(size) => [size, size],
            Pair::Sizes(sizes) => sizes,
        }
    }

    fn one() -> Self {
        Pair::Square(1)
    }

    fn two() -> Self {
        Pair::Square(2)
    }
}

/// Convolution padding, as Keras names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Padding {
    /// No padding: the output shrinks by the kernel size minus one.
    #[default]
    Valid,
    /// Zero padding that keeps the size (at stride 1).
    Same,
}

/// One layer of a Sequential model. Fields and defaults follow Keras.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum LayerSpec {
    /// A fully connected layer.
    Dense {
        /// Output width.
        units: usize,
        /// Applied to the output.
        #[serde(default)]
        activation: Activation,
    },
    /// A 2-D convolution over an image.
    Conv2D {
        /// Output channels.
        filters: usize,
        /// Kernel height and width.
        kernel_size: Pair,
        /// Step between kernel positions.
        #[serde(default = "Pair::one")]
        strides: Pair,
        /// `valid` or `same`.
        #[serde(default)]
        padding: Padding,
        /// Applied to the output.
        #[serde(default)]
        activation: Activation,
    },
    /// Max pooling over an image.
    #[serde(alias = "MaxPooling2D")]
    MaxPool2D {
        /// Window height and width.
        #[serde(default = "Pair::two")]
        pool_size: Pair,
        /// Step between windows; the window size when absent.
        #[serde(default)]
        strides: Option<Pair>,
    },
    /// Zeroes a fraction of the values while training, scaling the rest up.
    Dropout {
        /// Fraction dropped, in `[0, 1)`.
        rate: f64,
    },
    /// Flattens an image or a sequence into one vector per example.
    Flatten,
    /// Looks up a vector per token id.
    Embedding {
        /// Number of ids; the tokenizer's vocabulary size when absent.
        #[serde(default)]
        input_dim: Option<usize>,
        /// Width of each vector.
        output_dim: usize,
    },
    /// The mean over a sequence's positions.
    #[serde(alias = "GlobalAvgPool1D")]
    GlobalAveragePooling1D,
    /// An activation on its own.
    Activation {
        /// The function.
        activation: Activation,
    },
}

impl LayerSpec {
    fn name(&self) -> &'static str {
        match self {
            LayerSpec::Dense { .. } => "Dense",
            LayerSpec::Conv2D { .. } => "Conv2D",
            LayerSpec::MaxPool2D { .. } => "MaxPool2D",
            LayerSpec::Dropout { .. } => "Dropout",
            LayerSpec::Flatten => "Flatten",
            LayerSpec::Embedding { .. } => "Embedding",
            LayerSpec::GlobalAveragePooling1D => "GlobalAveragePooling1D",
            LayerSpec::Activation { .. } => "Activation",
        }
    }

    /// The activation applied at the end of the layer.
    pub fn activation(&self) -> Activation {
        match self {
            LayerSpec::Dense { activation, .. }
            | LayerSpec::Conv2D { activation, .. }
            | LayerSpec::Activation { activation } => *activation,
            _ => Activation::Linear,
        }
    }

    /// Whether the layer's kernel applies its activation itself: Conv2D fuses its ReLU.
    fn fuses_activation(&self) -> bool {
        matches!(
            self,
            LayerSpec::Conv2D {
                activation: Activation::Relu,
                ..
            }
        )
    }
}

/// The shape of one example as it flows through the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A vector.
    Flat(usize),
    /// Token ids, `length` of them.
    Ids(usize),
    /// A sequence of vectors.
    Sequence {
        /// Positions.
        length: usize,
        /// Width of each vector.
        dim: usize,
    },
    /// An image, channels first.
    Image {
        /// Channels.
        channels: usize,
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
    },
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shape::Flat(width) => write!(f, "a vector of {width}"),
            Shape::Ids(length) => write!(f, "{length} token ids"),
            Shape::Sequence { length, dim } => write!(f, "a sequence of {length} x {dim}"),
            Shape::Image {
                channels,
                height,
                width,
            } => write!(f, "an image of {height} x {width} x {channels}"),
        }
    }
}

/// Every layer's output shape, or an error naming the first layer that does not fit.
/// `vocabulary` is the tokenizer's size, the default `input_dim` of an Embedding.
pub fn plan(
    input: Shape,
    layers: &[LayerSpec],
    vocabulary: Option<usize>,
) -> Result<Vec<Shape>, String> {
    let mut shapes = Vec::with_capacity(layers.len());
    let mut shape = input;
    for (index, layer) in layers.iter().enumerate() {
        let unfit = || format!("layers[{index}] ({}) does not take {shape}", layer.name());
        let positive = |name: &str, value: usize| match value {
            0 => Err(format!(
                "layers[{index}] ({}): {name} must be positive",
                layer.name()
            )),
            _ => Ok(()),
        };
        shape = match (layer, shape) {
            (LayerSpec::Dense { units, .. }, Shape::Flat(_)) => {
                positive("units", *units)?;
                Shape::Flat(*units)
            }
            (
                LayerSpec::Conv2D {
                    filters,
                    kernel_size,
                    strides,
                    padding,
                    ..
                },
                Shape::Image { height, width, .. },
            ) => {
                positive("filters", *filters)?;
                let [kh, kw] = kernel_size.dims();
                let [sh, sw] = strides.dims();
                for (name, value) in [
                    ("kernel_size", kh),
                    ("kernel_size", kw),
                    ("strides", sh),
                    ("strides", sw),
                ] {
                    positive(name, value)?;
                }
                if *padding == Padding::Same && (sh, sw) != (1, 1) {
                    return Err(format!(
                        "layers[{index}] (Conv2D): padding \"same\" needs strides 1"
                    ));
                }
                let (height, width) = match padding {
                    Padding::Same => (height, width),
                    Padding::Valid if kh <= height && kw <= width => {
                        ((height - kh) / sh + 1, (width - kw) / sw + 1)
                    }
                    Padding::Valid => {
                        return Err(format!(
                            "layers[{index}] (Conv2D): a {kh} x {kw} kernel does not fit {shape}"
                        ));
                    }
                };
                Shape::Image {
                    channels: *filters,
                    height,
                    width,
                }
            }
            (
                LayerSpec::MaxPool2D { pool_size, strides },
                Shape::Image {
                    channels,
                    height,
                    width,
                },
            ) => {
                let [ph, pw] = pool_size.dims();
                let [sh, sw] = strides.unwrap_or(*pool_size).dims();
                for (name, value) in [
                    ("pool_size", ph),
                    ("pool_size", pw),
                    ("strides", sh),
                    ("strides", sw),
                ] {
                    positive(name, value)?;
                }
                if ph > height || pw > width {
                    return Err(format!(
                        "layers[{index}] (MaxPool2D): a {ph} x {pw} window does not fit {shape}"
                    ));
                }
                Shape::Image {
                    channels,
                    height: (height - ph) / sh + 1,
                    width: (width - pw) / sw + 1,
                }
            }
            (LayerSpec::Dropout { rate }, shape) => {
                if !(0.0..1.0).contains(rate) {
                    return Err(format!(
                        "layers[{index}] (Dropout): rate must be in [0, 1), got {rate}"
                    ));
                }
                shape
            }
            (
                LayerSpec::Flatten,
                Shape::Image {
                    channels,
                    height,
                    width,
                },
            ) => Shape::Flat(channels * height * width),
            (LayerSpec::Flatten, Shape::Sequence { length, dim }) => Shape::Flat(length * dim),
            (LayerSpec::Flatten, Shape::Flat(width)) => Shape::Flat(width),
            (
                LayerSpec::Embedding {
                    input_dim,
                    output_dim,
                },
                Shape::Ids(length),
            ) => {
                positive("output_dim", *output_dim)?;
                match input_dim.or(vocabulary) {
                    Some(0) | None => {
                        return Err(format!(
                            "layers[{index}] (Embedding): input_dim must be positive"
                        ));
                    }
                    Some(_) => Shape::Sequence {
                        length,
                        dim: *output_dim,
                    },
                }
            }
            (LayerSpec::GlobalAveragePooling1D, Shape::Sequence { dim, .. }) => Shape::Flat(dim),
            (LayerSpec::Activation { .. }, shape) if !matches!(shape, Shape::Ids(_)) => shape,
            _ => return Err(unfit()),
        };
        shapes.push(shape);
    }
    Ok(shapes)
}

/// A layer's parameters.
#[derive(Module, Debug)]
pub enum Layer {
    /// Of a Dense layer.
    Dense(Linear),
    /// Of a Conv2D layer.
    Conv2d(Conv2d),
    /// Of an Embedding layer.
    Embedding(Embedding),
}

/// The parameters of a Sequential model's layers that have some, in layer order.
#[derive(Module, Debug)]
pub struct Network {
    /// One entry per Dense, Conv2D or Embedding layer.
    pub layers: Vec<Layer>,
}

/// What flows between layers: a batch in one of the shapes of [`Shape`].
#[derive(Debug, Clone)]
pub enum Activations {
    /// `[batch, width]`.
    Flat(Tensor<2>),
    /// `[batch, length]` token ids.
    Ids(Tensor<2, Int>),
    /// `[batch, length, dim]`.
    Sequence(Tensor<3>),
    /// `[batch, channels, height, width]`.
    Image(Tensor<4>),
}

impl Network {
    /// Freshly initialised parameters for `layers`, whose input shapes `plan` gave (`input`
    /// first). Initialisation follows Keras: Glorot-uniform weights, zero biases.
    pub fn init(
        input: Shape,
        layers: &[LayerSpec],
        shapes: &[Shape],
        vocabulary: Option<usize>,
        device: &Device,
    ) -> Self {
        let mut params = Vec::new();
        let inputs = std::iter::once(&input).chain(shapes);
        for (layer, shape) in layers.iter().zip(inputs) {
            let glorot = burn::nn::Initializer::XavierUniform { gain: 1.0 };
            match (layer, shape) {
                (LayerSpec::Dense { units, .. }, Shape::Flat(width)) => {
                    params.push(Layer::Dense(
                        LinearConfig::new(*width, *units)
                            .with_initializer(glorot)
                            .init(device),
                    ));
                }
                (
                    LayerSpec::Conv2D {
                        filters,
                        kernel_size,
                        strides,
                        padding,
                        ..
                    },
                    Shape::Image { channels, .. },
                ) => {
                    let mut conv = Conv2dConfig::new([*channels, *filters], kernel_size.dims())
                        .with_stride(strides.dims())
                        .with_padding(match padding {
                            Padding::Valid => PaddingConfig2d::Valid,
                            Padding::Same => PaddingConfig2d::Same,
                        })
                        .with_initializer(glorot)
                        .init(device);
                    conv.bias = conv
                        .bias
                        .map(|bias| Param::from_tensor(bias.val().zeros_like()));
                    params.push(Layer::Conv2d(conv));
                }
                (
                    LayerSpec::Embedding {
                        input_dim,
                        output_dim,
                    },
                    _,
                ) => {
                    let ids = input_dim.or(vocabulary).unwrap_or(1);
                    params.push(Layer::Embedding(
                        EmbeddingConfig::new(ids, *output_dim)
                            .with_initializer(burn::nn::Initializer::Uniform {
                                min: -0.05,
                                max: 0.05,
                            })
                            .init(device),
                    ));
                }
                _ => {}
            }
        }
        Self { layers: params }
    }

    /// Adds the parameters to `weights` as `layers/<i>/weight` and `layers/<i>/bias`, `i` being
    /// the layer's index in the definition.
    pub(crate) fn write(&self, specs: &[LayerSpec], weights: &mut WeightsWriter) {
        for (index, layer) in parameterised(specs).zip(&self.layers) {
            let prefix = format!("layers/{index}");
            match layer {
                Layer::Dense(linear) => weights.push_linear(&prefix, linear),
                Layer::Conv2d(conv) => {
                    weights.push_tensor(&format!("{prefix}/weight"), conv.weight.val());
                    if let Some(bias) = &conv.bias {
                        weights.push_tensor(&format!("{prefix}/bias"), bias.val());
                    }
                }
                Layer::Embedding(embedding) => {
                    weights.push_tensor(&format!("{prefix}/weight"), embedding.weight.val());
                }
            }
        }
    }

    /// Replaces the parameters with those in `weights`, checking their shapes.
    pub(crate) fn read(
        mut self,
        specs: &[LayerSpec],
        weights: &Weights,
        device: &Device,
    ) -> Result<Self, ModelError> {
        for (index, layer) in parameterised(specs).zip(self.layers.iter_mut()) {
            let prefix = format!("layers/{index}");
            match layer {
                Layer::Dense(linear) => {
                    linear.weight =
                        checked(weights, &format!("{prefix}/weight"), &linear.weight, device)?;
                    if let Some(bias) = &linear.bias {
                        linear.bias =
                            Some(checked(weights, &format!("{prefix}/bias"), bias, device)?);
                    }
                }
                Layer::Conv2d(conv) => {
                    conv.weight =
                        checked(weights, &format!("{prefix}/weight"), &conv.weight, device)?;
                    if let Some(bias) = &conv.bias {
                        conv.bias =
                            Some(checked(weights, &format!("{prefix}/bias"), bias, device)?);
                    }
                }
                Layer::Embedding(embedding) => {
                    embedding.weight = checked(
                        weights,
                        &format!("{prefix}/weight"),
                        &embedding.weight,
                        device,
                    )?;
                }
            }
        }
        Ok(self)
    }
}

/// The tensor `name` from `weights`, which must have the shape of `current`.
fn checked<const D: usize>(
    weights: &Weights,
    name: &str,
    current: &Param<Tensor<D>>,
    device: &Device,
) -> Result<Param<Tensor<D>>, ModelError> {
    let tensor = weights.tensor::<D>(name, device)?;
    match tensor.dims() == current.val().dims() {
        true => Ok(Param::from_tensor(tensor)),
        false => Err(ModelError::Format(format!(
            "{name} has shape {:?}, the layer {:?}",
            tensor.dims(),
            current.val().dims()
        ))),
    }
}

/// The indices of the layers that have parameters.
fn parameterised(specs: &[LayerSpec]) -> impl Iterator<Item = usize> + '_ {
    specs.iter().enumerate().filter_map(|(index, spec)| {
        matches!(
            spec,
            LayerSpec::Dense { .. } | LayerSpec::Conv2D { .. } | LayerSpec::Embedding { .. }
        )
        .then_some(index)
    })
}

/// Runs the layers on a batch and returns the logits: the last layer's softmax or sigmoid is
/// left out, since the loss and the predictions apply it themselves. Dropout acts only when
/// `training`.
pub fn forward(
    network: &Network,
    specs: &[LayerSpec],
    input: Activations,
    training: bool,
) -> Tensor<2> {
    let mut x = input;
    let mut params = network.layers.iter();
    let last = specs.len().saturating_sub(1);
    for (index, spec) in specs.iter().enumerate() {
        x = match (spec, x) {
            (LayerSpec::Dense { .. }, Activations::Flat(x)) => match params.next() {
                Some(Layer::Dense(linear)) => Activations::Flat(linear.forward(x)),
                _ => unreachable!("a Dense layer has Linear parameters. This is a bug."),
            },
            (
                LayerSpec::Conv2D {
                    kernel_size,
                    strides,
                    padding,
                    ..
                },
                Activations::Image(x),
            ) => match params.next() {
                Some(Layer::Conv2d(conv)) => {
                    let [_, _, height, width] = x.dims();
                    let options = ConvOptions {
                        relu: spec.fuses_activation(),
                        ..ConvOptions::keras(
                            *padding == Padding::Same,
                            kernel_size.dims(),
                            strides.dims(),
                            [height, width],
                        )
                    };
                    Activations::Image(conv2d(conv, x, options))
                }
                _ => unreachable!("a Conv2D layer has Conv2d parameters. This is a bug."),
            },
            (LayerSpec::Embedding { .. }, Activations::Ids(ids)) => match params.next() {
                Some(Layer::Embedding(embedding)) => Activations::Sequence(embedding.forward(ids)),
                _ => unreachable!("an Embedding layer has Embedding parameters. This is a bug."),
            },
            (LayerSpec::MaxPool2D { pool_size, strides }, Activations::Image(x)) => {
                let window = Window {
                    size: pool_size.dims(),
                    stride: strides.unwrap_or(*pool_size).dims(),
                };
                Activations::Image(max_pool2d(x, window))
            }
            (LayerSpec::Dropout { rate }, x) if training && *rate > 0.0 => match x {
                Activations::Flat(x) => Activations::Flat(dropout(x, *rate)),
                Activations::Sequence(x) => Activations::Sequence(dropout(x, *rate)),
                Activations::Image(x) => Activations::Image(dropout(x, *rate)),
                ids @ Activations::Ids(_) => ids,
            },
            (LayerSpec::Dropout { .. }, x) => x,
            (LayerSpec::Flatten, Activations::Image(x)) => {
                let [batch, channels, height, width] = x.dims();
                Activations::Flat(x.reshape([batch, channels * height * width]))
            }
            (LayerSpec::Flatten, Activations::Sequence(x)) => {
                let [batch, length, dim] = x.dims();
                Activations::Flat(x.reshape([batch, length * dim]))
            }
            (LayerSpec::GlobalAveragePooling1D, Activations::Sequence(x)) => {
                let [batch, _, dim] = x.dims();
                Activations::Flat(x.mean_dim(1).reshape([batch, dim]))
            }
            (_, x) => x,
        };
        let activation = spec.activation();
        let is_output =
            index == last && matches!(activation, Activation::Softmax | Activation::Sigmoid);
        if activation != Activation::Linear && !is_output && !spec.fuses_activation() {
            x = activate(x, activation);
        }
    }
    match x {
        Activations::Flat(logits) => logits,
        _ => unreachable!("plan() ends every network in a vector. This is a bug."),
    }
}

/// Applies `activation`; softmax runs over the features (the channels of an image).
fn activate(x: Activations, activation: Activation) -> Activations {
    fn apply<const D: usize>(x: Tensor<D>, activation: Activation, features: usize) -> Tensor<D> {
        match activation {
            Activation::Linear => x,
            Activation::Relu => relu(x),
            Activation::Sigmoid => sigmoid(x),
            Activation::Tanh => tanh(x),
            Activation::Softmax => softmax(x, features),
        }
    }
    match x {
        Activations::Flat(x) => Activations::Flat(apply(x, activation, 1)),
        Activations::Sequence(x) => Activations::Sequence(apply(x, activation, 2)),
        Activations::Image(x) => Activations::Image(apply(x, activation, 1)),
        ids @ Activations::Ids(_) => ids,
    }
}

/// Inverted dropout: zeroes a `rate` fraction and scales the rest by `1 / (1 - rate)`.
///
/// On the CPU the mask comes from small fast generators seeded from burn's, so the run's seed
/// still fixes it, one per block of elements so that blocks fill in parallel: burn draws every
/// element through ChaCha, which took a tenth of an MNIST training step. On a GPU burn draws the
/// mask where the tensor lives, which spares a round trip through host memory each step.
fn dropout<const D: usize>(x: Tensor<D>, rate: f64) -> Tensor<D> {
    const BLOCK: usize = 1 << 16;
    let device = x.device();
    let keep = 1.0 - rate;
    if !on_flex(&x) {
        let mask = Tensor::<D>::random(x.shape(), Distribution::Bernoulli(keep), &device);
        return x * mask.mul_scalar(1.0 / keep);
    }
    let parts = Tensor::<1>::random([2], Distribution::Default, &device).into_data();
    let seed = parts.iter::<f32>().fold(0_u64, |seed, part| {
        (seed << 24) | (part * 16_777_216.0) as u64
    });
    let threshold = (keep * 4_294_967_296.0) as u64;
    let scale = (1.0 / keep) as f32;
    let mut mask: Vec<f32> = zeros(x.shape().num_elements());
    mask.par_chunks_mut(BLOCK)
        .enumerate()
        .for_each(|(block, mask)| {
            let mut generator = SmallRng::seed_from_u64(seed.wrapping_add(block as u64));
            for kept in mask {
                if u64::from(generator.next_u32()) < threshold {
                    *kept = scale;
                }
            }
        });
    let mask = TensorData::new(mask, x.dims());
    x * Tensor::from_data(mask, &device)
}

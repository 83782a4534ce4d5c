//! The optimizers a Sequential definition can name, with Keras' field names, and Adadelta, which
//! burn lacks.

use burn::optim::{
    AdaGradConfig, AdamConfig, ModuleOptimizer, Optimizer, RecordState, SgdConfig, StateSink,
    StateSource, momentum::MomentumConfig,
};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// An optimizer and its settings. Defaults are Keras' except Adadelta's learning rate, which is
/// 1.0 as in the Adadelta paper and Keras before TensorFlow 2 (the MNIST example's setting).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum OptimizerSpec {
    /// Stochastic gradient descent, with optional (Nesterov) momentum.
    #[serde(alias = "sgd")]
    SGD {
        /// Step size.
        #[serde(default = "defaults::sgd_rate")]
        learning_rate: f64,
        /// Momentum factor; 0 for plain SGD.
        #[serde(default)]
        momentum: f64,
        /// Nesterov momentum.
        #[serde(default)]
        nesterov: bool,
    },
    /// Adam.
    #[serde(alias = "adam")]
    Adam {
        /// Step size.
        #[serde(default = "defaults::adam_rate")]
        learning_rate: f64,
        /// Decay of the first moment.
        #[serde(default = "defaults::beta_1")]
        beta_1: f32,
        /// Decay of the second moment.
        #[serde(default = "defaults::beta_2")]
        beta_2: f32,
        /// Added to the denominator.
        #[serde(default = "defaults::epsilon")]
        epsilon: f32,
    },
    /// Adadelta (Zeiler 2012).
    #[serde(alias = "adadelta")]
    Adadelta {
        /// Factor on the update.
        #[serde(default = "defaults::adadelta_rate")]
        learning_rate: f64,
        /// Decay of the running averages.
        #[serde(default = "defaults::rho")]
        rho: f32,
        /// Added inside the square roots.
        #[serde(default = "defaults::epsilon")]
        epsilon: f32,
    },
    /// Adagrad.
    #[serde(alias = "adagrad")]
    Adagrad {
        /// Step size.
        #[serde(default = "defaults::adagrad_rate")]
        learning_rate: f64,
        /// Added to the denominator.
        #[serde(default = "defaults::epsilon")]
        epsilon: f32,
    },
}

mod defaults {
    pub fn sgd_rate() -> f64 {
        0.01
    }
    pub fn adam_rate() -> f64 {
        0.001
    }
    pub fn adadelta_rate() -> f64 {
        1.0
    }
    pub fn adagrad_rate() -> f64 {
        0.01
    }
    pub fn beta_1() -> f32 {
        0.9
    }
    pub fn beta_2() -> f32 {
        0.999
    }
    pub fn rho() -> f32 {
        0.95
    }
    pub fn epsilon() -> f32 {
        1e-7
    }
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        OptimizerSpec::Adam {
            learning_rate: defaults::adam_rate(),
            beta_1: defaults::beta_1(),
            beta_2: defaults::beta_2(),
            epsilon: defaults::epsilon(),
        }
    }
}

impl OptimizerSpec {
    /// The step size.
    pub fn learning_rate(&self) -> f64 {
        match self {
            OptimizerSpec::SGD { learning_rate, .. }
            | OptimizerSpec::Adam { learning_rate, .. }
            | OptimizerSpec::Adadelta { learning_rate, .. }
            | OptimizerSpec::Adagrad { learning_rate, .. } => *learning_rate,
        }
    }

    /// Replaces the step size (a `--learning_rate` argument or a tuning trial's value).
    pub fn set_learning_rate(&mut self, rate: f64) {
        match self {
            OptimizerSpec::SGD { learning_rate, .. }
            | OptimizerSpec::Adam { learning_rate, .. }
            | OptimizerSpec::Adadelta { learning_rate, .. }
            | OptimizerSpec::Adagrad { learning_rate, .. } => *learning_rate = rate,
        }
    }

    /// The burn optimizer for a whole module.
    pub fn init(&self) -> ModuleOptimizer {
        match *self {
            OptimizerSpec::SGD {
                momentum, nesterov, ..
            } => SgdConfig::new()
                .with_momentum((momentum > 0.0).then(|| {
                    MomentumConfig::new()
                        .with_momentum(momentum)
                        .with_dampening(0.0)
                        .with_nesterov(nesterov)
                }))
                .init(),
            OptimizerSpec::Adam {
                beta_1,
                beta_2,
                epsilon,
                ..
            } => AdamConfig::new()
                .with_beta_1(beta_1)
                .with_beta_2(beta_2)
                .with_epsilon(epsilon)
                .init(),
            OptimizerSpec::Adadelta { rho, epsilon, .. } => {
                ModuleOptimizer::from(Adadelta { rho, epsilon })
            }
            OptimizerSpec::Adagrad { epsilon, .. } => {
                AdaGradConfig::new().with_epsilon(epsilon).init()
            }
        }
    }
}

/// Adadelta: each step is the gradient scaled by `sqrt(E[dx²] + ε) / sqrt(E[g²] + ε)`, both
/// running averages decaying by `rho`; the learning rate multiplies the step.
#[derive(Debug, Clone)]
pub struct Adadelta {
    rho: f32,
    epsilon: f32,
}

/// Adadelta's running averages for one parameter.
#[derive(Clone)]
pub struct AdadeltaState<const D: usize> {
    square_gradients: Tensor<D>,
    square_updates: Tensor<D>,
}

impl Optimizer for Adadelta {
    type State<const D: usize> = AdadeltaState<D>;

    fn step<const D: usize>(
        &self,
        learning_rate: f64,
        tensor: Tensor<D>,
        gradient: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let (square_gradients, square_updates) = match state {
            Some(state) => (state.square_gradients, state.square_updates),
            None => (gradient.zeros_like(), gradient.zeros_like()),
        };
        let keep = 1.0 - self.rho;
        let square_gradients = square_gradients * self.rho + gradient.clone().square() * keep;
        let update = gradient
            * (square_updates.clone().add_scalar(self.epsilon).sqrt()
                / square_gradients.clone().add_scalar(self.epsilon).sqrt());
        let square_updates = square_updates * self.rho + update.clone().square() * keep;
        let state = AdadeltaState {
            square_gradients,
            square_updates,
        };
        (tensor - update * learning_rate, Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        AdadeltaState {
            square_gradients: state.square_gradients.to_device(device),
            square_updates: state.square_updates.to_device(device),
        }
    }
}

const SQUARE_GRADIENTS: &str = "square_gradients";
const SQUARE_UPDATES: &str = "square_updates";

impl<const D: usize> RecordState for AdadeltaState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        out.push_tensor(prefix, SQUARE_GRADIENTS, self.square_gradients.to_data());
        out.push_tensor(prefix, SQUARE_UPDATES, self.square_updates.to_data());
    }

    fn state_unflatten(prefix: &str, source: &mut StateSource, device: &Device) -> Option<Self> {
        Some(Self {
            square_gradients: Tensor::from_data(
                source.take_tensor(prefix, SQUARE_GRADIENTS)?,
                device,
            ),
            square_updates: Tensor::from_data(source.take_tensor(prefix, SQUARE_UPDATES)?, device),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adadelta's first steps on f(x) = x², by hand: with both averages at zero, the first
    /// update is g * sqrt(ε) / sqrt((1 - ρ) g² + ε).
    #[test]
    fn adadelta_follows_the_paper() {
        let device = Device::flex();
        let optimizer = Adadelta {
            rho: 0.9,
            epsilon: 1e-6,
        };
        let x = Tensor::<1>::from_floats([3.0], &device);
        let gradient = x.clone() * 2.0;
        let (x1, state) = optimizer.step(1.0, x, gradient, None);
        let g = 6.0f64;
        let update = g * 1e-6f64.sqrt() / (0.1 * g * g + 1e-6).sqrt();
        let got = f64::from(x1.clone().into_scalar::<f32>());
        assert!((got - (3.0 - update)).abs() < 1e-6, "{got}");
        let state = state.unwrap();
        let square_updates = f64::from(state.square_updates.clone().into_scalar::<f32>());
        assert!((square_updates - 0.1 * update * update).abs() < 1e-9);
        let mut sink = StateSink::default();
        state.state_flatten("7", &mut sink);
        assert_eq!(sink.tensors.len(), 2);
    }
}

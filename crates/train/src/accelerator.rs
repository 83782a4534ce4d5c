//! Where training runs: burn's CPU backend (`flex`), or an NVIDIA GPU through burn's CUDA backend
//! in a build with the `cuda` feature. Exported models always come back to the CPU, where Kiln
//! serves them.

use burn::prelude::*;

use crate::TrainError;

/// The device a run trains on, as `--device` names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Accelerator {
    /// The CPU (`cpu`), the default.
    #[default]
    Cpu,
    /// The CUDA GPU of this index (`cuda`, `cuda:1`, `gpu`).
    Cuda(usize),
}

impl Accelerator {
    /// Parses `cpu`, `cuda`, `cuda:N` or `gpu`.
    pub fn parse(text: &str) -> Result<Self, TrainError> {
        match text {
            "cpu" => Ok(Accelerator::Cpu),
            "cuda" | "gpu" => Ok(Accelerator::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|index| index.parse().ok())
                .map(Accelerator::Cuda)
                .ok_or_else(|| {
                    TrainError::Config(format!(
                        "--device must be cpu, cuda or cuda:N, got {other:?}"
                    ))
                }),
        }
    }

    /// The device to train on, with autodiff.
    pub fn training_device(self) -> Result<Device, TrainError> {
        match self {
            Accelerator::Cpu => Ok(Device::flex().autodiff()),
            #[cfg(feature = "cuda")]
            Accelerator::Cuda(index) => Ok(Device::cuda(index).autodiff()),
            #[cfg(not(feature = "cuda"))]
            Accelerator::Cuda(_) => Err(TrainError::Config(
                "--device cuda needs a Kiln built with the cuda feature \
                 (cargo build --release --features cuda)"
                    .into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_and_refuses_cuda_without_the_feature() {
        assert_eq!(Accelerator::parse("cuda:1").unwrap(), Accelerator::Cuda(1));
        assert_eq!(Accelerator::parse("gpu").unwrap(), Accelerator::Cuda(0));
        assert!(
            Accelerator::parse("tpu")
                .unwrap_err()
                .to_string()
                .contains("--device")
        );
        if cfg!(not(feature = "cuda")) {
            let error = Accelerator::Cuda(0)
                .training_device()
                .unwrap_err()
                .to_string();
            assert!(error.contains("--features cuda"), "{error}");
        }
    }
}

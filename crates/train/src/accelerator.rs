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
            Accelerator::Cuda(index) => {
                check_cuda(index)?;
                Ok(Device::cuda(index).autodiff())
            }
            #[cfg(not(feature = "cuda"))]
            Accelerator::Cuda(_) => Err(TrainError::Config(
                "--device cuda needs a Kiln built with the cuda feature \
                 (cargo build --release --features cuda)"
                    .into(),
            )),
        }
    }
}

/// Checks that the CUDA driver and NVRTC load and that GPU `index` exists: burn's CUDA backend
/// would otherwise panic on a worker thread at the first tensor.
#[cfg(feature = "cuda")]
fn check_cuda(index: usize) -> Result<(), TrainError> {
    use cudarc::{driver, nvrtc};
    // SAFETY: loading a library runs only its initialisers; these are NVIDIA's driver and NVRTC.
    let (has_driver, has_nvrtc) = unsafe {
        (
            driver::sys::is_culib_present(),
            nvrtc::sys::is_culib_present(),
        )
    };
    if !has_driver {
        return Err(TrainError::Config(
            "--device cuda: the NVIDIA driver (libcuda.so) could not be loaded".into(),
        ));
    }
    if !has_nvrtc {
        return Err(TrainError::Config(
            "--device cuda: NVRTC (libnvrtc.so, from the CUDA toolkit or the \
             nvidia-cuda-nvrtc wheel) could not be loaded; add its folder to LD_LIBRARY_PATH"
                .into(),
        ));
    }
    let count = driver::result::init()
        .and_then(|()| driver::result::device::get_count())
        .map_err(|error| TrainError::Config(format!("--device cuda: {error}")))?;
    if index >= count as usize {
        return Err(TrainError::Config(format!(
            "--device cuda:{index}: this machine has {count} CUDA GPU(s)"
        )));
    }
    Ok(())
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

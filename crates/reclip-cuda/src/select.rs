use reclip_core::{Device, Result};
use std::str::FromStr;

/// What `--device` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    Cuda,
    /// The first CUDA device if there is one, else the CPU.
    Auto,
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda),
            "auto" => Ok(DeviceChoice::Auto),
            other => Err(format!("unknown device '{other}' (expected cpu, cuda or auto)")),
        }
    }
}

/// CUDA device `ordinal`, or an error that starts with "no CUDA device" and
/// says why (no driver, no GPU, or a build without the `cuda` feature).
pub fn cuda_device(ordinal: usize) -> Result<Device> {
    #[cfg(feature = "cuda")]
    {
        let backend = crate::CudaBackend::new(ordinal, false)?;
        Ok(Device::Gpu(reclip_core::GpuDevice::new(std::sync::Arc::new(backend))))
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = ordinal;
        Err(reclip_core::Error::Device("no CUDA device: reclip was built without the `cuda` feature".into()))
    }
}

/// Resolves a device choice. `Auto` falls back to the CPU when no CUDA device
/// can be opened; `Cuda` reports why it cannot.
pub fn select_device(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda => cuda_device(0),
        DeviceChoice::Auto => Ok(cuda_device(0).unwrap_or(Device::Cpu)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("cpu".parse::<DeviceChoice>(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda));
        assert_eq!("auto".parse::<DeviceChoice>(), Ok(DeviceChoice::Auto));
        assert!("tpu".parse::<DeviceChoice>().unwrap_err().contains("tpu"));
    }
}

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

/// What a device choice resolved to.
pub struct Selection {
    pub device: Device,
    /// Set when `auto` chose the CPU although a CUDA driver is installed:
    /// why the GPU could not be used (the CLI prints it).
    pub cpu_fallback: Option<String>,
}

/// Whether a CUDA driver library is installed (always false in a build
/// without the `cuda` feature, which cannot use one).
pub fn driver_installed() -> bool {
    #[cfg(feature = "cuda")]
    {
        crate::backend::driver_installed()
    }
    #[cfg(not(feature = "cuda"))]
    false
}

/// CUDA device `ordinal`, or an error saying why not: "no CUDA device: …"
/// (no driver, or a build without the `cuda` feature) or "CUDA device N
/// cannot be used: …" (a driver, but the device does not open).
pub fn cuda_device(ordinal: usize, tf32: bool) -> Result<Device> {
    #[cfg(feature = "cuda")]
    {
        let backend = crate::CudaBackend::new(ordinal, crate::CudaOptions { tf32, poison: false })?;
        Ok(Device::Gpu(reclip_core::GpuDevice::new(std::sync::Arc::new(backend))))
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (ordinal, tf32);
        Err(reclip_core::Error::Device("no CUDA device: reclip was built without the `cuda` feature".into()))
    }
}

/// Resolves a device choice; a GPU is CUDA device `ordinal`. `Cuda` is an
/// error when the device cannot be opened; `Auto` then uses the CPU, saying
/// why when a driver is installed (a GPU that should work but does not must
/// not go unnoticed).
pub fn select_device(choice: DeviceChoice, ordinal: usize, tf32: bool) -> Result<Selection> {
    let device = match choice {
        DeviceChoice::Cpu => Device::Cpu,
        DeviceChoice::Cuda => cuda_device(ordinal, tf32)?,
        DeviceChoice::Auto => match cuda_device(ordinal, tf32) {
            Ok(gpu) => gpu,
            Err(e) => {
                let cpu_fallback = driver_installed().then(|| e.to_string());
                return Ok(Selection { device: Device::Cpu, cpu_fallback });
            }
        },
    };
    Ok(Selection { device, cpu_fallback: None })
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

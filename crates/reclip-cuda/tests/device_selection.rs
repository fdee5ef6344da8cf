//! On a machine without a GPU (or a build without `cuda`), asking for CUDA is
//! a clean error and `auto` uses the CPU; on a GPU machine both give the GPU.

use reclip_core::Device;
use reclip_cuda::{DeviceChoice, cuda_device, select_device};

#[test]
fn cuda_is_reported_cleanly_and_auto_falls_back() {
    match cuda_device(0) {
        Ok(gpu) => {
            assert!(gpu.name().starts_with("cuda:0"), "{}", gpu.name());
            assert!(matches!(select_device(DeviceChoice::Auto).unwrap(), Device::Gpu(_)));
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("no CUDA device"), "unexpected message: {msg}");
            assert!(select_device(DeviceChoice::Cuda).is_err());
            assert!(select_device(DeviceChoice::Auto).unwrap().is_cpu());
        }
    }
    assert!(select_device(DeviceChoice::Cpu).unwrap().is_cpu());
}

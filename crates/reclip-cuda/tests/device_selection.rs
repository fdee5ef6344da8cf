//! Without a CUDA driver (or in a build without `cuda`), asking for CUDA is a
//! clean error and `auto` quietly uses the CPU. With a driver installed the
//! device must open: a failure there is what this test exists to catch, not
//! a reason to fall back.

use reclip_core::Device;
use reclip_cuda::{DeviceChoice, cuda_device, driver_installed, select_device};

#[test]
fn an_installed_driver_opens_its_device_and_none_falls_back_quietly() {
    match cuda_device(0, false) {
        Ok(gpu) => {
            assert!(gpu.name().starts_with("cuda:0"), "{}", gpu.name());
            let auto = select_device(DeviceChoice::Auto, 0, false).unwrap();
            assert!(matches!(auto.device, Device::Gpu(_)) && auto.cpu_fallback.is_none());
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!driver_installed(), "a CUDA driver is installed but device 0 does not open: {msg}");
            assert!(msg.contains("no CUDA device"), "unexpected message: {msg}");
            assert!(select_device(DeviceChoice::Cuda, 0, false).is_err());
            let auto = select_device(DeviceChoice::Auto, 0, false).unwrap();
            assert!(auto.device.is_cpu());
            assert_eq!(auto.cpu_fallback, None, "no driver: nothing to explain");
        }
    }
    assert!(select_device(DeviceChoice::Cpu, 0, false).unwrap().device.is_cpu());
}

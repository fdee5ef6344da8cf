//! Graphs on the emulator: recorded work runs only when replayed, reads what
//! the host last wrote into the buffers it was recorded with, and gives the
//! results plain launches give; what CUDA refuses while recording is refused.

use reclip_core::{DType, Device, GpuDevice, Tensor, rng};
use reclip_emu::Emulator;
use std::sync::Arc;

fn device() -> (Device, GpuDevice) {
    let gpu = GpuDevice::new(Arc::new(Emulator::new(3)));
    (Device::Gpu(gpu.clone()), gpu)
}

fn random(dims: [usize; 2], seed: u64) -> Tensor {
    Tensor::randn(dims, 0.0, 1.0, DType::F32, &Device::Cpu, &mut rng(seed)).unwrap()
}

/// out = relu(x·w)·2 + x·w, through kernels and a GEMM that allocate inside.
fn compute(x: &Tensor, w: &Tensor) -> Tensor {
    let z = x.matmul(w).unwrap();
    z.relu().unwrap().scale(2.0).unwrap().add(&z).unwrap()
}

fn write(gpu: &GpuDevice, t: &mut Tensor, host: &Tensor) {
    let bytes: Vec<u8> = host.to_vec_f32().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect();
    gpu.backend().write(t.gpu_ptr_mut().unwrap(), &bytes).unwrap();
}

#[test]
fn a_replayed_graph_computes_what_plain_launches_compute_from_the_latest_inputs() {
    let (device, gpu) = device();
    let w = random([12, 7], 1).to_device(&device).unwrap();
    let mut x = random([5, 12], 2).to_device(&device).unwrap();
    let mut out = Tensor::empty([5, 7], DType::F32, &device).unwrap();
    let out_ptr = out.gpu_ptr_mut().unwrap();
    let graph = gpu
        .capture(|| {
            let y = compute(&x, &w);
            gpu.backend().copy(y.gpu_ptr()?, out_ptr, 5 * 7 * 4)
        })
        .unwrap();
    assert!(out.to_vec_f32().unwrap().iter().all(|v| v.is_nan()), "recording ran the work");
    for seed in [2, 3, 4] {
        let host = random([5, 12], seed);
        write(&gpu, &mut x, &host);
        graph.replay().unwrap();
        let plain = compute(&host.to_device(&device).unwrap(), &w);
        assert_eq!(out.to_vec_f32().unwrap(), plain.to_vec_f32().unwrap(), "inputs of seed {seed}");
    }
}

#[test]
fn what_a_graph_cannot_hold_is_refused() {
    let (device, gpu) = device();
    let x = random([4, 4], 5).to_device(&device).unwrap();
    let err = |r: reclip_core::Result<Box<dyn reclip_core::DeviceGraph>>| r.err().expect("refused").to_string();

    let host_copy = err(gpu.capture(|| x.to_vec_f32().map(drop)));
    assert!(host_copy.contains("a device-to-host copy while recording a graph"), "{host_copy}");
    let upload = err(gpu.capture(|| random([2, 2], 6).to_device(&device).map(drop)));
    assert!(upload.contains("a host-to-device copy while recording"), "{upload}");

    let mut kept = None;
    let escaped = err(gpu.capture(|| {
        kept = Some(x.scale(3.0)?);
        Ok(())
    }));
    assert!(escaped.contains("1 allocation made while recording outlives it"), "{escaped}");
    // The escaped tensor is its owner's: usable, and freed normally.
    assert_eq!(kept.take().unwrap().to_vec_f32().unwrap().len(), 16);

    let mut old = Some(x.scale(2.0).unwrap());
    let freed = err(gpu.capture(|| {
        drop(old.take());
        Ok(())
    }));
    assert!(freed.contains("memory allocated before the recording was freed in it"), "{freed}");

    // The device works as before after each refusal.
    assert_eq!(x.scale(1.0).unwrap().to_vec_f32().unwrap(), x.to_vec_f32().unwrap());
}

//! Every kernel keeps its data in registers on every target: no spills, no
//! local-memory stack frame; the fatbins are embedded as the driver reads
//! them. Runs in builds with the `cuda` feature (CI builds them with the
//! pinned nvcc).
#![cfg(feature = "cuda")]

use reclip_cuda::kernels::{FATBINS, PTXAS_REPORT};
use reclip_cuda::ptxas::parse;

#[test]
fn no_kernel_spills_or_uses_a_stack_frame() {
    let kernels = parse(PTXAS_REPORT);
    for target in ["sm_80", "sm_90"] {
        assert!(kernels.iter().any(|k| k.target == target), "no kernel compiled for {target}:\n{PTXAS_REPORT}");
    }
    let dirty: Vec<String> = kernels
        .iter()
        .filter(|k| !k.is_clean())
        .map(|k| {
            format!(
                "{} ({}): {} B stack, {} B spill stores, {} B spill loads",
                k.function, k.target, k.stack_frame_bytes, k.spill_store_bytes, k.spill_load_bytes
            )
        })
        .collect();
    assert!(dirty.is_empty(), "kernels with spills or a stack frame:\n{}", dirty.join("\n"));
}

#[test]
fn fatbins_are_embedded_eight_byte_aligned() {
    assert!(!FATBINS.is_empty());
    for (file, image) in FATBINS {
        assert_eq!(image.0.as_ptr() as usize % 8, 0, "{file}.fatbin is not 8-byte aligned");
        assert!(image.0.len() > 16, "{file}.fatbin is empty");
    }
}

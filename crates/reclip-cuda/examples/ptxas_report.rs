//! Prints the resources ptxas reported for every kernel of this build, one
//! line per kernel and target. Run with `tools/ptxas-report.sh`.

fn main() {
    #[cfg(feature = "cuda")]
    {
        let kernels = reclip_cuda::ptxas::parse(reclip_cuda::kernels::PTXAS_REPORT);
        println!("{:<40} {:<6} {:>5} {:>8} {:>7} {:>7}", "kernel", "target", "regs", "smem B", "spill B", "stack B");
        for k in kernels {
            println!(
                "{:<40} {:<6} {:>5} {:>8} {:>7} {:>7}",
                k.function,
                k.target,
                k.registers,
                k.shared_bytes,
                k.spill_store_bytes + k.spill_load_bytes,
                k.stack_frame_bytes
            );
        }
    }
    #[cfg(not(feature = "cuda"))]
    {
        eprintln!("built without the `cuda` feature: no kernels were compiled (see tools/ptxas-report.sh)");
        std::process::exit(2);
    }
}

//! Reads the `ptxas -v` report that the build keeps for every kernel.

/// What ptxas reported for one function on one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelResources {
    pub function: String,
    pub target: String,
    pub registers: u32,
    pub stack_frame_bytes: u32,
    pub spill_store_bytes: u32,
    pub spill_load_bytes: u32,
    pub shared_bytes: u32,
}

impl KernelResources {
    /// True when the function keeps everything in registers: no spills and
    /// no local-memory stack frame.
    pub fn is_clean(&self) -> bool {
        self.stack_frame_bytes == 0 && self.spill_store_bytes == 0 && self.spill_load_bytes == 0
    }
}

fn number_before(text: &str, unit: &str) -> Option<u32> {
    let end = text.find(unit)?;
    text[..end].split_whitespace().last()?.parse().ok()
}

/// Parses nvcc's `-Xptxas -v` output. Each function appears once per target
/// it was compiled for ("Compiling entry function 'f' for 'sm_90'").
pub fn parse(report: &str) -> Vec<KernelResources> {
    let mut out: Vec<KernelResources> = Vec::new();
    let mut target = String::new();
    let mut lines = report.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            if let Some(t) = rest.split("for '").nth(1) {
                target = t.trim_end_matches('\'').to_string();
            }
        } else if let Some(name) = line.split("Function properties for ").nth(1) {
            let props = lines.next().unwrap_or_default();
            out.push(KernelResources {
                function: name.trim().to_string(),
                target: target.clone(),
                registers: 0,
                stack_frame_bytes: number_before(props, "bytes stack frame").unwrap_or(0),
                spill_store_bytes: number_before(props, "bytes spill stores").unwrap_or(0),
                spill_load_bytes: number_before(props, "bytes spill loads").unwrap_or(0),
                shared_bytes: 0,
            });
        } else if line.contains(": Used ")
            && let Some(last) = out.last_mut()
        {
            last.registers = number_before(line, "registers").unwrap_or(0);
            last.shared_bytes = number_before(line, "bytes smem").unwrap_or(0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
ptxas info    : Compiling entry function 'warp_sum_f32' for 'sm_80'
ptxas info    : Function properties for warp_sum_f32
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 14 registers, used 1 barriers, 128 bytes smem, 372 bytes cmem[0]
ptxas info    : Compiling entry function 'big_f32' for 'sm_90'
ptxas info    : Function properties for big_f32
    24 bytes stack frame, 16 bytes spill stores, 8 bytes spill loads
ptxas info    : Used 255 registers, used 0 barriers
";

    #[test]
    fn reads_registers_spills_and_targets() {
        let k = parse(SAMPLE);
        assert_eq!(k.len(), 2);
        assert_eq!(
            k[0],
            KernelResources {
                function: "warp_sum_f32".into(),
                target: "sm_80".into(),
                registers: 14,
                stack_frame_bytes: 0,
                spill_store_bytes: 0,
                spill_load_bytes: 0,
                shared_bytes: 128,
            }
        );
        assert!(k[0].is_clean());
        assert_eq!((k[1].target.as_str(), k[1].registers, k[1].spill_store_bytes), ("sm_90", 255, 16));
        assert!(!k[1].is_clean());
    }
}

//! How much memory this process may use on the host: the smallest of the
//! machine's RAM, the cgroup's limit (a container's memory) and the address
//! space limit (`ulimit -v`), any of which makes a larger allocation fail.
//! Read from Linux's /proc and /sys; elsewhere, or where none of them can be
//! read, the amount is unknown.

use std::path::Path;

/// The smallest limit found, or None when none could be read.
pub(super) fn host_memory_bytes() -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(Path::new(path)).ok();
    [
        read("/proc/meminfo").as_deref().and_then(mem_total),
        read("/sys/fs/cgroup/memory.max").as_deref().and_then(cgroup_limit),
        // cgroup v1: a huge number when unlimited, which the RAM then undercuts.
        read("/sys/fs/cgroup/memory/memory.limit_in_bytes").as_deref().and_then(cgroup_limit),
        read("/proc/self/limits").as_deref().and_then(address_space_limit),
    ]
    .into_iter()
    .flatten()
    .min()
}

/// `MemTotal:       24731184 kB` of /proc/meminfo, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let mut words = line.split_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => kib.checked_mul(1024),
        _ => None,
    }
}

/// A cgroup memory limit file: a number of bytes, or `max` (no limit).
fn cgroup_limit(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The soft limit of `Max address space` in /proc/self/limits, in bytes, when
/// it is not `unlimited`.
fn address_space_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find_map(|l| l.strip_prefix("Max address space"))?;
    line.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_total_is_read_in_bytes() {
        let meminfo = "MemTotal:       24731184 kB\nMemFree:        10644776 kB\n";
        assert_eq!(mem_total(meminfo), Some(24731184 * 1024));
        assert_eq!(mem_total("MemFree: 10 kB\n"), None);
        assert_eq!(mem_total("MemTotal: lots\n"), None);
    }

    #[test]
    fn cgroup_limits_are_numbers_or_none() {
        assert_eq!(cgroup_limit("8589934592\n"), Some(8589934592));
        assert_eq!(cgroup_limit("max\n"), None);
    }

    #[test]
    fn the_address_space_limit_is_the_soft_one() {
        let header = "Limit                     Soft Limit           Hard Limit           Units     \n";
        let unlimited = format!("{header}Max address space         unlimited            unlimited            bytes\n");
        assert_eq!(address_space_limit(&unlimited), None);
        let limited = format!("{header}Max address space         4294967296           8589934592           bytes\n");
        assert_eq!(address_space_limit(&limited), Some(4294967296));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_machine_has_a_known_amount_within_its_ram() {
        let bytes = host_memory_bytes().expect("Linux has /proc/meminfo");
        let ram = mem_total(&std::fs::read_to_string("/proc/meminfo").unwrap()).unwrap();
        assert!(bytes > 0 && bytes <= ram, "{bytes} of {ram}");
        // Under `ulimit -v` (as the hostile-input suite runs) the limit is the answer.
        if let Some(limit) = address_space_limit(&std::fs::read_to_string("/proc/self/limits").unwrap()) {
            assert!(bytes <= limit, "{bytes} above the address space limit {limit}");
        }
    }
}

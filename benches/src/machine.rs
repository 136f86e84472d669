//! What machine a figure was measured on, and how much memory the process holds.

use std::fs;

/// One line naming the machine: logical CPUs, the CPU model from `/proc/cpuinfo`, and total memory.
pub fn describe() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let memory = status_kib("/proc/meminfo", "MemTotal:").map_or_else(
        || "unknown memory".to_owned(),
        |kib| format!("{} GiB RAM", kib >> 20),
    );
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("nproc {cpus}, {model}, {memory}, Linux {kernel}")
}

/// The 1-minute load average (`/proc/loadavg`): on a shared machine, how many other runnable threads a
/// measurement competed with.
pub fn load_average() -> Option<f64> {
    fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// This process's resident set size, in bytes (`VmRSS` of `/proc/self/status`); `None` off Linux.
pub fn resident_bytes() -> Option<u64> {
    status_kib("/proc/self/status", "VmRSS:").map(|kib| kib * 1024)
}

/// A `kB` field of a `/proc` status-style file.
fn status_kib(path: &str, field: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

//! CPU time spent by this process (by kind of thread) and by the bench's broker process,
//! read from `/proc`: how many cores a stage kept busy, and which of its threads did the
//! work. Linux only; elsewhere the figures are absent, not invented.

use std::collections::BTreeMap;
use std::time::Instant;

/// `/proc` reports CPU time in clock ticks of 1/100 s on Linux (`USER_HZ`, fixed by the
/// kernel's ABI whatever the kernel's own tick).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds used so far: the whole process, each of its live threads grouped by kind,
/// and the broker process when it is a child of the bench.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    at: Instant,
    process: f64,
    threads: BTreeMap<&'static str, f64>,
    broker: Option<f64>,
}

/// What happened between two snapshots.
#[derive(Debug, Clone)]
pub struct CpuUse {
    pub wall: f64,
    /// Cores kept busy by the whole process (CPU seconds / wall seconds).
    pub process_cores: f64,
    /// Cores by kind of thread; threads that ended in between (a chunk's decoding
    /// helpers) are counted under "short-lived threads".
    pub by_kind: Vec<(&'static str, f64)>,
    /// Cores kept busy by the broker's process, when it is the bench's child.
    pub broker_cores: Option<f64>,
}

impl CpuSnapshot {
    pub fn take(broker_pid: Option<u32>) -> CpuSnapshot {
        let at = Instant::now();
        let process = stat_seconds("/proc/self/stat").unwrap_or(0.0);
        let mut threads = BTreeMap::new();
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                if let Some((name, seconds)) = stat(task.path().join("stat")) {
                    *threads.entry(kind(&name)).or_default() += seconds;
                }
            }
        }
        let broker = broker_pid.and_then(|pid| stat_seconds(format!("/proc/{pid}/stat")));
        CpuSnapshot {
            at,
            process,
            threads,
            broker,
        }
    }

    /// The CPU used since `earlier`, in cores.
    pub fn since(&self, earlier: &CpuSnapshot) -> CpuUse {
        let wall = self.at.duration_since(earlier.at).as_secs_f64().max(1e-9);
        let mut by_kind: Vec<(&'static str, f64)> = self
            .threads
            .iter()
            .map(|(k, s)| {
                (
                    *k,
                    (s - earlier.threads.get(k).copied().unwrap_or(0.0)) / wall,
                )
            })
            .filter(|(_, cores)| *cores >= 0.005)
            .collect();
        let process_cores = (self.process - earlier.process) / wall;
        let live: f64 = by_kind.iter().map(|(_, c)| c).sum();
        if process_cores - live >= 0.005 {
            by_kind.push(("short-lived threads", process_cores - live));
        }
        by_kind.sort_by(|a, b| b.1.total_cmp(&a.1));
        CpuUse {
            wall,
            process_cores,
            by_kind,
            broker_cores: match (self.broker, earlier.broker) {
                (Some(now), Some(then)) => Some((now - then) / wall),
                _ => None,
            },
        }
    }
}

impl CpuUse {
    /// "1.62 cores (vallee-stream 0.95, librdkafka 0.41, …); broker 0.80"
    pub fn describe(&self) -> String {
        let kinds = self
            .by_kind
            .iter()
            .map(|(k, c)| format!("{k} {c:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        let broker = self
            .broker_cores
            .map(|b| format!("; the broker's process {b:.2} cores"))
            .unwrap_or_default();
        format!(
            "{:.2} cores over {:.1} s ({kinds}){broker}",
            self.process_cores, self.wall
        )
    }
}

/// Groups threads by what they do, from the names their owners give them.
fn kind(name: &str) -> &'static str {
    match name {
        "vallee-stream" => "stage thread",
        "vallee-ingest" => "ingest thread",
        n if n.starts_with("rdk:") => "librdkafka",
        n if n.starts_with("tokio-runtime") => "tokio workers",
        _ => "other threads",
    }
}

/// utime + stime of a `/proc/.../stat` file, in seconds.
fn stat_seconds(path: impl AsRef<std::path::Path>) -> Option<f64> {
    stat(path).map(|(_, seconds)| seconds)
}

/// The name and the utime + stime, in seconds, of a `/proc/.../stat` file.
fn stat(path: impl AsRef<std::path::Path>) -> Option<(String, f64)> {
    let text = std::fs::read_to_string(path).ok()?;
    // The name is in parentheses and may hold spaces: the fields start after the last ')'.
    let (open, close) = (text.find('(')?, text.rfind(')')?);
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted from the state (field 3) at index 0.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let name = text.get(open + 1..close)?.to_string();
    Some((name, (utime + stime) / TICKS_PER_SECOND))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_thread_is_counted_under_its_kind_and_in_the_process() {
        let before = CpuSnapshot::take(None);
        let (spun, spun_rx) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let spin = std::thread::Builder::new()
            .name("vallee-stream".into())
            .spawn(move || {
                // Spins until the kernel counts 0.3 s of CPU for this thread, whatever
                // the load of the machine, then stays alive for the second snapshot.
                let mine = || stat_seconds("/proc/thread-self/stat").unwrap_or(f64::MAX);
                let start = mine();
                let mut x = 0u64;
                while mine() - start < 0.3 {
                    for _ in 0..100_000 {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                    }
                }
                spun.send(()).unwrap();
                let _ = released.recv();
            })
            .unwrap();
        spun_rx.recv().unwrap();
        let used = CpuSnapshot::take(None).since(&before);
        release.send(()).unwrap();
        spin.join().unwrap();
        let stage_seconds = used
            .by_kind
            .iter()
            .find(|(k, _)| *k == "stage thread")
            .map_or(0.0, |(_, c)| c * used.wall);
        assert!(stage_seconds >= 0.29, "{}", used.describe());
        assert!(
            used.process_cores * used.wall >= stage_seconds - 0.02,
            "{}",
            used.describe()
        );
        assert!(used.describe().contains("stage thread"));
    }
}

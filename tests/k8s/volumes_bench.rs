//! Benchmark (ignored by default; run by `benches/volumes.sh`): N PVCs of
//! M MiB each backed up through the fake kubelet's mover Jobs with
//! `--parallel-volumes 1` and `N`, each into a fresh repository. Prints one
//! JSON line per run: wall seconds and CPU seconds of all processes. After
//! the parallel run, the same volumes are backed up again unchanged (each
//! mover compares with the volume's previous tree): one more line, with
//! `"unchanged": true` and the file data the movers read.

use std::time::Instant;

use serde_json::{json, Value};

use super::volumes::{noise, write, Cluster};

fn cpu_seconds_of_children() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
#[ignore]
fn bench_parallel_volumes() {
    let (n, mib) = (
        env("FERRY_BENCH_VOLUMES", 8),
        env("FERRY_BENCH_PVC_MIB", 256),
    );
    let parallel = n.to_string();
    for p in ["1", parallel.as_str()] {
        let c = Cluster::new();
        for i in 0..n {
            let dir = c.pvc(
                "bench",
                &format!("data-{i}"),
                "csi-fast",
                "Filesystem",
                &format!("{}Mi", mib * 2),
            );
            for f in 0..mib.div_ceil(16) {
                write(
                    &dir,
                    &format!("f{f}"),
                    &noise(16 << 20, (i * 1000 + f) as u64),
                );
            }
        }
        let (cpu0, t0) = (cpu_seconds_of_children(), Instant::now());
        let out = c.ok(&c.backup_args("bench", &["--parallel-volumes", p]));
        let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds_of_children() - cpu0);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["complete"], true, "{v}");
        println!(
            "{}",
            json!({"volumes": n, "mib_each": mib, "parallel_volumes": p,
            "wall_seconds": wall, "cpu_seconds": cpu})
        );
        if p == parallel {
            rerun_unchanged(&c, n, mib, p);
        }
    }
}

/// A second backup of the unchanged volumes.
fn rerun_unchanged(c: &Cluster, n: usize, mib: usize, p: &str) {
    let (cpu0, t0) = (cpu_seconds_of_children(), Instant::now());
    let out = c.ok(&c.backup_args("bench", &["--parallel-volumes", p]));
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds_of_children() - cpu0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["complete"], true, "{v}");
    let vols = v["snapshot"]["extra"]["volumes"].as_array().unwrap();
    let read: u64 = vols.iter().map(|x| x["read_bytes"].as_u64().unwrap()).sum();
    println!(
        "{}",
        json!({"volumes": n, "mib_each": mib, "parallel_volumes": p, "unchanged": true,
        "read_bytes": read, "wall_seconds": wall, "cpu_seconds": cpu})
    );
}

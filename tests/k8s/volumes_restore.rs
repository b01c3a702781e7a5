//! Progress of restore Jobs: the restore mover's progress lines are read
//! through `pods/log` while it runs, shown per volume on a terminal, and
//! each volume of `restore --k8s --json` has its rate.

use std::process::Command;

use serde_json::Value;

use super::support::kubelet::MOVER_IMAGE;
use super::volumes::{noise, write, Cluster};

fn restore_args(c: &Cluster, json: bool) -> Vec<&str> {
    let mut a = vec![
        "restore",
        "latest",
        "--k8s",
        "--kubeconfig",
        c.kc(),
        "--namespace-mapping",
        "shop:shop-dr",
        "--mover-image",
        MOVER_IMAGE,
    ];
    if json {
        a.push("--json");
    }
    a
}

fn with_volume() -> Cluster {
    let c = Cluster::new();
    let d = c.pvc("shop", "media", "csi-fast", "Filesystem", "256Mi");
    for i in 0..8 {
        write(&d, &format!("f{i}"), &noise(4 << 20, 60 + i));
    }
    c.ok(&c.backup_args("shop", &[]));
    c
}

#[test]
fn a_restore_job_is_followed_through_its_log_and_reports_its_rate() {
    let c = with_volume();
    let v: Value = serde_json::from_str(&c.ok(&restore_args(&c, true))).unwrap();
    let vol = &v["volumes"][0];
    assert_eq!(vol["action"], "restored", "{v}");
    let (bytes, secs, rate) = (
        vol["bytes"].as_f64().unwrap(),
        vol["seconds"].as_f64().unwrap(),
        vol["bytes_per_second"].as_f64().unwrap(),
    );
    assert_eq!(bytes, (32 << 20) as f64, "{vol}");
    assert!(
        rate > 0.0 && (rate - bytes / secs).abs() <= rate * 0.01,
        "{vol}"
    );
    // The coordinator read the restore pod's log while it ran, and the
    // mover wrote progress lines there.
    let logs: Vec<String> = c
        .fake
        .requests_matching("/log?")
        .into_iter()
        .filter(|r| r.contains("/pods/ferry-restore-"))
        .collect();
    assert!(!logs.is_empty(), "no pods/log read of the restore Job");
}

#[test]
fn restore_progress_per_volume_shows_on_a_terminal() {
    let c = with_volume();
    // `script` gives the restore a terminal for its stderr.
    let base = c.command(&restore_args(&c, false));
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    let line: Vec<String> = std::iter::once(base.get_program())
        .chain(base.get_args())
        .map(quote)
        .collect();
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", &line.join(" "), "/dev/null"]);
    for (k, v) in base.get_envs().filter_map(|(k, v)| Some((k, v?))) {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("script (util-linux)");
    let tty = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{tty}");
    let shown = tty
        .split(['\r', '\n'])
        .rfind(|l| l.contains("shop/media") && l.contains("/s"))
        .unwrap_or_else(|| panic!("no progress line for the volume: {tty:?}"));
    assert!(
        shown.contains("32.00 MiB") && shown.contains("done"),
        "{shown:?}"
    );
}

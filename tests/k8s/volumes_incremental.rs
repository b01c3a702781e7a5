//! Incremental volume backups: each mover compares the volume's files with
//! the tree of the volume's previous backup and reads only what changed.

use serde_json::Value;

use super::support::kubelet::{MOVER_IMAGE, NODE};
use super::volumes::{noise, seed_app, tree_of, volume, write, Cluster};

fn backup(c: &Cluster) -> Value {
    serde_json::from_str(&c.ok(&c.backup_args("shop", &[]))).unwrap()
}

fn counts(v: &Value) -> (u64, u64, u64, u64) {
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"));
    (
        n("files_new"),
        n("files_changed"),
        n("files_unchanged"),
        n("read_bytes"),
    )
}

#[test]
fn a_second_backup_of_an_unchanged_volume_reads_no_file_data_and_a_changed_file_is_stored() {
    let c = Cluster::new();
    // A snapshot-method volume (its clone gets new inodes and ctimes) and
    // an fs-method one (the live volume), both with six 1 MiB files.
    let data = c.pvc("shop", "data", "csi-fast", "Filesystem", "64Mi");
    let shared = c.pvc("shop", "shared", "nfs", "Filesystem", "64Mi");
    let raw = c.pvc("shop", "raw", "csi-fast", "Block", "4Mi");
    for i in 0..6 {
        write(&data, &format!("db/f{i}"), &noise(1 << 20, i));
        write(&shared, &format!("up/f{i}"), &noise(1 << 20, 100 + i));
    }
    let mut dev = std::fs::OpenOptions::new().write(true).open(&raw).unwrap();
    std::io::Write::write_all(&mut dev, &noise(1 << 20, 7)).unwrap();
    drop(dev);
    seed_app(&c, "shop", &["data", "shared", "raw"], NODE);

    let first = backup(&c);
    for pvc in ["data", "shared"] {
        let v = volume(&first, pvc);
        assert_eq!(counts(v), (6, 0, 0, 6 << 20), "{v}");
        assert!(v["parent"].is_null(), "{v}");
    }

    let second = backup(&c);
    for pvc in ["data", "shared"] {
        let (before, v) = (volume(&first, pvc), volume(&second, pvc));
        assert_eq!(counts(v), (0, 0, 6, 0), "nothing read again: {v}");
        assert_eq!(v["parent"], before["tree"], "{v}");
        assert_eq!(v["bytes"], 6 << 20, "{v}");
        // Only trees: a clone's files have new inodes and ctimes.
        assert!(v["added_bytes"].as_u64().unwrap() < 64 << 10, "{v}");
    }
    // A block volume is read whole and deduplicates by chunk.
    let b = volume(&second, "raw");
    assert!(b["parent"].is_null(), "{b}");
    assert_eq!(b["added_bytes"], 0, "{b}");

    // One file rewritten with the same size, one added.
    std::thread::sleep(std::time::Duration::from_millis(20));
    write(&data, "db/f3", &noise(1 << 20, 33));
    write(&data, "db/new", b"a new file\n");
    write(&shared, "up/f0", &noise(1 << 20, 200));
    let third = backup(&c);
    let d = volume(&third, "data");
    assert_eq!(counts(d), (1, 1, 5, (1 << 20) + 11), "{d}");
    assert_eq!(d["parent"], volume(&second, "data")["tree"], "{d}");
    let s = volume(&third, "shared");
    assert_eq!(counts(s), (0, 1, 5, 1 << 20), "{s}");

    let out: Value = serde_json::from_str(&c.ok(&[
        "restore",
        "latest",
        "--k8s",
        "--json",
        "--kubeconfig",
        c.kc(),
        "--namespace-mapping",
        "shop:shop-dr",
        "--storage-class-mapping",
        "nfs:csi-fast",
        "--mover-image",
        MOVER_IMAGE,
    ]))
    .unwrap();
    let restored = out["volumes"].as_array().unwrap();
    assert!(restored.iter().all(|v| v["action"] == "restored"), "{out}");
    let dr = |pvc: &str| c.kubelet.volume("shop-dr", pvc).unwrap();
    assert_eq!(tree_of(&dr("data")), tree_of(&data));
    assert_eq!(tree_of(&dr("shared")), tree_of(&shared));
    assert!(
        std::fs::read(dr("raw")).unwrap() == std::fs::read(&raw).unwrap(),
        "the block volume differs"
    );
    assert!(c.leftovers().is_empty(), "left behind: {:?}", c.leftovers());
}

#[test]
fn a_pvc_made_again_under_its_name_is_read_whole_again() {
    let c = Cluster::new();
    let first = c.pvc("shop", "data", "csi-fast", "Filesystem", "16Mi");
    write(&first, "f", &noise(1 << 20, 1));
    let v = backup(&c);
    let before = volume(&v, "data")["spec"]["volumeName"].clone();
    // Deleted and made again: a new PV, whose file happens to have the
    // same name and size.
    let key = (
        String::new(),
        "persistentvolumeclaims".to_string(),
        "shop".to_string(),
        "data".to_string(),
    );
    c.fake.state().objects.remove(&key);
    let again = c.pvc("shop", "data", "csi-fast", "Filesystem", "16Mi");
    assert_ne!(again, first);
    write(&again, "f", &noise(1 << 20, 2));
    let v = backup(&c);
    let d = volume(&v, "data");
    assert_ne!(d["spec"]["volumeName"], before, "{d}");
    assert!(d["parent"].is_null(), "{d}");
    assert_eq!(counts(d), (1, 0, 0, 1 << 20), "{d}");
}

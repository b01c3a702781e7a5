//! PostgreSQL from Debian on a PVC directory of the fake kubelet, under
//! pgbench load, backed up with application hooks that ferry execs through
//! `pods/exec` (the fake API server runs them for real), restored into
//! another namespace, started from the restored directory and checked with
//! `pg_amcheck`.
//!
//! The hooks: `pg_backup_start` and `pg_backup_stop` must run in one
//! session, and a hook is one command that returns, so the pre hook opens
//! a session that outlives it (psql reading statements from a FIFO) and the
//! post hook finishes it there. Between them the pre hook freezes the
//! server (SIGSTOP of the postmaster and its backends, the analogue of
//! Velero's `fsfreeze` example) after a `CHECKPOINT` and `pg_backup_start`;
//! the post hook thaws it and calls `pg_backup_stop`. The frozen copy is
//! crash-consistent, as a CSI snapshot is atomic: the restored cluster
//! starts with crash recovery from the checkpoint the hooks forced, and
//! needs no `backup_label` (which `pg_backup_stop` returns only after the
//! snapshot, too late to be in it).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::support::kubelet::NODE;
use super::volumes::Cluster;

/// The binaries of the Debian `postgresql` package.
fn pg_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL (Debian package postgresql; scripts/test.sh installs it)")
        .map(|e| e.unwrap().path().join("bin"))
        .filter(|b| b.join("pg_ctl").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("no /usr/lib/postgresql/*/bin/pg_ctl")
}

fn uid_gid(user: &str) -> (u32, u32) {
    let id = |flag: &str| {
        let o = Command::new("id").args([flag, user]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

/// Makes `dir` and its ancestors up to `/` traversable by other users (the
/// test's temporary directories are private to root).
fn open_up(dir: &Path) {
    for d in dir.ancestors() {
        let mode = std::fs::metadata(d).unwrap().permissions().mode();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode | 0o711)).unwrap();
    }
}

/// A PostgreSQL server run as the `postgres` user, on a Unix socket only.
struct Pg {
    bin: PathBuf,
    data: PathBuf,
    sock: PathBuf,
}

impl Pg {
    fn as_postgres(&self, prog: &str) -> Command {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(self.bin.join(prog));
        c
    }

    fn client(&self, prog: &str) -> Command {
        let mut c = Command::new(self.bin.join(prog));
        c.arg("-h")
            .arg(&self.sock)
            .args(["-p", "5432", "-U", "postgres"]);
        c
    }

    fn start(&self) {
        let opts = format!("-c listen_addresses='' -p 5432 -k {}", self.sock.display());
        let log = self.sock.join("server.log");
        let out = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", "120", "-o", &opts, "-l"])
            .arg(&log)
            .arg("start")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn sql(&self, q: &str) -> String {
        let out = self
            .client("psql")
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                "postgres",
                "-c",
                q,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{q}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The hook scripts: the pre hook checkpoints, opens the session that
/// outlives it, starts the backup there and freezes the server; the post
/// hook thaws it and stops the backup in the same session.
fn hook_scripts(pg: &Pg, run: &Path) -> (PathBuf, PathBuf) {
    let psql = format!(
        "{} -X -q -A -t -v ON_ERROR_STOP=1 -h {} -p 5432 -U postgres -d postgres",
        pg.bin.join("psql").display(),
        pg.sock.display()
    );
    let (r, data) = (run.display(), pg.data.display());
    let wait = |file: &str| {
        format!(
            "i=0; until [ -e {r}/{file} ]; do i=$((i+1)); \
             if [ $i -gt 600 ]; then cat {r}/out >&2; exit 1; fi; sleep 0.05; done"
        )
    };
    let pre = format!(
        "set -e\n{psql} -c CHECKPOINT\nrm -f {r}/in {r}/out {r}/started {r}/stopped\nmkfifo {r}/in\n\
         sleep 600 > {r}/in 2>/dev/null < /dev/null &\necho $! > {r}/holder.pid\n\
         {psql} -f {r}/in > {r}/out 2>&1 < /dev/null &\n\
         printf '%s\\n' \"SELECT pg_backup_start('ferry', true);\" '\\! touch {r}/started' > {r}/in\n\
         {}\nPID=$(head -1 {data}/postmaster.pid)\nkill -STOP $(pgrep -P $PID) $PID\necho frozen\n",
        wait("started")
    );
    let post = format!(
        "set -e\nPID=$(head -1 {data}/postmaster.pid)\nkill -CONT $PID $(pgrep -P $PID)\n\
         printf '%s\\n' 'SELECT pg_backup_stop(false);' '\\! touch {r}/stopped' > {r}/in\n\
         {}\nkill $(cat {r}/holder.pid)\necho thawed\n",
        wait("stopped")
    );
    let (pre_path, post_path) = (run.join("pre.sh"), run.join("post.sh"));
    std::fs::write(&pre_path, pre).unwrap();
    std::fs::write(&post_path, post).unwrap();
    (pre_path, post_path)
}

fn pgbench_load(pg: &Pg) -> Child {
    pg.client("pgbench")
        .args(["-n", "-c", "2", "-j", "2", "-T", "600", "postgres"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn postgres_under_pgbench_load_backed_up_with_hooks_restores_and_passes_amcheck() {
    let c = Cluster::new();
    let bin = pg_bin();
    let (uid, gid) = uid_gid("postgres");
    let vol = c.pvc("db", "pgdata", "csi-fast", "Filesystem", "1Gi");
    open_up(&vol);
    let run = c.dir.path().join("pg-run");
    let sock = c.dir.path().join("pg-sock");
    for d in [&run, &sock] {
        std::fs::create_dir_all(d).unwrap();
        std::os::unix::fs::chown(d, Some(uid), Some(gid)).unwrap();
        open_up(d);
    }
    let data = vol.join("pgdata");
    std::fs::create_dir_all(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(uid), Some(gid)).unwrap();
    let pg = Pg {
        bin: bin.clone(),
        data: data.clone(),
        sock: sock.clone(),
    };
    let out = pg
        .as_postgres("initdb")
        .arg("-D")
        .arg(&data)
        .args(["--auth=trust", "-U", "postgres", "--no-sync"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pg.start();
    let init = pg
        .client("pgbench")
        .args(["-i", "-s", "2", "-q", "postgres"])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let mut load = pgbench_load(&pg);

    let (pre, post) = hook_scripts(&pg, &run);
    c.fake.seed(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "pg-0", "namespace": "db", "annotations": {
            "pre.hook.backup.velero.io/container": "postgres",
            "pre.hook.backup.velero.io/command": json!(["sh", pre]).to_string(),
            "pre.hook.backup.velero.io/timeout": "60s",
            "post.hook.backup.velero.io/container": "postgres",
            "post.hook.backup.velero.io/command": json!(["sh", post]).to_string(),
            "post.hook.backup.velero.io/timeout": "60s"}},
        "spec": {"nodeName": NODE,
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "pgdata"}}],
            "containers": [{"name": "postgres", "image": "postgres:15"}]},
        "status": {"phase": "Running"}}));
    // Let the load run a little before the backup.
    let deadline = Instant::now() + Duration::from_secs(30);
    while pg.sql("SELECT count(*) FROM pgbench_history") == "0" {
        assert!(Instant::now() < deadline, "pgbench made no progress");
        std::thread::sleep(Duration::from_millis(100));
    }

    let v: Value = serde_json::from_str(&c.ok(&c.backup_args("db", &[]))).unwrap();
    assert_eq!(v["complete"], true, "{v}");
    let vol_rec = v["snapshot"]["extra"]["volumes"][0].clone();
    assert_eq!(vol_rec["method"], "snapshot", "{vol_rec}");
    let hooks = vol_rec["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    for (h, phase, said) in [(&hooks[0], "pre", "frozen"), (&hooks[1], "post", "thawed")] {
        assert_eq!(
            (h["phase"].as_str(), h["exit_code"].as_i64()),
            (Some(phase), Some(0)),
            "{h}"
        );
        assert!(
            h["stdout"].as_str().unwrap_or_default().contains(said),
            "{h}"
        );
    }
    // The live server was thawed and still takes writes.
    let live_before = pg.sql("SELECT count(*) FROM pgbench_history");
    std::thread::sleep(Duration::from_millis(300));
    assert_ne!(pg.sql("SELECT count(*) FROM pgbench_history"), live_before);
    let _ = load.kill();
    let _ = load.wait();

    let out: Value = serde_json::from_str(&c.ok(&[
        "restore",
        "latest",
        "--k8s",
        "--json",
        "--kubeconfig",
        c.kc(),
        "--include-namespaces",
        "db",
        "--namespace-mapping",
        "db:db-dr",
        "--mover-image",
        super::support::kubelet::MOVER_IMAGE,
    ]))
    .unwrap();
    assert_eq!(out["volumes"][0]["action"], "restored", "{out}");
    let restored = c.kubelet.volume("db-dr", "pgdata").unwrap().join("pgdata");
    open_up(restored.parent().unwrap());
    let meta = std::fs::metadata(&restored).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (meta.uid(), meta.mode() & 0o777),
        (uid, 0o700),
        "owner and mode restored"
    );
    // The lock file names a process of the source machine; PostgreSQL's
    // own base backups leave it out.
    std::fs::remove_file(restored.join("postmaster.pid")).unwrap();
    let sock2 = c.dir.path().join("pg-sock-restored");
    std::fs::create_dir_all(&sock2).unwrap();
    std::os::unix::fs::chown(&sock2, Some(uid), Some(gid)).unwrap();
    let copy = Pg {
        bin,
        data: restored,
        sock: sock2,
    };
    copy.start();
    assert_eq!(copy.sql("SELECT count(*) FROM pgbench_accounts"), "200000");
    let history: u64 = copy
        .sql("SELECT count(*) FROM pgbench_history")
        .parse()
        .unwrap();
    assert!(history > 0, "the snapshot was taken under load");
    let check = copy
        .client("pg_amcheck")
        .args([
            "--install-missing",
            "--heapallindexed",
            "--rootdescend",
            "-d",
            "postgres",
        ])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "pg_amcheck: {}\n{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(c.leftovers().is_empty(), "left behind: {:?}", c.leftovers());
}

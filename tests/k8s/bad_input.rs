//! Bad input: missing or invalid kubeconfig, unknown context, unreachable server.

use ferry::engine::k8s_restore::restore;
use ferry::source::k8s::{collect, K8sError};

use super::support::fake_k8s::FakeK8s;
use super::*;

#[tokio::test]
async fn missing_kubeconfig_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.yaml");
    let err = collect(&backup_opts(&path)).await.unwrap_err();
    assert!(matches!(err, K8sError::KubeconfigRead { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("nope.yaml") && msg.contains("--kubeconfig"),
        "{msg}"
    );
}

#[tokio::test]
async fn invalid_kubeconfig_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.yaml");
    std::fs::write(&garbage, "clusters: [this is: not, a kubeconfig").unwrap();
    let err = collect(&backup_opts(&garbage)).await.unwrap_err();
    assert!(err.to_string().contains("garbage.yaml"), "{err}");

    let fake = FakeK8s::start();
    let good = fake.kubeconfig(dir.path());
    let opts = K8sBackupOptions {
        context: Some("elsewhere".into()),
        ..backup_opts(&good)
    };
    let err = collect(&opts).await.unwrap_err();
    assert!(matches!(err, K8sError::KubeconfigInvalid { .. }), "{err:?}");
    assert!(err.to_string().contains("elsewhere"), "{err}");
}

#[tokio::test]
async fn unreachable_server_is_reported_for_backup_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let path = dir.path().join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: gone\n  context:\n    cluster: gone\n    user: u\ncurrent-context: gone\nusers:\n- name: u\n  user: {{}}\n"
    );
    std::fs::write(&path, text).unwrap();
    let err = collect(&backup_opts(&path)).await.unwrap_err();
    assert!(matches!(err, K8sError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    let err = restore(Vec::new(), &restore_opts(&path)).await.unwrap_err();
    assert!(matches!(err, K8sError::Unreachable { .. }), "{err:?}");
}

#[tokio::test]
async fn rejected_credentials_say_so() {
    let fake = FakeK8s::start();
    fake.faults(|f| f.unauthorized = true);
    let dir = tempfile::tempdir().unwrap();
    let kc = fake.kubeconfig(dir.path());
    let err = collect(&backup_opts(&kc)).await.unwrap_err();
    assert!(matches!(err, K8sError::Unauthorized { .. }), "{err:?}");
    assert!(
        err.to_string().contains("401") && err.to_string().contains("kubeconfig"),
        "{err}"
    );
    let err = restore(Vec::new(), &restore_opts(&kc)).await.unwrap_err();
    assert!(matches!(err, K8sError::Unauthorized { .. }), "{err:?}");
}

#[tokio::test]
async fn a_connection_lost_mid_backup_fails_the_backup() {
    let fake = super::source_cluster();
    let dir = tempfile::tempdir().unwrap();
    let kc = fake.kubeconfig(dir.path());
    let before = fake.state().requests.len();
    fake.faults(|f| f.drop_connections_after = Some(before + 10));
    let err = collect(&backup_opts(&kc)).await.unwrap_err();
    assert!(err.is_transport(), "{err:?}");
    assert!(err.to_string().contains(&fake.url()), "{err}");
}

#[test]
fn entry_points_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let backup = K8sBackupOptions::default();
    let restore_opts = ferry::engine::k8s_restore::K8sRestoreOptions::default();
    assert_send(&collect(&backup));
    assert_send(&restore(Vec::new(), &restore_opts));
}

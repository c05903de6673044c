//! The socket is the access control: mode 0600 by default; with a group, 0660 and owned by
//! that group, so its members (and no one else) can connect.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use pipecache_server::ServeOptions;
use pipecache_test_support::served::{RunningServer, open_server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_private_or_open_to_one_group() {
    let tmp = tempfile::tempdir().unwrap();
    let server = RunningServer::start(&tmp.path().join("a"), ServeOptions::default()).await;
    let meta = std::fs::metadata(&server.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    server.stop().await;

    // A group this process belongs to: its own primary group, by number.
    let gid = std::fs::metadata(tmp.path()).unwrap().gid();
    let options = ServeOptions {
        group: Some(gid.to_string()),
        ..ServeOptions::default()
    };
    let server = RunningServer::start(&tmp.path().join("b"), options).await;
    let meta = std::fs::metadata(&server.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), gid);
    server.client().health().await.unwrap();
    server.stop().await;

    // A group that does not exist is refused before anything listens.
    let options = ServeOptions {
        group: Some("no-such-group-pipecache".into()),
        ..ServeOptions::default()
    };
    let refused = open_server(&tmp.path().join("c"), options).await;
    assert!(
        matches!(
            refused,
            Err(pipecache_server::ServeError::InvalidOption { .. })
        ),
        "{refused:?}"
    );
}

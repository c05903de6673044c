//! Requests a well-behaved client never sends: each gets a clear status with a JSON error
//! body (or, for a client that never finishes its headers, a closed connection), and the
//! server keeps serving.

use std::time::{Duration, Instant};

use pipecache::Artifact;
use pipecache_client::wire_record;
use pipecache_format::wire;
use pipecache_server::ServeOptions;
use pipecache_test_support::served::{RunningServer, raw_answer, raw_request};
use tokio::io::AsyncWriteExt;

const WAIT: Duration = Duration::from_secs(10);

fn options() -> ServeOptions {
    ServeOptions {
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        token: Some("s3cret-token".into()),
        max_body: 1 << 20,
        header_timeout: Duration::from_millis(500),
        body_idle_timeout: Duration::from_millis(500),
        ..ServeOptions::default()
    }
}

fn code_of(body: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    v["error"]["code"]
        .as_str()
        .expect("an error code")
        .to_owned()
}

fn put_head(key: &str, content_type: &str, length: usize) -> String {
    format!(
        "PUT /v1/artifacts/{key} HTTP/1.1\r\nhost: x\r\ncontent-type: {content_type}\r\ncontent-length: {length}\r\n\r\n"
    )
}

fn body_for(key: &str, data: &[u8]) -> Vec<u8> {
    let artifact = Artifact::single(data.to_vec());
    wire::encode_body(&wire_record(key, &artifact, None), &[data])
}

async fn tcp(addr: std::net::SocketAddr, request: &str) -> (Option<u16>, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    raw_answer(&mut stream, WAIT).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_statuses_and_the_server_stays_up() {
    let tmp = tempfile::tempdir().unwrap();
    let server = RunningServer::start(tmp.path(), options()).await;
    let socket = server.socket.clone();
    let addr = server.tcp.expect("listening on TCP");

    // TCP: no token, a wrong one, the right one.
    let health = "GET /v1/health HTTP/1.1\r\nhost: x\r\n\r\n";
    let (status, body) = tcp(addr, health).await;
    assert_eq!(
        (status, code_of(&body).as_str()),
        (Some(401), "unauthorized")
    );
    let wrong = "GET /v1/health HTTP/1.1\r\nhost: x\r\nauthorization: Bearer nope\r\n\r\n";
    assert_eq!(tcp(addr, wrong).await.0, Some(401));
    let right = "GET /v1/health HTTP/1.1\r\nhost: x\r\nauthorization: Bearer s3cret-token\r\n\r\n";
    assert_eq!(tcp(addr, right).await.0, Some(200));

    // A body over the limit is refused from its Content-Length, before it is sent.
    let (status, body) = raw_request(
        &socket,
        put_head("k", wire::CONTENT_TYPE, 2 << 20).as_bytes(),
        WAIT,
    )
    .await;
    assert_eq!((status, code_of(&body).as_str()), (Some(413), "too_large"));

    // A slow client: the body stops after 10 of 1000 bytes.
    let started = Instant::now();
    let mut slow = put_head("k", wire::CONTENT_TYPE, 1000).into_bytes();
    slow.extend_from_slice(&[0u8; 10]);
    let (status, body) = raw_request(&socket, &slow, WAIT).await;
    assert_eq!(
        (status, code_of(&body).as_str()),
        (Some(408), "request_timeout")
    );
    assert!(
        started.elapsed() < WAIT,
        "the server waited for the slow body too long"
    );

    // A client that never finishes its headers is disconnected.
    let started = Instant::now();
    let (status, _) = raw_request(&socket, b"GET /v1/health HTTP/1.1\r\nhost: x\r\n", WAIT).await;
    assert!(status.is_none() || status == Some(408), "{status:?}");
    assert!(
        started.elapsed() < WAIT,
        "a stalled header kept its connection"
    );

    // Malformed keys: not UTF-8 once decoded, longer than the key rules allow.
    let (status, body) = raw_request(
        &socket,
        b"GET /v1/artifacts/%FF HTTP/1.1\r\nhost: x\r\n\r\n",
        WAIT,
    )
    .await;
    assert_eq!(
        (status, code_of(&body).as_str()),
        (Some(400), "invalid_key")
    );
    let long = format!(
        "GET /v1/artifacts/{} HTTP/1.1\r\nhost: x\r\n\r\n",
        "k".repeat(2000)
    );
    let (status, body) = raw_request(&socket, long.as_bytes(), WAIT).await;
    assert_eq!(
        (status, code_of(&body).as_str()),
        (Some(400), "invalid_key")
    );

    // A Content-Length one byte short of the body: the artifact arrives cut.
    let body = body_for("k", b"hello");
    let mut short = put_head("k", wire::CONTENT_TYPE, body.len() - 1).into_bytes();
    short.extend_from_slice(&body);
    let (status, text) = raw_request(&socket, &short, WAIT).await;
    assert_eq!(
        (status, code_of(&text).as_str()),
        (Some(400), "bad_request")
    );

    // A body for another key than the path's, and a body of another media type.
    let mut other = put_head("k", wire::CONTENT_TYPE, body.len()).into_bytes();
    other.extend_from_slice(&body_for("not-k", b"hello"));
    let (status, text) = raw_request(&socket, &other, WAIT).await;
    assert_eq!(
        (status, code_of(&text).as_str()),
        (Some(400), "bad_request")
    );
    let mut json = put_head("k", "application/json", 2).into_bytes();
    json.extend_from_slice(b"{}");
    let (status, text) = raw_request(&socket, &json, WAIT).await;
    assert_eq!(
        (status, code_of(&text).as_str()),
        (Some(415), "unsupported_media_type")
    );

    // No route, a wrong method, a job that does not parse.
    let (status, text) = raw_request(&socket, b"GET /v2/x HTTP/1.1\r\nhost: x\r\n\r\n", WAIT).await;
    assert_eq!((status, code_of(&text).as_str()), (Some(404), "not_found"));
    let (status, text) = raw_request(
        &socket,
        b"POST /v1/stats HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n",
        WAIT,
    )
    .await;
    assert_eq!(
        (status, code_of(&text).as_str()),
        (Some(400), "bad_request")
    );
    let job = b"POST /v1/jobs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n{\"kind\":\"nope\"}";
    let (status, text) = raw_request(&socket, job, WAIT).await;
    assert_eq!(
        (status, code_of(&text).as_str()),
        (Some(400), "bad_request")
    );

    // Still serving, and nothing was stored by any of the above.
    let client = server.client();
    client.health().await.unwrap();
    assert_eq!(client.get("k").await.unwrap(), None);
    let mut good = put_head("k", wire::CONTENT_TYPE, body.len()).into_bytes();
    good.extend_from_slice(&body);
    assert_eq!(raw_request(&socket, &good, WAIT).await.0, Some(204));
    assert_eq!(
        client.get("k").await.unwrap().unwrap().artifact.parts[0].data,
        b"hello"
    );
    server.stop().await;
}

//! The admin HTTP port: Prometheus metrics on `/metrics`, liveness on `/healthz` and readiness
//! on `/readyz`, for Kubernetes probes and scrapers. Plain HTTP/1.1, GET (and HEAD) only.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Content type of `/metrics`: the Prometheus text exposition format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A client that has not sent its request headers by then is disconnected.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the service should get traffic, and if not, why: what `/readyz` reports. Cheap to
/// clone; every clone shares the state. A new one is not ready (`starting`).
#[derive(Clone, Debug)]
pub struct Health {
    ready: Arc<AtomicBool>,
    /// The reason for not being ready. Written together with `ready`, under this lock, so a
    /// reader holding it sees a matching pair.
    reason: Arc<Mutex<String>>,
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

impl Health {
    /// Not ready, because starting.
    pub fn new() -> Self {
        Health {
            ready: Arc::new(AtomicBool::new(false)),
            reason: Arc::new(Mutex::new("starting".to_owned())),
        }
    }

    /// Ready for traffic.
    pub fn set_ready(&self) {
        let mut reason = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        reason.clear();
        // Relaxed: the flag publishes no other data; the reason is read under the lock.
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Not ready, for `reason` (shown by `/readyz`).
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        let mut current = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        *current = reason.into();
        // Relaxed: as in `set_ready`.
        self.ready.store(false, Ordering::Relaxed);
    }

    /// Whether the service is ready.
    pub fn is_ready(&self) -> bool {
        // Relaxed: a flag read on its own; see `set_ready`.
        self.ready.load(Ordering::Relaxed)
    }

    /// Why the service is not ready; `None` when it is.
    pub fn reason(&self) -> Option<String> {
        let reason = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        // Relaxed: read under the lock that every writer holds.
        if self.ready.load(Ordering::Relaxed) { None } else { Some(reason.clone()) }
    }
}

/// Binds `addr` (port 0: any free port) and serves the admin endpoints until `shutdown`
/// completes; then stops accepting, lets requests in progress finish and closes idle
/// connections. Returns the bound address and the server task, which ends when the last
/// connection is closed.
///
/// - `GET /metrics`: `metrics` rendered in the Prometheus text format.
/// - `GET /healthz`: 200 `ok` while the process runs.
/// - `GET /readyz`: 200 `ready`, or 503 `not ready: <reason>` (see [`Health`]).
/// - other paths: 404; other methods than GET and HEAD: 405.
pub async fn serve(
    addr: SocketAddr,
    metrics: PrometheusHandle,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener =
        TcpListener::bind(addr).await.with_context(|| format!("binding the admin HTTP port to {addr}"))?;
    let bound = listener.local_addr().context("reading the admin HTTP port's address")?;
    let handler = move |request: Request<Incoming>| {
        let response = respond(&request, &metrics, &health);
        async move { response }
    };
    Ok((bound, serve_http(listener, "admin HTTP port", handler, shutdown)))
}

/// Serves HTTP/1.1 on `listener` with `handler` until `shutdown` completes, then stops
/// accepting and lets the connections in progress finish; the task ends with the last of
/// them. Connections may be upgraded (a WebSocket handler takes the upgraded stream over and
/// is no longer waited for). `what` names the listener in logs.
pub fn serve_http<H, F>(
    listener: TcpListener,
    what: &'static str,
    handler: H,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    tokio::spawn(async move {
        // hyper-util's GracefulShutdown cannot watch upgradeable connections: each connection
        // holds a receiver, is told to finish when the flag turns, and the sender's `closed`
        // says when the last one is gone.
        let (closing, open) = watch::channel(false);
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of file descriptors, usually: back off instead of spinning.
                        tracing::warn!(%error, "{what}: accepting a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let handler = handler.clone();
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = handler(request);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let connection = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
            let mut finish = open.clone();
            tokio::spawn(async move {
                let mut connection = std::pin::pin!(connection);
                let told = async move {
                    let _ = finish.wait_for(|&c| c).await;
                };
                let result = tokio::select! {
                    result = connection.as_mut() => result,
                    () = told => {
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                };
                if let Err(error) = result {
                    tracing::debug!(%error, "{what}: connection");
                }
            });
        }
        drop(listener);
        drop(open);
        let _ = closing.send(true);
        closing.closed().await;
    })
}

/// The response to one request.
fn respond(
    request: &Request<Incoming>,
    metrics: &PrometheusHandle,
    health: &Health,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if !matches!(path, "/metrics" | "/healthz" | "/readyz") {
        return text(StatusCode::NOT_FOUND, "not found\n".to_owned());
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n".to_owned());
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(metrics.render())));
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_CONTENT_TYPE));
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n".to_owned()),
        _ => match health.reason() {
            None => text(StatusCode::OK, "ready\n".to_owned()),
            Some(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")),
        },
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    use super::*;

    /// A parsed response: status code, headers (lower-cased names) and body.
    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
        }
    }

    /// One HTTP/1.1 request on a fresh connection, read to the server's close.
    async fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        parse(&String::from_utf8(raw).unwrap())
    }

    fn parse(raw: &str) -> Reply {
        let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
        let status = status_line[9..12].parse().unwrap();
        let headers = lines
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap();
                (name.trim().to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        Reply { status, headers, body: body.to_owned() }
    }

    /// A server on a free port with a local recorder holding one metric, and its stop switch.
    async fn start(health: Health) -> (SocketAddr, JoinHandle<()>, oneshot::Sender<()>) {
        let recorder = crate::metrics::recorder().unwrap();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            crate::metrics::decision_histogram().record(4e-6);
            crate::metrics::kafka_produce_error();
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let (addr, task) = serve("127.0.0.1:0".parse().unwrap(), handle, health, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
        assert_ne!(addr.port(), 0);
        (addr, task, stop)
    }

    #[tokio::test]
    async fn metrics_in_prometheus_text_format() {
        let (addr, _task, _stop) = start(Health::new()).await;
        let reply = request(addr, "GET", "/metrics").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
        assert_eq!(reply.header("content-length"), Some(reply.body.len().to_string().as_str()));
        assert!(reply.body.contains("# TYPE vuoro_decision_seconds histogram\n"), "{}", reply.body);
        assert!(reply.body.contains("vuoro_decision_seconds_bucket{le=\"0.000005\"} 1\n"), "{}", reply.body);
        assert!(reply.body.contains("# HELP vuoro_kafka_produce_errors_total "), "{}", reply.body);
        assert!(reply.body.contains("vuoro_kafka_produce_errors_total 1\n"), "{}", reply.body);
        // A query string does not change the path.
        assert_eq!(request(addr, "GET", "/metrics?x=1").await.status, 200);
    }

    #[tokio::test]
    async fn healthz_while_running() {
        let (addr, _task, _stop) = start(Health::new()).await;
        let reply = request(addr, "GET", "/healthz").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "ok\n"));
        assert_eq!(reply.header("content-type"), Some("text/plain; charset=utf-8"));
    }

    #[tokio::test]
    async fn readyz_follows_health() {
        let health = Health::new();
        let (addr, _task, _stop) = start(health.clone()).await;
        let reply = request(addr, "GET", "/readyz").await;
        assert_eq!((reply.status, reply.body.as_str()), (503, "not ready: starting\n"));

        health.set_ready();
        let reply = request(addr, "GET", "/readyz").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "ready\n"));

        health.set_not_ready("shutting down");
        let reply = request(addr, "GET", "/readyz").await;
        assert_eq!((reply.status, reply.body.as_str()), (503, "not ready: shutting down\n"));
    }

    #[tokio::test]
    async fn unknown_paths_and_methods() {
        let (addr, _task, _stop) = start(Health::new()).await;
        assert_eq!(request(addr, "GET", "/").await.status, 404);
        assert_eq!(request(addr, "GET", "/metrics/x").await.status, 404);
        assert_eq!(request(addr, "POST", "/nowhere").await.status, 404);
        for (method, path) in [("POST", "/metrics"), ("PUT", "/healthz"), ("DELETE", "/readyz")] {
            let reply = request(addr, method, path).await;
            assert_eq!(reply.status, 405, "{method} {path}");
            assert_eq!(reply.header("allow"), Some("GET, HEAD"));
        }
        // HEAD is GET without the body.
        let reply = request(addr, "HEAD", "/healthz").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, ""));
    }

    #[tokio::test]
    async fn shutdown_closes_idle_connections_and_stops() {
        let (addr, task, stop) = start(Health::new()).await;
        // A keep-alive connection, idle after one request.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 1024];
        let n = idle.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task).await.expect("server stopped").unwrap();
        // The idle connection was closed, and nothing listens any more.
        assert_eq!(idle.read(&mut buf).await.unwrap(), 0);
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[test]
    fn health_states() {
        let health = Health::default();
        assert!(!health.is_ready());
        assert_eq!(health.reason().as_deref(), Some("starting"));
        let clone = health.clone();
        clone.set_ready();
        assert!(health.is_ready());
        assert_eq!(health.reason(), None);
        clone.set_not_ready(String::from("kafka unreachable"));
        assert!(!health.is_ready());
        assert_eq!(health.reason().as_deref(), Some("kafka unreachable"));
    }

    #[tokio::test]
    async fn bind_failure_names_the_address() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let error =
            serve(addr, crate::metrics::recorder().unwrap().handle(), Health::new(), std::future::pending())
                .await
                .unwrap_err();
        assert!(format!("{error:#}").contains(&addr.to_string()), "{error:#}");
    }
}

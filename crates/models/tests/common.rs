#![allow(dead_code)]

//! A capturing loopback server: answers with queued responses, records every request.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone)]
pub enum Canned {
    Json {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Cut the connection mid-body.
    Reset,
    /// Answer only after this long.
    Slow(Duration, Box<Canned>),
}

impl Canned {
    pub fn ok(body: &str) -> Canned {
        Canned::Json {
            status: 200,
            headers: vec![],
            body: body.to_string(),
        }
    }
    pub fn status(status: u16, body: &str) -> Canned {
        Canned::Json {
            status,
            headers: vec![],
            body: body.to_string(),
        }
    }
}

#[derive(Clone, Default)]
pub struct Captured {
    pub requests: Arc<Mutex<Vec<(HeaderMap, String, Value)>>>,
    queue: Arc<Mutex<VecDeque<Canned>>>,
}

pub struct Server {
    pub addr: SocketAddr,
    pub captured: Captured,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub fn requests(&self) -> Vec<Value> {
        self.captured
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, b)| b.clone())
            .collect()
    }
    pub fn headers(&self, i: usize) -> HeaderMap {
        self.captured.requests.lock().unwrap()[i].0.clone()
    }
    pub fn path(&self, i: usize) -> String {
        self.captured.requests.lock().unwrap()[i].1.clone()
    }
}

pub async fn serve(responses: Vec<Canned>) -> Server {
    let captured = Captured {
        requests: Default::default(),
        queue: Arc::new(Mutex::new(responses.into())),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(handle).with_state(captured.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server {
        addr,
        captured,
        task,
    }
}

async fn handle(
    State(c): State<Captured>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    c.requests
        .lock()
        .unwrap()
        .push((headers, uri.path().to_string(), value));
    let next = c
        .queue
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Canned::status(500, "{\"error\": \"queue empty\"}"));
    respond(next).await
}

fn respond(
    canned: Canned,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>> {
    Box::pin(async move {
        match canned {
            Canned::Json {
                status,
                headers,
                body,
            } => {
                let mut r = (StatusCode::from_u16(status).unwrap(), body).into_response();
                r.headers_mut()
                    .insert("content-type", "application/json".parse().unwrap());
                for (k, v) in headers {
                    r.headers_mut().insert(k, v.parse().unwrap());
                }
                r
            }
            Canned::Reset => {
                let stream = futures_util_stream();
                Response::builder()
                    .status(200)
                    .body(Body::from_stream(stream))
                    .unwrap()
            }
            Canned::Slow(d, inner) => {
                tokio::time::sleep(d).await;
                respond(*inner).await
            }
        }
    })
}

fn futures_util_stream() -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    struct Cut;
    impl futures_core::Stream for Cut {
        type Item = Result<Bytes, std::io::Error>;
        fn poll_next(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "cut",
            ))))
        }
    }
    Cut
}

pub fn fixture(protocol: &str, name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/{protocol}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Compares a request body with its fixture. With UPDATE_FIXTURES=1 writes the fixture
/// instead (review the diff against the provider's API reference before committing).
pub fn assert_fixture(protocol: &str, name: &str, actual: &Value) {
    let path = format!(
        "{}/tests/fixtures/{protocol}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    if std::env::var("UPDATE_FIXTURES").is_ok() {
        std::fs::write(&path, serde_json::to_string_pretty(actual).unwrap() + "\n").unwrap();
        return;
    }
    let expected: Value = serde_json::from_str(&fixture(protocol, name)).unwrap();
    assert_eq!(
        actual,
        &expected,
        "request body differs from {path}:\n{}",
        serde_json::to_string_pretty(actual).unwrap()
    );
}

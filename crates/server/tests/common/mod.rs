//! What the server's end-to-end tests share: a server on a free port and a plain client.

#![allow(dead_code)]

use loupe_server::{RunningServer, ServeArgs};
use serde_json::Value;

/// `loupe serve` in-process on 127.0.0.1:0 with `threads` compute threads.
pub async fn start(threads: usize, f: impl FnOnce(&mut ServeArgs)) -> RunningServer {
    let mut args = ServeArgs {
        port: 0,
        threads: Some(threads),
        ..Default::default()
    };
    f(&mut args);
    loupe_server::spawn(args).await.expect("server starts")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub async fn post_text(s: &RunningServer, path: &str, body: Value) -> (u16, String) {
    let r = client()
        .post(format!("{}{path}", s.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

pub async fn get(s: &RunningServer, path: &str) -> (u16, String) {
    let r = client()
        .get(format!("{}{path}", s.url()))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

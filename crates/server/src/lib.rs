//! `loupe serve`: SGLang's HTTP API over the reference engine — native `/generate`, the
//! OpenAI-compatible routes, health/info/cache routes and Prometheus `/metrics`, with
//! SGLang's auth levels, JSON shapes and plain-text bodies.
//!
//! Handlers stay thin: they read and check the body (every error names its field), hand
//! token ids to the engine, and turn engine outputs into SGLang's chunks. Nothing here does
//! model arithmetic or scheduling.

pub mod config;
pub mod error;
mod generate;
mod info;
pub mod metrics;
mod openai;
pub mod parse;
mod profile;
pub mod state;
pub mod vision;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use loupe_engine::Engine;
use loupe_profiler::{Profiler, ProfilerConfig};
use tokio::net::TcpListener;

pub use config::ServerConfig;
pub use error::ApiError;
pub use state::AppState;

/// Which key a route needs (SGLang's `auth_level`).
fn auth_level(path: &str) -> Option<bool> {
    const OPEN: &[&str] = &["/health", "/ready", "/metrics"];
    const ADMIN: &[&str] = &[
        "/flush_cache",
        "/start_profile",
        "/stop_profile",
        "/end_profile",
        "/profile_status",
    ];
    if OPEN.iter().any(|p| path.starts_with(p)) {
        None
    } else {
        Some(ADMIN.contains(&path))
    }
}

async fn auth(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(admin) = auth_level(req.uri().path()) {
        let want = if admin {
            st.config
                .admin_api_key
                .as_deref()
                .or(st.config.api_key.as_deref())
        } else {
            st.config.api_key.as_deref()
        };
        if let Some(key) = want {
            let given = req
                .headers()
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if given != Some(key) {
                return ApiError::Unauthorized.into_response();
            }
        }
    }
    next.run(req).await
}

/// The full route table.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/generate",
            post(generate::generate).put(generate::generate),
        )
        .route("/v1/completions", post(openai::completions))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{id}", get(openai::model))
        .route("/health", get(info::health))
        .route("/health_generate", get(info::health_generate))
        .route("/ready", get(info::ready))
        .route("/model_info", get(info::model_info))
        .route("/get_model_info", get(info::model_info))
        .route("/server_info", get(info::server_info))
        .route("/get_server_info", get(info::server_info))
        .route(
            "/flush_cache",
            get(info::flush_cache).post(info::flush_cache),
        )
        .route("/start_profile", get(profile::start).post(profile::start))
        .route("/stop_profile", get(profile::stop).post(profile::stop))
        .route("/end_profile", get(profile::stop).post(profile::stop))
        .route("/profile_status", get(profile::status))
        .route("/metrics", get(info::metrics))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

/// Bind with a large listen backlog, so that connection bursts from load generators do not
/// overflow the queue and wait for the 1 s SYN retransmit.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(8192)
}

/// Start the engine (loading weights on a blocking thread) with the profiler as its step
/// observer, and build the state.
pub async fn start_state(
    config: ServerConfig,
    launch_command: String,
) -> Result<Arc<AppState>, String> {
    let mut engine_args = config.engine_args()?;
    if let Some(root) = &config.profile_output_root
        && !root.is_dir()
    {
        return Err(format!(
            "--profile-output-root {}: not a directory",
            root.display()
        ));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ranks = (config.tp_size * config.dp_size).max(1);
    let profiler = Profiler::new(ProfilerConfig {
        tp_size: config.tp_size,
        dp_size: config.dp_size,
        threads_per_rank: (config.threads.unwrap_or(cores) / ranks).max(1),
        model_name: config.served_model_name(),
        output_root: config.profile_output_root.clone(),
    });
    engine_args.observer = Some(Arc::new(profiler.clone()));
    let engine = tokio::task::spawn_blocking(move || Engine::start(engine_args))
        .await
        .map_err(|e| format!("engine start-up panicked: {e}"))?
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(AppState::new(
        Arc::new(engine),
        config,
        launch_command,
        profiler,
    )))
}

/// A server running in this process (the embedded server of `loupe bench`, and tests).
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop accepting, finish open responses, and return.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Serve `state` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Start engine and server on `config.host:config.port` (port 0 picks a free one).
pub async fn spawn(config: ServerConfig) -> Result<RunningServer, String> {
    let addr: SocketAddr = format!("{}:{}", config.host, config.port)
        .parse()
        .map_err(|e| format!("--host {} --port {}: {e}", config.host, config.port))?;
    let listener = bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let state = start_state(config, String::from("loupe (in-process)")).await?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, state.clone(), async {
        let _ = rx.await;
    }));
    Ok(RunningServer {
        addr,
        state,
        shutdown: Some(tx),
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_levels_follow_sglang() {
        assert_eq!(auth_level("/health"), None);
        assert_eq!(auth_level("/health_generate"), None);
        assert_eq!(auth_level("/metrics"), None);
        assert_eq!(auth_level("/generate"), Some(false));
        assert_eq!(auth_level("/flush_cache"), Some(true));
        assert_eq!(auth_level("/start_profile"), Some(true));
    }
}

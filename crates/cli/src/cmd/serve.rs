//! `loupe serve`.

use std::process::ExitCode;

pub use loupe_server::ServeArgs;

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let addr: std::net::SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .map_err(|e| anyhow::anyhow!("--host {} --port {}: {e}", args.host, args.port))?;
    let listener =
        loupe_server::bind(addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let launch: Vec<String> = std::env::args().collect();
    let state = loupe_server::start_state(args, launch.join(" "))
        .await
        .map_err(anyhow::Error::msg)?;
    tracing::info!(
        "The server is fired up and ready to roll! Listening on http://{}",
        listener.local_addr()?
    );
    loupe_server::serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

//! Shutdown signals: a future that resolves on the first SIGTERM or SIGINT (Ctrl-C).

use tokio::signal::unix::{Signal, SignalKind, signal as listen};

/// Starts listening for SIGTERM and SIGINT right away (so a signal that arrives before the
/// future is first awaited is not lost, and never kills the process with the default action),
/// and returns a future that resolves, logging which one arrived, when the first comes in.
/// Call it inside the runtime, early in `main`.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    let terminate = listen_or_log(SignalKind::terminate(), "SIGTERM");
    let interrupt = listen_or_log(SignalKind::interrupt(), "SIGINT");
    async move {
        let name = tokio::select! {
            () = recv(terminate) => "SIGTERM",
            () = recv(interrupt) => "SIGINT",
        };
        tracing::info!(signal = name, "shutdown requested");
    }
}

fn listen_or_log(kind: SignalKind, name: &str) -> Option<Signal> {
    listen(kind)
        .map_err(|error| tracing::error!(%error, "cannot listen for {name}"))
        .ok()
}

async fn recv(stream: Option<Signal>) {
    match stream {
        Some(mut stream) => {
            stream.recv().await;
        }
        None => std::future::pending().await,
    }
}

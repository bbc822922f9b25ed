//! The TCP connection under a request, for what must act on it or name it: an event stream
//! bounds the kernel's send buffer of its connection (so what a stalled client leaves queued in
//! the kernel is small and known) and cuts the connection when its subscriber fell behind (a
//! client that stopped reading stalls every write, so the response itself can never end it); the
//! audit log records the client's address.

use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::serve::IncomingStream;
use tokio::net::TcpListener;

/// The connection of a request (none when the router is served without connection info).
#[derive(Clone, Default)]
pub struct ClientConnection {
    /// A duplicate of the connection's descriptor: it refers to the same socket, and is closed
    /// once the connection and its last request are gone.
    socket: Option<Arc<socket2::Socket>>,
}

impl Connected<IncomingStream<'_, TcpListener>> for ClientConnection {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        let socket = socket2::SockRef::from(stream.io())
            .try_clone()
            .inspect_err(|error| tracing::warn!(%error, "cannot keep a handle on a connection"))
            .ok()
            .map(Arc::new);
        Self { socket }
    }
}

impl<S: Sync> FromRequestParts<S> for ClientConnection {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ConnectInfo<Self>>()
            .map(|info| info.0.clone())
            .unwrap_or_default())
    }
}

impl ClientConnection {
    /// The client's address (none when the router is served without connection info).
    pub fn peer(&self) -> Option<std::net::SocketAddr> {
        self.socket.as_ref()?.peer_addr().ok()?.as_socket()
    }

    /// Bounds the kernel's send buffer (Linux doubles `bytes`).
    pub fn bound_send_buffer(&self, bytes: usize) {
        if let Some(socket) = &self.socket
            && let Err(error) = socket.set_send_buffer_size(bytes)
        {
            tracing::warn!(%error, "cannot bound a connection's send buffer");
        }
    }

    /// Ends the connection in both directions: a write stalled on it fails at once, so the
    /// server drops it.
    pub fn cut(&self) {
        if let Some(socket) = &self.socket {
            // Already closed by the client: nothing to do.
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

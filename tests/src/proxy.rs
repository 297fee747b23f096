//! A TCP proxy that can be cut: the broker talks to a service (S3, Postgres) through it,
//! and a test takes the service "down" without losing the service's state. Down, nothing
//! listens on the proxy's port (connections are refused) and open connections are
//! dropped; up again, it listens on the same port.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

/// A cuttable proxy on 127.0.0.1.
pub struct TcpProxy {
    /// Port on 127.0.0.1.
    pub port: u16,
    target: SocketAddr,
    running: Option<(CancellationToken, AbortOnDropHandle<()>)>,
}

impl TcpProxy {
    /// A proxy to `target` on a free port, up.
    pub async fn start(target: SocketAddr) -> Self {
        let mut p = Self::start_down(target);
        p.up().await;
        p
    }

    /// A proxy to `target` on a free port, down (nothing listens until [`Self::up`]).
    pub fn start_down(target: SocketAddr) -> Self {
        Self {
            port: crate::free_port(),
            target,
            running: None,
        }
    }

    /// `http://127.0.0.1:port`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts listening (again) on the proxy's port.
    pub async fn up(&mut self) {
        if self.running.is_some() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "proxy cannot listen on {} again: {e}",
                        self.port
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let cancel = CancellationToken::new();
        let task = tokio::spawn(serve(listener, self.target, cancel.clone()));
        self.running = Some((cancel, AbortOnDropHandle::new(task)));
    }

    /// Stops listening and drops every open connection.
    pub async fn down(&mut self) {
        if let Some((cancel, task)) = self.running.take() {
            cancel.cancel();
            let _ = task.await;
        }
    }
}

async fn serve(listener: TcpListener, target: SocketAddr, cancel: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => {
                let Ok((inbound, _)) = accepted else { continue };
                connections.spawn(pipe(inbound, target));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Dropping the listener and aborting the pipes closes every socket.
    drop(listener);
    connections.shutdown().await;
}

async fn pipe(mut inbound: TcpStream, target: SocketAddr) {
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
}

//! Starting and stopping the broker: listener, accept loop, background tasks.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::broker::Broker;
use crate::config::ServerConfig;
use crate::error::{Error, Result};

/// A running broker. Dropping it without [`RunningServer::shutdown`] aborts its tasks.
pub struct RunningServer {
    /// Address the Kafka listener is bound to.
    pub kafka_addr: SocketAddr,
    /// Address the HTTP listener is bound to, if HTTP is on.
    pub http_addr: Option<SocketAddr>,
    /// Address the Flight SQL listener is bound to, if SQL is on.
    pub flight_addr: Option<SocketAddr>,
    /// Address the schema registry is bound to, if it is on.
    pub registry_addr: Option<SocketAddr>,
    /// Shared broker state (tests inspect it).
    pub broker: Arc<Broker>,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

/// Runs the broker until `shutdown` resolves, then stops it cleanly.
///
/// # Errors
/// Start-up failures: the listener cannot bind, the data directory or metadata store
/// cannot be opened, a log cannot be recovered.
pub async fn run(config: ServerConfig, shutdown: impl Future<Output = ()>) -> Result<()> {
    let deadline = config.shutdown_timeout;
    let server = RunningServer::start(config).await?;
    shutdown.await;
    server.shutdown(deadline).await
}

impl RunningServer {
    /// Binds the listener, opens the broker state and starts serving.
    ///
    /// # Errors
    /// As [`run`].
    pub async fn start(config: ServerConfig) -> Result<Self> {
        config.validate().map_err(Error::Settings)?;
        let open_files = crate::limits::raise_open_files_limit();
        let listener = TcpListener::bind(&config.kafka.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.kafka.listen.clone(),
                source,
            })?;
        let kafka_addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.kafka.listen.clone(),
            source,
        })?;
        let host = config.kafka.advertised_host.clone().unwrap_or_else(|| {
            if kafka_addr.ip().is_unspecified() {
                "localhost".to_string()
            } else {
                kafka_addr.ip().to_string()
            }
        });
        let port = i32::from(config.kafka.advertised_port.unwrap_or(kafka_addr.port()));
        let http = if config.http.enabled {
            Some(crate::http::bind(&config.http.listen).await?)
        } else {
            None
        };
        let http_addr = http.as_ref().and_then(|l| l.local_addr().ok());
        // SQL reads the lake's tables and tails: without the lake there is nothing to query.
        let flight = bind_if(
            config.query.enabled && config.lake.enabled,
            &config.query.flight_listen,
        )
        .await?;
        let flight_addr = flight.as_ref().and_then(|l| l.local_addr().ok());
        let registry = bind_if(config.registry.enabled, &config.registry.listen).await?;
        let registry_addr = registry.as_ref().and_then(|l| l.local_addr().ok());
        let cancel = CancellationToken::new();
        let broker = Broker::open(config, (host.clone(), port), cancel.clone()).await?;
        broker
            .registry
            .set_guard(Arc::new(crate::typed_guard::TableGuard(Arc::downgrade(
                &broker,
            ))));
        let mut tasks = JoinSet::new();
        if let Some(listener) = flight {
            let engine = crate::sql::start_engine(&broker)?;
            let ttl = broker.config.query.flight_ticket_ttl;
            tasks.spawn(floe_query::flight::serve(
                engine,
                listener,
                ttl,
                cancel.clone(),
            ));
        }
        if let Some(listener) = http {
            tasks.spawn(crate::http::serve(broker.clone(), listener));
        }
        if let Some(listener) = registry {
            if let Some(addr) = registry_addr {
                info!(listen = %addr, "schema registry (Confluent REST API) is serving");
            }
            tasks.spawn(floe_registry::serve(
                broker.registry.clone(),
                listener,
                cancel.clone(),
            ));
        }
        tasks.spawn(accept_loop(broker.clone(), listener));
        tasks.spawn(crate::tasks::run_syncer(broker.clone()));
        tasks.spawn(crate::tasks::run_retention(broker.clone()));
        tasks.spawn(broker.groups.clone().run_reaper());
        tasks.spawn(broker.groups.clone().run_offset_expiry());
        info!(listen = %kafka_addr, advertised = %format!("{host}:{port}"), open_files_limit = ?open_files, "floe is serving Kafka");
        Ok(Self {
            kafka_addr,
            http_addr,
            flight_addr,
            registry_addr,
            broker,
            cancel,
            tasks,
        })
    }

    /// Stops accepting, lets connections finish the request in hand, fsyncs every
    /// partition, then lands what the tails hold in a last round. All of it within
    /// `deadline` in total: a step that has not finished when it passes is abandoned (the
    /// WAL keeps what did not land, and the next start re-lands it).
    ///
    /// # Errors
    /// A partition that cannot be flushed.
    pub async fn shutdown(mut self, deadline: Duration) -> Result<()> {
        info!(deadline = ?deadline, "shutting down");
        let end = tokio::time::Instant::now() + deadline;
        self.cancel.cancel();
        let drained = tokio::time::timeout_at(end, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!("tasks did not stop within the shutdown deadline; aborting them");
            self.tasks.abort_all();
        }
        let partitions = self.broker.all_partitions();
        tokio::task::spawn_blocking(move || {
            for p in partitions {
                p.flush().map_err(|source| Error::Log {
                    topic: p.topic.to_string(),
                    partition: p.index,
                    source,
                })?;
            }
            Ok::<_, Error>(())
        })
        .await
        .map_err(Error::Task)??;
        // Committers stopped with the cancel; land what is buffered in one last round
        // (everything is fsynced now), within what is left of the deadline.
        self.broker.committers.close();
        let _ = tokio::time::timeout_at(end, self.broker.committers.wait()).await;
        if let Some(lake) = &self.broker.lake {
            let rounds = crate::committer::final_rounds(lake, self.broker.topics());
            if tokio::time::timeout_at(end, rounds).await.is_err() {
                warn!("the final landing round did not finish within the deadline; the WAL keeps the data");
            }
        }
        self.broker.meta.close().await;
        info!("stopped");
        Ok(())
    }
}

/// A listener on `addr` when `on`.
async fn bind_if(on: bool, addr: &str) -> Result<Option<TcpListener>> {
    if !on {
        return Ok(None);
    }
    TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|source| Error::Bind {
            addr: addr.to_owned(),
            source,
        })
}

async fn accept_loop(broker: Arc<Broker>, listener: TcpListener) {
    let limit = Arc::new(Semaphore::new(broker.config.kafka.max_connections.max(1)));
    let per_ip = crate::limits::PerIp::new(broker.config.kafka.max_connections_per_ip);
    let mut conns = JoinSet::new();
    loop {
        // A permit before accept: past the limit, new connections wait in the backlog.
        let permit = tokio::select! {
            _ = broker.shutdown.cancelled() => break,
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let accepted = tokio::select! {
            _ = broker.shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Over its address's share: closed at once, as Kafka closes it, so that
                // one host's sockets cannot take every slot of `max_connections`.
                let Some(slot) = per_ip.admit(peer.ip()) else {
                    broker
                        .metrics
                        .refusals
                        .count(crate::limits::Limit::ConnectionsPerIp);
                    drop(stream);
                    continue;
                };
                let b = broker.clone();
                let counted = broker.metrics.connection_opened();
                conns.spawn(async move {
                    crate::connection::serve(b, stream, peer).await;
                    drop(counted);
                    drop(slot);
                    drop(permit);
                });
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // Reap finished connections so the set does not grow without bound.
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

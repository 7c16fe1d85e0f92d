//! Accepting connections without letting idle sockets exhaust the process.
//!
//! tonic keeps a TCP connection that never sends the HTTP/2 preface open forever, and accepts
//! until `accept` fails with EMFILE, at which point the database can no longer open its files
//! either. So every accepted connection holds a permit of a process-wide cap set below the file
//! limit (the soft limit is raised to the hard one at start), must finish its HTTP/2 preface and
//! first frame header within the handshake timeout, and a connection over the cap is closed at
//! once with a warning (one line per interval, with the count).

use std::{
    io,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::Stream;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Sleep,
};
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

use super::coalesce::Coalesced;

/// The client preface (24 bytes) and the header of its first frame (SETTINGS, 9 bytes).
const HANDSHAKE_BYTES: usize = 24 + 9;

/// File descriptors kept free of connections: database pools, SQLite files, peers, logs.
const RESERVED_FDS: u64 = 128;

/// How often a shedding warning is logged at most.
const SHED_LOG_EVERY: Duration = Duration::from_secs(10);

/// Raises the soft open-file limit to the hard limit (where allowed) and returns the soft limit
/// now in force (`None`: unlimited or unknown).
pub fn raise_file_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), maximum) = (limit.current, limit.maximum)
        && maximum.is_none_or(|m| m > current)
    {
        let raised = Rlimit { current: maximum, maximum };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(error = %e, "the open-file limit could not be raised");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// The connection cap: the configured one, or less when the file limit demands it.
pub fn connection_cap(configured: usize, file_limit: Option<u64>) -> usize {
    let Some(limit) = file_limit else { return configured };
    let reserve = RESERVED_FDS.max(limit / 4);
    let room = usize::try_from(limit.saturating_sub(reserve)).unwrap_or(usize::MAX).max(1);
    configured.min(room)
}

/// Counts connections shed since the last warning.
struct ShedLog {
    shed: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl ShedLog {
    fn note(&self, cap: usize) {
        self.shed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("grpc_server_connections_shed_total").increment(1);
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_none_or(|t| t.elapsed() >= SHED_LOG_EVERY) {
            *last = Some(Instant::now());
            let shed = self.shed.swap(0, Ordering::Relaxed);
            tracing::warn!(
                cap,
                shed,
                "connection cap reached: closing new connections (TT_MAX_CONNECTIONS; idle ones are \
                 closed after the handshake timeout)"
            );
        }
    }
}

/// The accepted connections of `listener`, each holding a permit of `cap` and a handshake
/// deadline.
pub fn guarded(
    listener: TcpListener,
    cap: usize,
    handshake: Duration,
    keepalive: Duration,
) -> impl Stream<Item = io::Result<Guarded<Coalesced<tokio::net::TcpStream>>>> {
    use futures::StreamExt;
    let permits = Arc::new(Semaphore::new(cap));
    let log = Arc::new(ShedLog { shed: AtomicU64::new(0), last: Mutex::new(None) });
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true)).with_keepalive(Some(keepalive));
    incoming.filter_map(move |accepted| {
        let permits = permits.clone();
        let log = log.clone();
        async move {
            match accepted {
                Ok(stream) => match permits.try_acquire_owned() {
                    Ok(permit) => Some(Ok(Guarded::new(Coalesced::new(stream), permit, handshake))),
                    Err(_) => {
                        log.note(cap);
                        None // dropping the stream closes it
                    }
                },
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning on accept.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    None
                }
            }
        }
    })
}

/// A connection that counts against the cap while it lives and is failed if its handshake does
/// not arrive in time.
pub struct Guarded<IO> {
    inner: IO,
    _permit: OwnedSemaphorePermit,
    handshake: Option<Pin<Box<Sleep>>>,
    received: usize,
}

impl<IO> Guarded<IO> {
    fn new(inner: IO, permit: OwnedSemaphorePermit, handshake: Duration) -> Self {
        Self { inner, _permit: permit, handshake: Some(Box::pin(tokio::time::sleep(handshake))), received: 0 }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(deadline) = this.handshake.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            this.handshake = None;
            metrics::counter!("grpc_server_handshake_timeouts_total").increment(1);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no HTTP/2 handshake within the handshake timeout",
            )));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.handshake.is_some() && polled.is_ready() {
            this.received += buf.filled().len() - before;
            if this.received >= HANDSHAKE_BYTES {
                this.handshake = None;
            }
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Connected for Guarded<Coalesced<tokio::net::TcpStream>> {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.get_ref().connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_below_the_file_limit() {
        assert_eq!(connection_cap(10_000, Some(1024)), 768);
        assert_eq!(connection_cap(500, Some(1024)), 500);
        assert_eq!(connection_cap(10_000, Some(1_048_576)), 10_000);
        assert_eq!(connection_cap(10_000, None), 10_000);
        assert_eq!(connection_cap(10_000, Some(100)), 1);
    }
}

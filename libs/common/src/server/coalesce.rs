//! Server connections that write what one turn of the connection produced in one system call.
//!
//! h2 writes a DATA frame of 256 bytes or more beside its buffer rather than into it and must
//! flush before it takes the next frame, so every response of that size costs a `writev` of its
//! own (and the client a wakeup and a read): at 64 calls in flight, FindMatches made 2.8 `writev`
//! per call against 1.7 for a small echo. [`Coalesced`] takes what h2 writes into its own buffer
//! and holds it over h2's flushes until the connection's next turn, which it asks for by waking
//! the task (so the responses other tasks finish meanwhile join the same write), the way Netty's
//! flush consolidation does. The next turn writes the buffer before it reads: h2 reads first on
//! every turn of an open connection, and its shutdown flushes through `poll_shutdown`, which
//! writes everything first. So the server speaks HTTP/2 only (tonic's default), as this relies on.
//!
//! A turn's bytes wait for at most one pass of the runtime's queue; past [`HIGH_WATER`] bytes
//! they are written at once, and a larger write goes straight through.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes held before they are written without waiting for the next turn.
pub const HIGH_WATER: usize = 64 * 1024;

/// An I/O object whose writes are held until the next read or a full buffer (see the module).
#[derive(Debug)]
pub struct Coalesced<IO> {
    inner: IO,
    /// Accepted bytes; `out[sent..]` is not written yet.
    out: Vec<u8>,
    sent: usize,
    /// The task was woken to write `out`: one wakeup per held buffer.
    woken: bool,
}

impl<IO> Coalesced<IO> {
    pub fn new(inner: IO) -> Self {
        Self { inner, out: Vec::new(), sent: 0, woken: false }
    }

    pub fn get_ref(&self) -> &IO {
        &self.inner
    }

    fn held(&self) -> bool {
        self.sent < self.out.len()
    }
}

impl<IO: AsyncWrite + Unpin> Coalesced<IO> {
    /// Writes every held byte (`Pending` when the socket is full: it wakes the task).
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.held() {
            let n = match Pin::new(&mut self.inner).poll_write(cx, &self.out[self.sent..]) {
                Poll::Ready(n) => n?,
                Poll::Pending => {
                    // What went out leaves the buffer, so a peer that reads slowly but steadily
                    // does not grow it by everything ever sent.
                    self.out.drain(..self.sent);
                    self.sent = 0;
                    return Poll::Pending;
                }
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        if self.out.capacity() > 2 * HIGH_WATER {
            // A burst's buffer is not kept by an idle connection.
            self.out = Vec::new();
        }
        self.out.clear();
        self.sent = 0;
        self.woken = false;
        Poll::Ready(Ok(()))
    }

    /// Makes room for `len` more bytes: `Ready(true)` when they are to be held, `Ready(false)`
    /// when they go straight to the socket (nothing held and at least [`HIGH_WATER`] of them).
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<bool>> {
        if self.held() && self.out.len() - self.sent + len > HIGH_WATER {
            ready!(self.poll_drain(cx))?;
        }
        Poll::Ready(Ok(self.held() || len < HIGH_WATER))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for Coalesced<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // The next turn: what the last one held goes out first. A full socket wakes the task
        // when it drains; reading goes on meanwhile.
        if this.held()
            && let Poll::Ready(Err(e)) = this.poll_drain(cx)
        {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Coalesced<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let len = bufs.iter().map(|b| b.len()).sum();
        if !ready!(this.poll_room(cx, len))? {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        this.out.reserve(len);
        for b in bufs {
            this.out.extend_from_slice(b);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Held bytes stay held until the next turn, which this asks for.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.held() {
            return Pin::new(&mut this.inner).poll_flush(cx);
        }
        if !this.woken {
            this.woken = true;
            cx.waker().wake_by_ref();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        task::{Wake, Waker},
    };

    use tokio::io::DuplexStream;

    use super::*;

    /// Counts the wakeups of the task it stands for.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    struct Turns {
        wakes: Arc<Wakes>,
        waker: Waker,
    }

    impl Turns {
        /// A connection over a socket that holds `capacity` bytes, and its peer.
        fn connection(capacity: usize) -> (Self, Coalesced<DuplexStream>, DuplexStream) {
            let wakes = Arc::new(Wakes::default());
            let (io, peer) = tokio::io::duplex(capacity);
            (Self { waker: Waker::from(wakes.clone()), wakes }, Coalesced::new(io), peer)
        }

        fn cx(&self) -> Context<'_> {
            Context::from_waker(&self.waker)
        }

        fn wakes(&self) -> usize {
            self.wakes.0.load(Ordering::SeqCst)
        }

        fn write(&self, io: &mut Coalesced<DuplexStream>, bytes: &[u8]) {
            let written = Pin::new(io).poll_write(&mut self.cx(), bytes);
            assert!(matches!(written, Poll::Ready(Ok(n)) if n == bytes.len()), "{written:?}");
        }

        fn flush(&self, io: &mut Coalesced<DuplexStream>) {
            assert!(matches!(Pin::new(io).poll_flush(&mut self.cx()), Poll::Ready(Ok(()))));
        }

        /// The next turn of the connection: it reads (nothing arrives here).
        fn turn(&self, io: &mut Coalesced<DuplexStream>) -> Poll<io::Result<()>> {
            let mut space = [0_u8; 16];
            Pin::new(io).poll_read(&mut self.cx(), &mut ReadBuf::new(&mut space))
        }

        /// Everything the peer can read now (its own wakeups are not counted).
        fn arrived(&self, peer: &mut DuplexStream) -> Vec<u8> {
            let mut got = Vec::new();
            let mut space = [0_u8; 4096];
            let mut cx = Context::from_waker(Waker::noop());
            loop {
                let mut buf = ReadBuf::new(&mut space);
                match Pin::new(&mut *peer).poll_read(&mut cx, &mut buf) {
                    Poll::Ready(Ok(())) if !buf.filled().is_empty() => got.extend_from_slice(buf.filled()),
                    _ => return got,
                }
            }
        }
    }

    #[test]
    fn a_turn_s_writes_go_out_together_at_the_next_turn() {
        let (t, mut io, mut peer) = Turns::connection(1 << 20);
        t.write(&mut io, b"first response;");
        t.flush(&mut io);
        assert_eq!(t.wakes(), 1, "a flush asks for the next turn");
        t.write(&mut io, b"second response");
        t.flush(&mut io);
        assert_eq!(t.wakes(), 1, "one wakeup per held buffer");
        assert!(t.arrived(&mut peer).is_empty(), "held over the turn's flushes");
        assert!(t.turn(&mut io).is_pending());
        assert_eq!(t.arrived(&mut peer), b"first response;second response");
        // Nothing held: a flush is the socket's and asks for nothing.
        t.flush(&mut io);
        assert_eq!(t.wakes(), 1);
        t.write(&mut io, b"third");
        t.flush(&mut io);
        assert_eq!(t.wakes(), 2, "a new buffer, a new wakeup");
    }

    #[test]
    fn shutdown_writes_what_is_held_first() {
        let (t, mut io, mut peer) = Turns::connection(1 << 20);
        t.write(&mut io, b"GOAWAY");
        t.flush(&mut io);
        assert!(matches!(Pin::new(&mut io).poll_shutdown(&mut t.cx()), Poll::Ready(Ok(()))));
        assert_eq!(t.arrived(&mut peer), b"GOAWAY");
    }

    #[test]
    fn a_full_socket_keeps_the_bytes_in_order_until_it_drains() {
        let (t, mut io, mut peer) = Turns::connection(8);
        let message: Vec<u8> = (0..30).collect();
        t.write(&mut io, &message);
        t.flush(&mut io);
        let mut got = Vec::new();
        for _ in 0..10 {
            assert!(t.turn(&mut io).is_pending());
            got.extend(t.arrived(&mut peer));
        }
        assert_eq!(got, message, "eight bytes a turn, none lost or reordered");
        // A peer that reads less than is written each turn: only what is unsent stays held.
        let mut sent = Vec::new();
        let mut got = Vec::new();
        for turn in 0..200_u8 {
            let chunk = [turn; 12];
            t.write(&mut io, &chunk);
            sent.extend_from_slice(&chunk);
            t.flush(&mut io);
            assert!(t.turn(&mut io).is_pending());
            got.extend(t.arrived(&mut peer));
            assert!(io.out.len() <= sent.len() - got.len() + 8, "{} bytes kept", io.out.len());
        }
        for _ in 0..sent.len() {
            if !io.held() {
                break;
            }
            assert!(t.turn(&mut io).is_pending());
            got.extend(t.arrived(&mut peer));
        }
        assert_eq!(got, sent, "all of it, in order");
        t.write(&mut io, b"next");
        t.flush(&mut io);
        assert!(t.turn(&mut io).is_pending());
        assert_eq!(t.arrived(&mut peer), b"next");
    }

    #[test]
    fn past_the_high_water_mark_bytes_go_out_at_once() {
        let (t, mut io, mut peer) = Turns::connection(1 << 20);
        let held = vec![1_u8; HIGH_WATER - 10];
        t.write(&mut io, &held);
        t.write(&mut io, &[2_u8; 20]);
        assert_eq!(t.arrived(&mut peer), held, "the held bytes went out to make room");
        t.flush(&mut io);
        assert!(t.turn(&mut io).is_pending());
        assert_eq!(t.arrived(&mut peer), [2_u8; 20]);
        // Nothing held: a write this large is not copied.
        let large = vec![3_u8; HIGH_WATER];
        t.write(&mut io, &large);
        assert_eq!(t.arrived(&mut peer), large);
        t.flush(&mut io);
        assert_eq!(t.wakes(), 1, "nothing was held at the last flush");
    }
}

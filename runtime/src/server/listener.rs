//! What the HTTP listener allows one client, before any token is checked: a connection limit (an acceptor
//! that closes connections beyond it at once), the HTTP/1 read timeouts and buffer size, and the same
//! header-read timeout for HTTP/2, which hyper lacks (see [`Slot`]).
//!
//! Without these, clients that open connections and send a request head slowly, or never, hold a file
//! descriptor each until the process runs out: then `/healthz` stops answering, and so do the coordinator's
//! connections and the store's files.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use futures::future::BoxFuture;
use hyper_util::rt::TokioTimer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};

use crate::config::HttpConfig;

/// Counter of connections closed at once because `http.max_connections` were open.
pub const CONNECTIONS_REFUSED: &str = "campanile_http_connections_refused_total";

/// Extra room in the HTTP/1 read buffer beyond the configured URI and header limits (request line, method,
/// version, line ends), so that a head over those limits still reaches the API, which answers it as JSON.
const HEAD_SLACK: usize = 4 << 10;

/// Sets the HTTP/1 timeouts and read buffer of a server's connection builder from `[http]`.
///
/// hyper starts the header-read timer whenever it waits for a request head: on a new connection and after
/// each answer on a kept-alive one, so it is the idle timeout of kept-alive connections too. A head larger
/// than the read buffer is answered by hyper itself (a bare 431) and the connection closed.
pub fn configure<A, Acc>(server: &mut axum_server::Server<A, Acc>, http: &HttpConfig)
where
    A: axum_server::Address,
{
    let builder = server.http_builder();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(http.header_read_timeout)
        .max_buf_size((http.max_uri_bytes + http.max_header_bytes + HEAD_SLACK).max(8192));
    // A peer that stops answering pings is gone: its connection is closed after two header-read timeouts.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(http.header_read_timeout)
        .keep_alive_timeout(http.header_read_timeout)
        .max_header_list_size(u32::try_from(http.max_header_bytes).unwrap_or(u32::MAX));
}

/// An acceptor that lets at most `max` connections be open at once, around another acceptor (plain or TLS).
/// A connection beyond the limit is closed as soon as it is accepted, before anything is read from it, and
/// counted in [`CONNECTIONS_REFUSED`]; the first refusal after a calm period is logged.
#[derive(Clone)]
pub struct Limited<A> {
    inner: A,
    slots: Arc<Semaphore>,
    full: Arc<AtomicBool>,
    header_read_timeout: Duration,
}

impl<A> Limited<A> {
    /// Wraps `inner`: at most `max` connections, each given `header_read_timeout` for each request head.
    pub fn new(inner: A, max: usize, header_read_timeout: Duration) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(max)),
            full: Arc::new(AtomicBool::new(false)),
            header_read_timeout,
        }
    }
}

impl<I, S, A> Accept<I, S> for Limited<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
    I: Send + 'static,
{
    type Stream = Slot<A::Stream>;
    type Service = A::Service;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            metrics::counter!(CONNECTIONS_REFUSED).increment(1);
            if !self.full.swap(true, Ordering::Relaxed) {
                warn!("http.max_connections connections are open: closing new ones until some end");
            }
            drop(stream);
            return Box::pin(std::future::ready(Err(io::Error::other(
                "http.max_connections reached",
            ))));
        };
        if self.full.swap(false, Ordering::Relaxed) {
            info!("accepting connections again");
        }
        let accepted = self.inner.accept(stream, service);
        let timeout = self.header_read_timeout;
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            Ok((
                Slot {
                    inner: stream,
                    _permit: permit,
                    heads: Heads::new(timeout),
                },
                service,
            ))
        })
    }
}

/// A connection holding one of [`Limited`]'s slots until it is dropped, and timing its request heads.
///
/// hyper times HTTP/1 request heads itself (`header_read_timeout`), but not HTTP/2 ones, nor the first bytes
/// it reads to tell the two apart. So the connection is failed here when, within `http.header_read_timeout`:
/// - a new connection has not shown which protocol it speaks (a client that connects and sends nothing);
/// - an HTTP/2 connection has not sent its preface and its first complete request head (a `HEADERS` frame
///   and its `CONTINUATION`s, up to `END_HEADERS`);
/// - an HTTP/2 frame header, or a request head once begun, has not been received whole.
///
/// HTTP/1 connections are left to hyper once identified.
pub struct Slot<S> {
    inner: S,
    _permit: OwnedSemaphorePermit,
    heads: Heads,
}

impl<S: AsyncRead + Unpin> AsyncRead for Slot<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.heads.expired(cx) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request head not received within http.header_read_timeout",
            )));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            this.heads.received(&buf.filled()[before..]);
            // Armed anew (or still armed): register the timer's waker with this poll.
            if this.heads.expired(cx) {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "request head not received within http.header_read_timeout",
                )));
            }
        }
        polled
    }
}

/// The client connection preface of HTTP/2 (RFC 9113, section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// HTTP/2 frame types and the flag that ends a header block.
const H2_HEADERS: u8 = 0x1;
const H2_CONTINUATION: u8 = 0x9;
const H2_END_HEADERS: u8 = 0x4;

/// Which protocol a connection speaks, as far as its bytes so far tell.
enum Protocol {
    /// This many bytes matched the HTTP/2 preface.
    Sniffing(usize),
    /// HTTP/1: hyper times its heads.
    Http1,
    /// HTTP/2, between or inside frames.
    Http2(H2Frames),
}

/// Frame boundaries of an HTTP/2 client stream: enough to know when a request head begins and ends.
#[derive(Default)]
struct H2Frames {
    /// The frame header being received (9 bytes).
    header: Vec<u8>,
    /// Payload bytes of the current frame still to come.
    payload_left: usize,
    /// The current frame ends a header block (`HEADERS`/`CONTINUATION` with `END_HEADERS`).
    ends_block: bool,
    /// A header block has begun and not ended.
    in_block: bool,
}

/// The request-head deadline of one connection.
struct Heads {
    timeout: Duration,
    /// Set while something must arrive by the deadline.
    armed: bool,
    timer: Pin<Box<tokio::time::Sleep>>,
    protocol: Protocol,
}

impl Heads {
    /// A new connection: armed, from now.
    fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            armed: true,
            timer: Box::pin(tokio::time::sleep(timeout)),
            protocol: Protocol::Sniffing(0),
        }
    }

    /// Whether the armed deadline has passed (registering the waker when it has not).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.armed && self.timer.as_mut().poll(cx).is_ready()
    }

    fn arm(&mut self) {
        if !self.armed {
            self.armed = true;
            self.timer
                .as_mut()
                .reset(tokio::time::Instant::now() + self.timeout);
        }
    }

    /// Takes in bytes the client sent.
    fn received(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.protocol {
                Protocol::Http1 => return,
                Protocol::Sniffing(matched) => {
                    let n = bytes.len().min(H2_PREFACE.len() - *matched);
                    if bytes[..n] != H2_PREFACE[*matched..*matched + n] {
                        self.protocol = Protocol::Http1;
                        self.armed = false;
                        return;
                    }
                    *matched += n;
                    bytes = &bytes[n..];
                    if *matched == H2_PREFACE.len() {
                        // Still armed: the first request head is due by the same deadline.
                        self.protocol = Protocol::Http2(H2Frames {
                            in_block: true,
                            ..H2Frames::default()
                        });
                    }
                }
                Protocol::Http2(frames) => {
                    if frames.payload_left > 0 {
                        let n = bytes.len().min(frames.payload_left);
                        frames.payload_left -= n;
                        bytes = &bytes[n..];
                        if frames.payload_left == 0 && frames.ends_block {
                            frames.ends_block = false;
                            frames.in_block = false;
                            self.armed = false;
                        }
                        continue;
                    }
                    if frames.header.is_empty() {
                        // A frame begins: its header must come whole in time.
                        self.arm();
                    }
                    let frames = match &mut self.protocol {
                        Protocol::Http2(frames) => frames,
                        _ => unreachable!("matched above"),
                    };
                    let n = bytes.len().min(9 - frames.header.len());
                    frames.header.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if frames.header.len() < 9 {
                        continue;
                    }
                    let h = std::mem::take(&mut frames.header);
                    let length =
                        usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                    let (kind, flags) = (h[3], h[4]);
                    if kind == H2_HEADERS || kind == H2_CONTINUATION {
                        frames.in_block = true;
                        frames.ends_block = flags & H2_END_HEADERS != 0;
                    } else {
                        frames.ends_block = false;
                    }
                    frames.payload_left = length;
                    let done = length == 0 && frames.ends_block;
                    if done {
                        frames.ends_block = false;
                        frames.in_block = false;
                    }
                    let waiting = frames.in_block;
                    if !waiting {
                        self.armed = false;
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Slot<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

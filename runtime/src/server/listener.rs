//! What the HTTP listener allows one client, before any token is checked: a connection limit (an acceptor
//! that closes connections beyond it at once) and the HTTP/1 read timeouts and buffer size.
//!
//! Without these, clients that open connections and send a request head slowly, or never, hold a file
//! descriptor each until the process runs out: then `/healthz` stops answering, and so do the coordinator's
//! connections and the store's files.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

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
    builder
        .http2()
        .timer(TokioTimer::new())
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
}

impl<A> Limited<A> {
    /// Wraps `inner`.
    pub fn new(inner: A, max: usize) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(max)),
            full: Arc::new(AtomicBool::new(false)),
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
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            Ok((
                Slot {
                    inner: stream,
                    _permit: permit,
                },
                service,
            ))
        })
    }
}

/// A connection holding one of [`Limited`]'s slots until it is dropped.
pub struct Slot<S> {
    inner: S,
    _permit: OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Slot<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
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

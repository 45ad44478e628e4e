//! Connections: accepting them, serving them with hyper, and ending those
//! that hold the server without using it.
//!
//! warp's own server sets no timeout, and hyper has one timer for two
//! different waits (its `header_read_timeout` also runs while a keep-alive
//! connection is idle). So each socket is wrapped in [`Guarded`], which
//! knows where its connection stands from the service around it: waiting
//! for a request head (at most [`Timeouts::head`] from the first byte, or
//! from the connection's start), idle between requests (at most
//! [`Timeouts::idle`]), or answering (a request body must arrive within
//! `idle`; an answer the client stops reading fails after
//! [`Timeouts::write`]). A connection past its time is closed.
//!
//! Accepting never stops the server: when the process is out of file
//! descriptors, the error is logged (once a second) and accepting resumes
//! as soon as connections close.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use warp::http;

type Request = http::Request<hyper::body::Incoming>;

/// How long a connection may take at each stage.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From a connection's start, or the first byte of a request, to the
    /// end of its head.
    pub head: Duration,
    /// Between requests on a keep-alive connection, and for a request body.
    pub idle: Duration,
    /// For a write the client does not take.
    pub write: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            head: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            write: Duration::from_secs(60),
        }
    }
}

/// The address of the TCP peer of a request (a proxy, behind one).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Where a connection stands.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for (the rest of) a request head, since then.
    Head(Instant),
    /// A request is being handled: its body may still be read, since then.
    Handling(Instant),
    /// The answer is going out.
    Responding,
    /// Between requests, since then.
    Idle(Instant),
}

/// One connection's phase, shared by its socket and its service.
#[derive(Debug)]
struct Stage(Mutex<Phase>);

impl Stage {
    fn set(&self, phase: Phase) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = phase;
    }

    fn get(&self) -> Phase {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A socket that fails its reads and writes once its connection is past
/// its time.
struct Guarded<T> {
    io: T,
    stage: Arc<Stage>,
    timeouts: Timeouts,
    read_timer: Pin<Box<Sleep>>,
    write_timer: Pin<Box<Sleep>>,
    /// When the current write first had to wait.
    write_waiting: Option<Instant>,
}

impl<T> Guarded<T> {
    fn read_deadline(&self) -> Option<Instant> {
        match self.stage.get() {
            Phase::Head(since) => Some(since + self.timeouts.head),
            Phase::Handling(since) => Some(since + self.timeouts.idle),
            Phase::Idle(since) => Some(since + self.timeouts.idle),
            Phase::Responding => None,
        }
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_owned())
}

/// Polls `timer` for `deadline`, resetting it when the deadline moved.
fn expired(timer: &mut Pin<Box<Sleep>>, deadline: Instant, cx: &mut Context<'_>) -> bool {
    if timer.deadline() != deadline {
        timer.as_mut().reset(deadline);
    }
    timer.as_mut().poll(cx).is_ready()
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before
                    && let Phase::Idle(_) = self.stage.get()
                {
                    // The first byte of the next request: its head is due.
                    self.stage.set(Phase::Head(Instant::now()));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => {
                let this = &mut *self;
                match this.read_deadline() {
                    Some(deadline) if expired(&mut this.read_timer, deadline, cx) => {
                        Poll::Ready(Err(timed_out("the client sent nothing in time")))
                    }
                    _ => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> Guarded<T> {
    fn guard_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match poll(Pin::new(&mut self.io), cx) {
            Poll::Ready(result) => {
                self.write_waiting = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let since = *self.write_waiting.get_or_insert_with(Instant::now);
                if expired(&mut self.write_timer, since + self.timeouts.write, cx) {
                    return Poll::Ready(Err(timed_out("the client stopped reading")));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.guard_write(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.guard_write(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guard_write(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// An answer's body that marks its connection idle once it is done.
struct Tracked<B> {
    body: B,
    stage: Arc<Stage>,
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        self.stage.set(Phase::Idle(Instant::now()));
    }
}

impl<B: http_body::Body<Data = Bytes> + Unpin> http_body::Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The service of one connection: warp's filters, with the peer's address
/// in each request and the connection's phase kept.
struct Service<S> {
    inner: S,
    stage: Arc<Stage>,
    peer: SocketAddr,
}

impl<S, B> hyper::service::Service<Request> for Service<S>
where
    S: tower_service::Service<
            Request,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
{
    type Response = http::Response<Tracked<B>>;
    type Error = std::convert::Infallible;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn call(&self, mut request: Request) -> Self::Future {
        self.stage.set(Phase::Handling(Instant::now()));
        request.extensions_mut().insert(Peer(self.peer));
        let mut inner = self.inner.clone();
        let stage = self.stage.clone();
        Box::pin(async move {
            let response = inner.call(request).await?;
            stage.set(Phase::Responding);
            Ok(response.map(|body| Tracked { body, stage }))
        })
    }
}

/// Accepts connections on `listener` and serves each with `service` until
/// `shutdown` completes; then waits for the requests under way to finish
/// (downloads among them).
pub async fn serve<S, B>(
    listener: tokio::net::TcpListener,
    service: S,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    S: tower_service::Service<
            Request,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_complaint: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors (or another passing failure):
                // say so now and then, and let connections close.
                if last_complaint.is_none_or(|at| at.elapsed() > Duration::from_secs(1)) {
                    tracing::error!("cannot accept a connection: {error}");
                    last_complaint = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let stage = Arc::new(Stage(Mutex::new(Phase::Head(Instant::now()))));
        let far = Instant::now() + Duration::from_secs(86_400);
        let io = Guarded {
            io: stream,
            stage: stage.clone(),
            timeouts,
            read_timer: Box::pin(tokio::time::sleep_until(far)),
            write_timer: Box::pin(tokio::time::sleep_until(far)),
            write_waiting: None,
        };
        let service = Service {
            inner: service.clone(),
            stage,
            peer,
        };
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            // The socket wrapper times heads and idle waits.
            .header_read_timeout(None)
            .max_buf_size(64 * 1024)
            .serve_connection(hyper_util::rt::TokioIo::new(io), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("connection from {peer} ended: {error}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

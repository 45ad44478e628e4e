//! What a streamed file costs: bytes read in chunks and charged as they
//! leave, so a download cut short is counted by what was sent.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

use super::Answer;
use super::answers::{exhausted, log_unavailable, refunded};
use crate::error;
use crate::server::App;
use crate::state::{Charge, FileKey};
use crate::store::disk;

/// Bytes per chunk of a streamed answer: large enough that hyper writes
/// few times per file; what a broken download is charged beyond what
/// arrived is at most about this plus the sockets' buffers.
pub(super) const CHUNK: usize = 1024 * 1024;

pub(super) type Chunks = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send + Sync>>;

/// A file held in memory, as chunks (so that what is sent can be counted).
pub(super) fn memory_chunks(bytes: Bytes, start: u64, length: u64) -> Chunks {
    let end = (start + length) as usize;
    let chunks: Vec<std::io::Result<Bytes>> = (start as usize..end)
        .step_by(CHUNK)
        .map(|at| Ok(bytes.slice(at..(at + CHUNK).min(end))))
        .collect();
    Box::pin(futures_util::stream::iter(chunks))
}

/// Opens a file the server streams at byte `start`: only a regular file
/// under the store's `.shop/` (local files, originals, stamped copies),
/// never what a symlink there points at.
pub(super) async fn open_at(path: &std::path::Path, start: u64) -> std::io::Result<std::fs::File> {
    use std::io::Seek;
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let shop = path
            .ancestors()
            .find(|dir| dir.file_name().is_some_and(|name| name == ".shop"))
            .ok_or_else(|| std::io::Error::other("a served file is not under `.shop/`"))?;
        if !disk::is_within(shop, &path)? {
            return Err(std::io::Error::other(format!(
                "`{}` is not a regular file of `.shop/` (a symlink?): not served",
                path.display()
            )));
        }
        let mut file = std::fs::File::open(path)?;
        if start > 0 {
            file.seek(std::io::SeekFrom::Start(start))?;
        }
        Ok(file)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Charges a streamed answer of `length` bytes from `start` of a file of
/// `size` bytes, before its first byte leaves: its meter (which gives back
/// what is not sent), or the refusal to answer with.
pub(super) async fn charge_stream(
    app: &Arc<App>,
    key: FileKey,
    limit: u32,
    size: u64,
    start: u64,
    length: u64,
) -> Result<Meter, Answer> {
    match app
        .db
        .charge_stream(key.clone(), limit, size, start, length)
        .await
    {
        Ok(Charge::Admitted) => Ok(Meter {
            app: app.clone(),
            key,
            length,
            sent: 0,
        }),
        Ok(Charge::Exhausted) => Err(exhausted(app)),
        Ok(Charge::Revoked) => Err(refunded(app)),
        Err(error) => Err(log_unavailable(app, &error)),
    }
}

/// What a streamed answer was charged and has sent: on drop (the answer
/// finished, broke or was never sent) the rest is given back.
pub(super) struct Meter {
    app: Arc<App>,
    key: FileKey,
    length: u64,
    sent: u64,
}

impl Meter {
    /// Everything charged is used (a file handed over whole another way,
    /// such as a mail to a Kindle): nothing is given back.
    pub(super) fn consumed(mut self) {
        self.sent = self.length;
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        let unsent = self.length.saturating_sub(self.sent);
        tracing::info!(
            purchase = %self.key.purchase,
            file = %self.key.file,
            version = %self.key.version,
            "download: {} of {} bytes sent",
            self.sent,
            self.length
        );
        if unsent == 0 {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (app, key) = (self.app.clone(), self.key.clone());
        runtime.spawn(async move {
            let purchase = key.purchase.clone();
            if let Err(error) = app.db.refund_stream(key, unsent).await {
                tracing::error!(
                    %purchase,
                    "cannot give back {unsent} unsent bytes: {}",
                    error::one_line(&error)
                );
            }
        });
    }
}

/// A file's chunks, counted as they are handed to the connection.
pub(super) struct Metered {
    body: Chunks,
    meter: Meter,
}

impl Metered {
    pub(super) fn new(body: Chunks, meter: Meter) -> Self {
        Metered { body, meter }
    }
}

impl Stream for Metered {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.body.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            self.meter.sent += chunk.len() as u64;
        }
        polled
    }
}

//! A file from disk as a stream of large chunks, for uploads to GitHub and
//! downloads from the local files folder.
//!
//! One blocking task reads ahead a couple of chunks: memory stays at a few
//! chunks whatever the file's size, and no chunk waits its turn in tokio's
//! blocking pool.

use std::io::Read;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;

/// Streams `length` bytes of `file` from where it stands, `chunk` bytes at
/// a time. Call it inside a tokio runtime.
pub fn chunks(
    mut file: std::fs::File,
    length: u64,
    chunk: usize,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + Sync + 'static {
    let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(2);
    tokio::task::spawn_blocking(move || {
        let mut left = length;
        while left > 0 {
            let want = chunk.min(usize::try_from(left).unwrap_or(chunk));
            let mut buffer = BytesMut::zeroed(want);
            let mut filled = 0;
            while filled < want {
                match file.read(&mut buffer[filled..]) {
                    Ok(0) => break,
                    Ok(read) => filled += read,
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(error) => {
                        let _ = sender.blocking_send(Err(error));
                        return;
                    }
                }
            }
            if filled == 0 {
                return;
            }
            buffer.truncate(filled);
            left = left.saturating_sub(filled as u64);
            if sender.blocking_send(Ok(buffer.freeze())).is_err() {
                return;
            }
        }
    });
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    })
}

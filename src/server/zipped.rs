//! A ZIP archive streamed as it is written: "Download all" of a version.
//!
//! Kept by hand (about a hundred lines of the format) rather than through
//! the `zip` crate, whose writer is synchronous and owns the bytes: here
//! each file's bytes are an async stream of their own (a local file, a
//! stamped copy, GitHub's CDN), metered as they leave so that each file in
//! the archive is counted as a download of that file, byte for byte, and
//! nothing is held in memory or written to disk. Entries are stored (no
//! compression: PDFs, EPUBs and images are compressed already), sizes
//! known in advance (so the archive's length is known before its first
//! byte), CRC-32 computed on the way and written in a data descriptor
//! after each file and in the central directory at the end (PKWARE's
//! APPNOTE 6.3: general purpose flag bit 3, and bit 11 for UTF-8 names).
//! Archives stay under 4 GiB (no ZIP64): [`fits`].

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

/// A stream of an archive's bytes.
pub type Body = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send + Sync>>;

/// Flags of every entry: sizes and CRC in a data descriptor (bit 3), the
/// name in UTF-8 (bit 11).
const FLAGS: u16 = 0x0808;
/// Version 2.0: what stored entries and data descriptors need.
const VERSION: u16 = 20;
const LOCAL_HEADER: u32 = 0x0403_4b50;
const DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const END: u32 = 0x0605_4b50;

/// One file of an archive: its name, its size, and its bytes.
pub struct Entry {
    pub name: String,
    pub size: u64,
    pub body: Body,
}

/// An MS-DOS date and time (what ZIP records) of a day at midnight.
pub fn dos_date(day: time::Date) -> (u16, u16) {
    let year = (day.year().clamp(1980, 2107) - 1980) as u16;
    let date = (year << 9) | ((day.month() as u16) << 5) | u16::from(day.day());
    (date, 0)
}

/// The bytes of an archive of these sizes and names, beyond the files'.
fn overhead(entries: &[(&str, u64)]) -> u64 {
    entries
        .iter()
        .map(|(name, _)| (30 + 16 + 46 + 2 * name.len()) as u64)
        .sum::<u64>()
        + 22
}

/// The archive's whole length, when it fits in a ZIP without ZIP64 (every
/// offset and size below 4 GiB, fewer than 65,535 entries).
pub fn fits(entries: &[(&str, u64)]) -> Option<u64> {
    let total = entries.iter().map(|(_, size)| size).sum::<u64>() + overhead(entries);
    (total < u64::from(u32::MAX) && entries.len() < usize::from(u16::MAX)).then_some(total)
}

/// The archive of `entries`, in order, dated `day`. Its length is
/// [`fits`] of their names and sizes; a file whose stream gives another
/// number of bytes than its size ends the archive with an error.
pub fn archive(entries: Vec<Entry>, day: time::Date) -> Body {
    let (date, time) = dos_date(day);
    let mut offset = 0u64;
    let done: Arc<Mutex<Vec<Central>>> = Arc::new(Mutex::new(Vec::new()));
    let mut body: Body = Box::pin(futures_util::stream::empty());
    for entry in entries {
        let name = entry.name.into_bytes();
        let mut header = BytesMut::with_capacity(30 + name.len());
        header.put_u32_le(LOCAL_HEADER);
        header.put_u16_le(VERSION);
        header.put_u16_le(FLAGS);
        header.put_u16_le(0); // stored
        header.put_u16_le(time);
        header.put_u16_le(date);
        header.put_u32_le(0); // CRC, sizes: in the descriptor
        header.put_u32_le(0);
        header.put_u32_le(0);
        header.put_u16_le(name.len() as u16);
        header.put_u16_le(0);
        header.put_slice(&name);
        let crc = Arc::new(Mutex::new(Checked {
            hasher: crc32fast::Hasher::new(),
            seen: 0,
        }));
        let data = Crc {
            body: entry.body,
            checked: crc.clone(),
        };
        let (size, at, record) = (entry.size, offset, done.clone());
        let descriptor = futures_util::stream::once(async move {
            let checked = crc.lock().map_err(|_| std::io::Error::other("poisoned"))?;
            if checked.seen != size {
                return Err(std::io::Error::other(format!(
                    "a file of the archive gave {} bytes, not {size}",
                    checked.seen
                )));
            }
            let crc = checked.hasher.clone().finalize();
            let mut bytes = BytesMut::with_capacity(16);
            bytes.put_u32_le(DESCRIPTOR);
            bytes.put_u32_le(crc);
            bytes.put_u32_le(size as u32);
            bytes.put_u32_le(size as u32);
            if let Ok(mut done) = record.lock() {
                done.push(Central {
                    name,
                    crc,
                    size: size as u32,
                    offset: at as u32,
                });
            }
            Ok(bytes.freeze())
        });
        offset += header.len() as u64 + entry.size + 16;
        body = Box::pin(
            body.chain(futures_util::stream::once(std::future::ready(Ok(
                header.freeze()
            ))))
            .chain(data)
            .chain(descriptor),
        );
    }
    let directory = futures_util::stream::once(async move {
        let done = done.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        let mut bytes = BytesMut::new();
        for entry in done.iter() {
            bytes.put_u32_le(CENTRAL);
            bytes.put_u16_le(0x0300 | VERSION); // made on Unix
            bytes.put_u16_le(VERSION);
            bytes.put_u16_le(FLAGS);
            bytes.put_u16_le(0);
            bytes.put_u16_le(time);
            bytes.put_u16_le(date);
            bytes.put_u32_le(entry.crc);
            bytes.put_u32_le(entry.size);
            bytes.put_u32_le(entry.size);
            bytes.put_u16_le(entry.name.len() as u16);
            bytes.put_u16_le(0); // extra
            bytes.put_u16_le(0); // comment
            bytes.put_u16_le(0); // disk
            bytes.put_u16_le(0); // internal attributes
            bytes.put_u32_le(0o100_644 << 16); // a regular file, rw-r--r--
            bytes.put_u32_le(entry.offset);
            bytes.put_slice(&entry.name);
        }
        let size = bytes.len() as u32;
        bytes.put_u32_le(END);
        bytes.put_u16_le(0);
        bytes.put_u16_le(0);
        bytes.put_u16_le(done.len() as u16);
        bytes.put_u16_le(done.len() as u16);
        bytes.put_u32_le(size);
        bytes.put_u32_le(offset as u32);
        bytes.put_u16_le(0);
        Ok(bytes.freeze())
    });
    Box::pin(body.chain(directory))
}

/// What the central directory says of an entry, once its bytes are out.
struct Central {
    name: Vec<u8>,
    crc: u32,
    size: u32,
    offset: u32,
}

struct Checked {
    hasher: crc32fast::Hasher,
    seen: u64,
}

/// A file's bytes, their CRC-32 and count taken as they pass.
struct Crc {
    body: Body,
    checked: Arc<Mutex<Checked>>,
}

impl Stream for Crc {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.body.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled
            && let Ok(mut checked) = self.checked.lock()
        {
            checked.hasher.update(chunk);
            checked.seen += chunk.len() as u64;
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn entry(name: &str, bytes: &'static [u8], chunk: usize) -> Entry {
        let chunks: Vec<std::io::Result<Bytes>> = bytes
            .chunks(chunk)
            .map(|part| Ok(Bytes::from_static(part)))
            .collect();
        Entry {
            name: name.into(),
            size: bytes.len() as u64,
            body: Box::pin(futures_util::stream::iter(chunks)),
        }
    }

    async fn collect(body: Body) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut body = body;
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn an_archive_streamed_in_pieces_reads_back_with_its_length_known_before() {
        let day = time::macros::date!(2026 - 12 - 07);
        let files: [(&str, &'static [u8]); 3] = [
            ("guide.pdf", b"%PDF-1.4 the pages"),
            ("guide.epub", b"PK an epub's bytes, zipped already"),
            ("Ö notes.txt", b""),
        ];
        let sizes: Vec<(&str, u64)> = files.iter().map(|(n, b)| (*n, b.len() as u64)).collect();
        let length = fits(&sizes).unwrap();
        let entries = files
            .iter()
            .map(|(name, bytes)| entry(name, bytes, 5))
            .collect();
        let bytes = collect(archive(entries, day)).await.unwrap();
        assert_eq!(bytes.len() as u64, length);
        let mut read = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(read.len(), 3);
        for (name, expected) in files {
            let mut file = read.by_name(name).unwrap();
            let mut content = Vec::new();
            file.read_to_end(&mut content).unwrap();
            assert_eq!(content, expected, "{name}");
            assert_eq!(file.crc32(), crc32fast::hash(expected));
        }
    }

    #[tokio::test]
    async fn a_file_shorter_than_its_size_ends_the_archive_with_an_error() {
        let mut short = entry("guide.pdf", b"12345", 2);
        short.size = 9;
        let result = collect(archive(vec![short], time::macros::date!(2026 - 12 - 07))).await;
        assert!(result.is_err());
    }
}

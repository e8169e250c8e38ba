//! Bytes in: format sniffing and a reader thread that inflates (or just reads) the file into
//! chunks while the caller parses the previous ones, so decompression and parsing overlap.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use flate2::read::MultiGzDecoder;

use crate::error::{Result, TraceError};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// Big enough that channel hand-offs are rare, small enough that a few in flight stay cheap.
const CHUNK: usize = 1 << 20;
const CHUNKS_IN_FLIGHT: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    Json,
    GzipJson,
    Sqlite,
}

/// Looks at the first bytes of `path`: gzip magic, the SQLite header, or (anything else) JSON.
pub fn sniff(path: &Path) -> Result<Container> {
    let mut f = File::open(path).map_err(|e| TraceError::read(path, e))?;
    let mut head = [0u8; 16];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(TraceError::read(path, e)),
        }
    }
    if n == 0 {
        return Err(TraceError::format(path, "the file is empty"));
    }
    Ok(if head[..n].starts_with(&GZIP_MAGIC) {
        Container::GzipJson
    } else if n == 16 && &head == SQLITE_MAGIC {
        Container::Sqlite
    } else {
        Container::Json
    })
}

/// The decompressed bytes of a JSON trace, delivered in chunks by a background thread.
pub struct ChunkStream {
    path: PathBuf,
    compressed: bool,
    rx: Option<Receiver<io::Result<Vec<u8>>>>,
    recycle: SyncSender<Vec<u8>>,
    thread: Option<JoinHandle<()>>,
    delivered: u64,
}

impl ChunkStream {
    pub fn open(path: &Path, container: Container) -> Result<ChunkStream> {
        let file = File::open(path).map_err(|e| TraceError::read(path, e))?;
        let compressed = container == Container::GzipJson;
        // Always the multi-member decoder: concatenated gzip members are valid gzip and
        // some writers append.
        let reader: Box<dyn Read + Send> = if compressed {
            Box::new(MultiGzDecoder::new(io::BufReader::with_capacity(
                1 << 18,
                file,
            )))
        } else {
            Box::new(file)
        };
        let (tx, rx) = sync_channel(CHUNKS_IN_FLIGHT);
        let (recycle, spare) = sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT + 2);
        let thread = std::thread::Builder::new()
            .name("trace-read".into())
            .spawn(move || read_chunks(reader, tx, spare))
            .map_err(|e| TraceError::read(path, e))?;
        Ok(ChunkStream {
            path: path.to_path_buf(),
            compressed,
            rx: Some(rx),
            recycle,
            thread: Some(thread),
            delivered: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn compressed(&self) -> bool {
        self.compressed
    }

    /// The next chunk, `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(rx) = &self.rx else { return Ok(None) };
        match rx.recv() {
            Ok(Ok(chunk)) => {
                self.delivered += chunk.len() as u64;
                Ok(Some(chunk))
            }
            Ok(Err(e)) => Err(if self.compressed {
                TraceError::Gzip {
                    path: self.path.clone(),
                    offset: self.delivered,
                    source: e,
                }
            } else {
                TraceError::read(&self.path, e)
            }),
            Err(_) => Ok(None),
        }
    }

    /// Hands a consumed chunk back so the reader thread can reuse its allocation (and its
    /// length: the reader overwrites it, so it need not be zeroed again).
    pub fn recycle(&self, chunk: Vec<u8>) {
        let _ = self.recycle.try_send(chunk);
    }
}

impl Drop for ChunkStream {
    fn drop(&mut self) {
        // Closing the channel makes the reader's next send fail, so it stops promptly.
        self.rx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_chunks(
    mut reader: Box<dyn Read + Send>,
    tx: SyncSender<io::Result<Vec<u8>>>,
    spare: Receiver<Vec<u8>>,
) {
    loop {
        let mut chunk = spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        chunk.resize(CHUNK, 0);
        let mut filled = 0;
        let result = loop {
            match reader.read(&mut chunk[filled..]) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    filled += n;
                    if filled == chunk.len() {
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        chunk.truncate(filled);
        let last = filled < CHUNK;
        if filled > 0 && tx.send(Ok(chunk)).is_err() {
            return;
        }
        if let Err(e) = result {
            let _ = tx.send(Err(e));
            return;
        }
        if last {
            return;
        }
    }
}

//! Output files that appear complete or not at all: bytes go to a temporary file next to the
//! destination (so the final rename stays on one filesystem) and are renamed into place only by
//! [`AtomicOutput::commit`]; dropping the writer before that deletes the temporary file.
//!
//! Writing (and gzip compression for `.gz` names) happens on a background thread, so an
//! export overlaps with the parsing that feeds it.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::buffers::BufferPool;
use std::thread::JoinHandle;

use flate2::Compression;
use flate2::write::GzEncoder;
use tempfile::TempPath;

use crate::error::{Result, TraceError};

const FLUSH_AT: usize = 1 << 20;

/// The one way loupe writes a whole file: `f` writes into a temporary file beside `path`
/// (same directory, so the rename stays on one filesystem), which is renamed onto `path` only
/// when `f` and the flush succeed. On any error the temporary file is deleted and `path` is
/// left as it was; the error names `path`.
pub fn write_atomic<T>(
    path: &Path,
    f: impl FnOnce(&mut BufWriter<File>) -> io::Result<T>,
) -> io::Result<T> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let temp = temp_beside(path)
        .ok_or_else(|| named(io::Error::other("not a file name")))?
        .map_err(named)?;
    let (file, temp) = temp.into_parts();
    let mut w = BufWriter::new(file);
    let v = f(&mut w).map_err(named)?;
    w.into_inner()
        .map_err(|e| named(e.into_error()))?
        .sync_all()
        .map_err(named)?;
    temp.persist(path).map_err(|e| named(e.error))?;
    Ok(v)
}

/// Refuses an output that is one of the inputs (the same file, by canonical path): writing it
/// would replace what is still being read. Every export checks this before it writes.
pub fn ensure_not_an_input<'a>(
    out: &Path,
    inputs: impl IntoIterator<Item = &'a Path>,
) -> Result<()> {
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    let Some(o) = canon(out) else {
        return Ok(());
    };
    if inputs.into_iter().any(|i| canon(i).as_ref() == Some(&o)) {
        return Err(TraceError::Usage(format!(
            "{}: the output would replace one of the inputs",
            out.display()
        )));
    }
    Ok(())
}

/// A file being written: bytes go through a writer thread (gzip for `.gz` names) into a
/// temporary file that [`AtomicOutput::commit`] renames onto the destination.
/// A temporary file beside `path` (same directory, so the final rename stays on one
/// filesystem), named `.<name>.<random>.tmp`; `None` when `path` has no file name.
fn temp_beside(path: &Path) -> Option<io::Result<tempfile::NamedTempFile>> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name()?.to_string_lossy().into_owned();
    let prefix = format!(".{name}.");
    let mut b = tempfile::Builder::new();
    b.prefix(&prefix).suffix(".tmp");
    // tempfile makes its files 0600; an output is an ordinary file, so give it the mode
    // `File::create` would (0666 less the umask), or others could not read a shared report.
    #[cfg(unix)]
    b.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    Some(b.tempfile_in(dir))
}

pub struct AtomicOutput {
    path: PathBuf,
    temp: Option<TempPath>,
    tx: Option<SyncSender<Vec<u8>>>,
    buffers: BufferPool,
    thread: Option<JoinHandle<io::Result<()>>>,
    /// Bytes not yet handed to the writer thread; callers append to it directly.
    pub buf: Vec<u8>,
}

impl AtomicOutput {
    /// Starts writing `path`; gzip-compressed when the name ends in `.gz`.
    pub fn create(path: &Path) -> Result<AtomicOutput> {
        let temp = temp_beside(path)
            .ok_or_else(|| TraceError::Usage(format!("{}: not a file name", path.display())))?
            .map_err(|e| TraceError::write(path, e))?;
        let (file, temp) = temp.into_parts();
        let gzip = path.to_string_lossy().ends_with(".gz");
        let (tx, rx) = sync_channel::<Vec<u8>>(4);
        let buffers = BufferPool::new(FLUSH_AT + (FLUSH_AT >> 2));
        let give_back = buffers.clone();
        let thread = std::thread::Builder::new()
            .name("trace-write".into())
            .spawn(move || write_chunks(file, gzip, rx, give_back))
            .map_err(|e| TraceError::write(path, e))?;
        Ok(AtomicOutput {
            path: path.to_path_buf(),
            temp: Some(temp),
            tx: Some(tx),
            buf: buffers.take(),
            buffers,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the writer thread returns written buffers: fill one of these for
    /// [`AtomicOutput::push_block`] rather than a new allocation.
    pub fn buffers(&self) -> &BufferPool {
        &self.buffers
    }

    /// Hands the buffer to the writer thread once it is large enough.
    pub fn maybe_flush(&mut self) -> Result<()> {
        if self.buf.len() >= FLUSH_AT {
            self.flush_buf()?;
        }
        Ok(())
    }

    /// Queues `block` for writing after what is buffered, without copying it.
    pub fn push_block(&mut self, block: Vec<u8>) -> Result<()> {
        self.flush_buf()?;
        self.send(block)
    }

    fn flush_buf(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, self.buffers.take());
        self.send(full)
    }

    fn send(&mut self, bytes: Vec<u8>) -> Result<()> {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(bytes).is_ok());
        if !sent {
            // The writer thread stopped: its error says why.
            return Err(self.join().err().unwrap_or_else(|| {
                TraceError::write(&self.path, io::Error::other("the writer thread stopped"))
            }));
        }
        Ok(())
    }

    fn join(&mut self) -> Result<()> {
        self.tx.take();
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(Ok(()))) | None => Ok(()),
            Some(Ok(Err(e))) => Err(TraceError::write(&self.path, e)),
            Some(Err(_)) => Err(TraceError::write(
                &self.path,
                io::Error::other("the writer thread panicked"),
            )),
        }
    }

    /// Writes what is left, closes the file and renames it into place.
    pub fn commit(mut self) -> Result<()> {
        self.flush_buf()?;
        self.join()?;
        let temp = self.temp.take().expect("committed once");
        temp.persist(&self.path)
            .map_err(|e| TraceError::write(&self.path, e.error))?;
        Ok(())
    }
}

impl Write for AtomicOutput {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.maybe_flush().map_err(io::Error::other)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for AtomicOutput {
    fn drop(&mut self) {
        // Not committed: stop the writer, then `temp` deletes the partial file.
        let _ = self.join();
    }
}

enum Sink {
    Plain(BufWriter<File>),
    Gzip(Box<GzEncoder<BufWriter<File>>>),
}

fn write_chunks(
    file: File,
    gzip: bool,
    rx: Receiver<Vec<u8>>,
    give_back: BufferPool,
) -> io::Result<()> {
    let inner = BufWriter::with_capacity(1 << 18, file);
    // Level 1: a merged multi-GB trace must not wait on the compressor; the ratio is close.
    let mut sink = if gzip {
        Sink::Gzip(Box::new(GzEncoder::new(inner, Compression::fast())))
    } else {
        Sink::Plain(inner)
    };
    for chunk in rx {
        match &mut sink {
            Sink::Plain(w) => w.write_all(&chunk)?,
            Sink::Gzip(w) => w.write_all(&chunk)?,
        }
        give_back.give(chunk);
    }
    let mut inner = match sink {
        Sink::Plain(w) => w,
        Sink::Gzip(w) => w.finish()?,
    };
    inner.flush()?;
    inner.get_ref().sync_all()
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(unix)]
    fn write_atomic_gives_the_mode_file_create_gives() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        std::fs::File::create(&a).unwrap();
        super::write_atomic(&b, |w| std::io::Write::write_all(w, b"x")).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode(&b), mode(&a));
    }

    #[test]
    fn write_atomic_replaces_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.csv");
        std::fs::write(&p, "old").unwrap();
        let err = super::write_atomic(&p, |w| {
            std::io::Write::write_all(w, b"half")?;
            Err::<(), _>(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("out.csv: disk full"), "{err}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left"
        );
        super::write_atomic(&p, |w| std::io::Write::write_all(w, b"new")).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    use super::*;

    #[test]
    fn nothing_appears_until_commit_and_nothing_stays_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        let mut out = AtomicOutput::create(&path).unwrap();
        out.buf.extend_from_slice(b"{}");
        assert!(!path.exists());
        drop(out);
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let mut out = AtomicOutput::create(&path).unwrap();
        out.buf.extend_from_slice(b"{\"a\": 1}");
        out.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\": 1}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn gz_names_are_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json.gz");
        let mut out = AtomicOutput::create(&path).unwrap();
        for _ in 0..100_000 {
            out.buf.extend_from_slice(b"0123456789");
            out.maybe_flush().unwrap();
        }
        out.commit().unwrap();
        let mut text = String::new();
        io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(File::open(&path).unwrap()),
            &mut text,
        )
        .unwrap();
        assert_eq!(text.len(), 1_000_000);
        assert!(std::fs::metadata(&path).unwrap().len() < 100_000);
    }
}

//! Where JSON lines go: stdout or a file, buffered. A closed stdout (`| head`) ends the run
//! quietly instead of failing.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde::Serialize;

/// What writing a line did.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// The reader went away (EPIPE): stop quietly.
    Closed,
}

/// A JSON-lines sink.
pub struct Output {
    inner: BufWriter<Box<dyn Write + Send>>,
    line: Vec<u8>,
    /// The file written, to reopen after log rotation.
    path: Option<std::path::PathBuf>,
}

impl Output {
    pub fn stdout() -> Output {
        Output::from_writer(Box::new(io::stdout()))
    }

    pub fn file(path: &Path) -> io::Result<Output> {
        let f = File::options().create(true).append(true).open(path)?;
        let mut o = Output::from_writer(Box::new(f));
        o.path = Some(path.to_path_buf());
        Ok(o)
    }

    /// Flushes, then opens the file again by its path (after logrotate moved it). Stdout is
    /// left as it is. On error the old file stays in use.
    pub fn reopen(&mut self) -> io::Result<()> {
        self.inner.flush()?;
        if let Some(p) = &self.path {
            let f = File::options().create(true).append(true).open(p)?;
            self.inner = BufWriter::with_capacity(1 << 16, Box::new(f));
        }
        Ok(())
    }

    pub fn from_writer(w: Box<dyn Write + Send>) -> Output {
        Output {
            inner: BufWriter::with_capacity(1 << 16, w),
            line: Vec::with_capacity(1024),
            path: None,
        }
    }

    /// Writes one event as one line.
    pub fn write<T: Serialize>(&mut self, event: &T) -> io::Result<WriteOutcome> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, event).map_err(io::Error::other)?;
        self.line.push(b'\n');
        closed_is_ok(self.inner.write_all(&self.line))
    }

    pub fn flush(&mut self) -> io::Result<WriteOutcome> {
        closed_is_ok(self.inner.flush())
    }
}

fn closed_is_ok(r: io::Result<()>) -> io::Result<WriteOutcome> {
    match r {
        Ok(()) => Ok(WriteOutcome::Written),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(WriteOutcome::Closed),
        Err(e) => Err(e),
    }
}

//! Where events go: stdout or a file, buffered, as JSON lines or (`--format text`, or by
//! default on a terminal) as the text view of `text.rs`. A closed stdout (`| head`) ends the
//! run quietly instead of failing.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::Path;

use serde::Serialize;

use super::text::{Style, TextForm};

/// `--format`: how events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// JSON lines (the alert contract).
    Json,
    /// Lines for a person (docs/EVENTS.md, "Text view").
    Text,
}

/// What writing a line did.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// The reader went away (EPIPE): stop quietly.
    Closed,
}

/// An event sink.
pub struct Output {
    inner: BufWriter<Box<dyn Write + Send>>,
    line: Vec<u8>,
    /// The file written, to reopen after log rotation.
    path: Option<std::path::PathBuf>,
    /// `Some`: the text view, drawn so.
    text: Option<Style>,
    text_line: String,
    /// A progress bar on the terminal this writes to: lines are written around it.
    bar: Option<indicatif::ProgressBar>,
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
            text: None,
            text_line: String::new(),
            bar: None,
        }
    }

    /// Chooses the format: the one asked for, else text when this is stdout on a terminal, so
    /// that every pipe and file gets JSON lines. Colour only on a terminal, and there unless
    /// `NO_COLOR` is set or `TERM=dumb`.
    pub fn with_format(mut self, asked: Option<Format>) -> Output {
        let terminal = self.path.is_none() && io::stdout().is_terminal();
        let text = match asked {
            Some(Format::Json) => false,
            Some(Format::Text) => true,
            None => terminal,
        };
        self.text = text.then(|| {
            let env = Style::from_env(
                std::env::var_os("NO_COLOR").as_deref(),
                std::env::var_os("TERM").as_deref(),
            );
            Style {
                color: terminal && env.color,
            }
        });
        self
    }

    /// A progress bar drawn on stderr: when this is stdout on the same kind of terminal, each
    /// event is written and flushed with the bar taken off, so the two never share a line.
    pub fn draw_around(&mut self, bar: Option<indicatif::ProgressBar>) {
        self.bar = bar.filter(|_| self.path.is_none() && io::stdout().is_terminal());
    }

    /// Whether events are written as text.
    pub fn is_text(&self) -> bool {
        self.text.is_some()
    }

    /// Writes one event: one JSON line, or its text lines.
    pub fn write<T: Serialize + TextForm>(&mut self, event: &T) -> io::Result<WriteOutcome> {
        self.line.clear();
        if let Some(style) = self.text {
            self.text_line.clear();
            event.text(style, &mut self.text_line);
            self.line.extend_from_slice(self.text_line.as_bytes());
        } else {
            serde_json::to_writer(&mut self.line, event).map_err(io::Error::other)?;
            self.line.push(b'\n');
        }
        match &self.bar {
            Some(bar) => {
                let (inner, line) = (&mut self.inner, &self.line);
                closed_is_ok(bar.suspend(|| inner.write_all(line).and_then(|()| inner.flush())))
            }
            None => closed_is_ok(self.inner.write_all(&self.line)),
        }
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

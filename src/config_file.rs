//! The configuration file (TOML): every command-line option, the command line winning.
//!
//! The file's keys are the long option names of one subcommand, as written on the command line
//! (`max-keys = 500000`, `window = "24h"`, `watch-methods = ["POST", "PATCH"]`,
//! `promisc = true`); the snake_case spelling (`max_keys`) is the same key. A trailing positional
//! argument (`#[arg(last = true)]`, such as the BPF `filter`) is keyed by its id:
//! `filter = "tcp port 80"`. Global options of the root command (`verbose`, `quiet`) are keys too.
//! Nothing here names an option: the keys come from the clap [`Command`], so the file can never
//! drift from the command line.
//!
//! How the file is applied: [`merge_argv`] turns its settings into command-line words and inserts
//! them into the real command line, for every option that the command line (or its environment
//! variable, where an option has one) did not set. The caller then parses the merged words with
//! clap as usual, so every value goes through the option's own parser, and the precedence is
//! command line > environment > file > default. A clap error about a value that came from the
//! file says so only if the caller adds it: [`merge`] returns the settings it inserted with
//! their lines, and [`Merged::blame`] names the file line behind a clap error.
//!
//! Which options the command line set: the command line is first parsed alone, with clap's
//! `ignore_errors(true)`, and an option counts as set when clap reports it from the command line
//! or the environment. This reuses clap's own reading of short clusters, `--opt=value`,
//! aliases, globals before the subcommand and `--`, and it tolerates a command line that lacks a
//! required option the file supplies. If that pass still fails (`--help`, `--version`), the
//! command line is returned unchanged, so clap shows what it would have shown without the file.
//!
//! Where the file's words go: right after the subcommand's name, before the command line's own
//! options, so that the command line's words come later (clap lets a later `overrides_with`
//! option win) and clap reports the command line's own errors in their usual form. Options that
//! take several values in one occurrence without a delimiter go just before `--` (or at the end)
//! instead, where nothing follows them that clap could take for one of their values. Filter
//! words go after a `--` (added if needed), and only when the command line has no filter. A file
//! setting that conflicts (`conflicts_with`, or a group allowing one member) with an option set
//! on the command line is dropped: the command line wins.

use std::any::TypeId;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use toml::de::{DeTable, DeValue};

/// Where `idemwatch live` looks for its configuration when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/idemwatch/idemwatch.toml";

/// Options that make no sense inside the file (the file is already being read).
const NOT_IN_FILE: &[&str] = &["config"];

/// A configuration file that cannot be read or used. Every variant that concerns the file's
/// content names the file and a line, counting from 1.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}; {hint}")]
    Read {
        path: String,
        source: std::io::Error,
        hint: &'static str,
    },
    /// The file is not valid TOML.
    #[error("{path} line {line}, column {column}: TOML syntax error: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A key that is no option of the subcommand.
    #[error("{message}")]
    UnknownKey {
        path: String,
        line: usize,
        key: String,
        /// The closest option name, if one is close.
        suggestion: Option<String>,
        message: String,
    },
    /// A value of the wrong TOML type for its option.
    #[error("{path} line {line}: {message}")]
    WrongType {
        path: String,
        line: usize,
        key: String,
        message: String,
    },
    /// Two keys for the same option (`max-keys` and `max_keys`, or an alias).
    #[error(
        "{path} line {line}: '{key}' sets the same option as '{first_key}' on line {first_line}"
    )]
    Duplicate {
        path: String,
        line: usize,
        key: String,
        first_key: String,
        first_line: usize,
    },
    /// A key naming an option that is given on the command line only.
    #[error("{path} line {line}: '{key}' cannot be set in the configuration file; {reason}")]
    NotAllowed {
        path: String,
        line: usize,
        key: String,
        reason: &'static str,
    },
    /// The caller asked for a subcommand that the command does not have (a programming error).
    #[error("the command has no subcommand '{0}'")]
    NoSubcommand(String),
}

impl ConfigFileError {
    /// The file line the error is about, if it is about one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Syntax { line, .. }
            | Self::UnknownKey { line, .. }
            | Self::WrongType { line, .. }
            | Self::Duplicate { line, .. }
            | Self::NotAllowed { line, .. } => Some(*line),
            Self::Read { .. } | Self::NoSubcommand(_) => None,
        }
    }
}

/// Reads the configuration file at `path`. `explicit` says that the user named it (`--config`):
/// then a missing file is an error; otherwise `path` is the default path, and a missing file is
/// `Ok(None)` (no configuration file). Any other failure (permissions, a directory, not UTF-8)
/// is an error either way. A leading byte-order mark is dropped.
pub fn read_config(path: &Path, explicit: bool) -> Result<Option<String>, ConfigFileError> {
    match std::fs::read_to_string(path) {
        Ok(mut text) => {
            if text.starts_with('\u{feff}') {
                text.drain(..'\u{feff}'.len_utf8());
            }
            Ok(Some(text))
        }
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => {
            let hint = match e.kind() {
                std::io::ErrorKind::NotFound => "check the path given with --config",
                std::io::ErrorKind::PermissionDenied => {
                    "make it readable by the user idemwatch runs as, or give another file with --config"
                }
                std::io::ErrorKind::InvalidData => "the configuration file must be UTF-8 text",
                std::io::ErrorKind::IsADirectory => "--config takes a file, not a directory",
                _ => "give a readable TOML file with --config",
            };
            Err(ConfigFileError::Read {
                path: path.display().to_string(),
                source: e,
                hint,
            })
        }
    }
}

/// One file setting that [`merge`] put into the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSetting {
    /// The key as written in the file (`max_keys`).
    pub key: String,
    /// The option's canonical key (`max-keys`).
    pub option: String,
    /// The clap id of the option.
    pub arg_id: String,
    /// The file line of the key, counting from 1.
    pub line: usize,
    /// How clap names the option in its errors (`--max-keys <N>`).
    display: String,
}

/// The command line with the file's settings merged in, and where each inserted word came from.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The words to parse (argv[0] first).
    pub argv: Vec<OsString>,
    /// The file.
    pub file: PathBuf,
    /// Every setting inserted from the file, in file order. Settings that the command line
    /// overrode are not here.
    pub from_file: Vec<FileSetting>,
}

impl Merged {
    /// The file setting that a clap error (from parsing [`Merged::argv`]) is about, if the
    /// option it names got its value from the file.
    pub fn setting_for(&self, err: &clap::Error) -> Option<&FileSetting> {
        use clap::error::{ContextKind, ContextValue};
        for kind in [ContextKind::InvalidArg, ContextKind::PriorArg] {
            let names: Vec<&str> = match err.get(kind) {
                Some(ContextValue::String(s)) => vec![s.as_str()],
                Some(ContextValue::Strings(v)) => v.iter().map(String::as_str).collect(),
                _ => continue,
            };
            for name in names {
                if let Some(s) = self.from_file.iter().find(|s| s.display == name) {
                    return Some(s);
                }
            }
        }
        None
    }

    /// A sentence to print after a clap error whose value came from the file, e.g.
    /// "the value of 'max-keys' comes from /etc/idemwatch/idemwatch.toml line 4".
    pub fn blame(&self, err: &clap::Error) -> Option<String> {
        self.setting_for(err).map(|s| {
            format!(
                "the value of '{}' comes from {} line {}",
                s.key,
                self.file.display(),
                s.line
            )
        })
    }
}

/// The argv to parse: `argv` (the real command line, argv\[0\] first, the subcommand name in it)
/// with the file's settings inserted for every option the command line did not set. `cmd` is the
/// full clap Command (`Cli::command()`); `subcommand` is e.g. "live". Options the command line
/// set win; file values for options not on the command line are inserted before any `--`
/// (filter words go after a `--`, created if needed, only when the command line has no filter).
/// See the module documentation for the details, and [`merge`] for the same with the origin of
/// each inserted setting.
pub fn merge_argv(
    cmd: &Command,
    subcommand: &str,
    argv: Vec<OsString>,
    file: &Path,
    text: &str,
) -> Result<Vec<OsString>, ConfigFileError> {
    merge(cmd, subcommand, argv, file, text).map(|m| m.argv)
}

/// [`merge_argv`], also returning which file line each inserted setting came from, for
/// [`Merged::blame`] and [`effective_toml_with_sources`].
pub fn merge(
    cmd: &Command,
    subcommand: &str,
    argv: Vec<OsString>,
    file: &Path,
    text: &str,
) -> Result<Merged, ConfigFileError> {
    let mut root = cmd.clone();
    root.build();
    let sub = root
        .find_subcommand(subcommand)
        .ok_or_else(|| ConfigFileError::NoSubcommand(subcommand.to_owned()))?;
    let opts = options(sub);
    let help_cmd = format!(
        "{} {} --help",
        root.get_bin_name().unwrap_or(root.get_name()),
        sub.get_name()
    );
    let values = read_settings(&opts, &help_cmd, file, text)?;

    let unchanged = |argv| Merged {
        argv,
        file: file.to_owned(),
        from_file: Vec::new(),
    };
    // What the command line sets, read by clap itself (see the module documentation).
    let Ok(first) = cmd
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(argv.iter())
    else {
        return Ok(unchanged(argv));
    };
    let Some(sub_m) = first.subcommand_matches(sub.get_name()) else {
        return Ok(unchanged(argv));
    };
    let set_here = |m: &ArgMatches, id: &str| {
        m.ids().any(|i| i.as_str() == id)
            && matches!(
                m.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
    };
    let cli_set: Vec<&Arg> = sub
        .get_arguments()
        .filter(|a| {
            let id = a.get_id().as_str();
            set_here(sub_m, id) || (a.is_global_set() && set_here(&first, id))
        })
        .collect();

    let mut early: Vec<OsString> = Vec::new();
    let mut late: Vec<OsString> = Vec::new();
    let mut trailing: Vec<OsString> = Vec::new();
    let mut from_file = Vec::new();
    for v in values {
        let opt = &opts[v.opt];
        if cli_set.iter().any(|a| a.get_id() == opt.arg.get_id())
            || cli_set.iter().any(|a| conflicting(sub, a, opt.arg))
            || v.words.is_empty()
        {
            continue;
        }
        let dest = match opt.shape {
            Shape::Multi => &mut late,
            Shape::Trailing => &mut trailing,
            _ => &mut early,
        };
        dest.extend(v.words);
        from_file.push(FileSetting {
            key: v.key,
            option: opt.key.clone(),
            arg_id: opt.arg.get_id().to_string(),
            line: v.line,
            display: opt.arg.to_string(),
        });
    }

    let sub_idx = subcommand_index(&root, sub, &argv);
    let start = sub_idx.map_or(1, |i| i + 1).min(argv.len());
    let dd = argv[start..]
        .iter()
        .position(|w| w == "--")
        .map(|p| p + start);
    let mut out = Vec::with_capacity(argv.len() + early.len() + late.len() + trailing.len() + 1);
    let mut rest = argv.into_iter();
    match sub_idx {
        Some(i) => {
            out.extend(rest.by_ref().take(i + 1));
            out.append(&mut early);
            out.extend(rest.by_ref().take(dd.map_or(usize::MAX, |d| d - i - 1)));
        }
        None => {
            out.extend(rest.by_ref().take(dd.unwrap_or(usize::MAX)));
            out.append(&mut early);
        }
    }
    out.append(&mut late);
    out.extend(rest);
    if !trailing.is_empty() {
        if dd.is_none() {
            out.push("--".into());
        }
        out.append(&mut trailing);
    }
    Ok(Merged {
        argv: out,
        file: file.to_owned(),
        from_file,
    })
}

/// The effective configuration as TOML (every option of the subcommand with its value — from
/// the command line, the file, or its default — and `# default` comments where not set), for
/// `idemwatch check-config`. `matches` are the matches of the merged command line: the root's
/// or the subcommand's. Options whose default is not clap's own (`Option` values whose default
/// the program's settings pick) appear commented out, as `# window = "24h"  # default`, so the
/// output parses as TOML and holds exactly the values set. `defaults` gives those values, by
/// option id, as written on the command line (from the run's settings); an option without one
/// shows the "\[default: X\]" prose of its help ("none, not saved").
pub fn effective_toml(
    cmd: &Command,
    subcommand: &str,
    matches: &ArgMatches,
    defaults: &[(&str, String)],
) -> String {
    effective(cmd, subcommand, matches, defaults, None)
}

/// [`effective_toml`], marking each set value with where it came from: the file and its line,
/// or the command line.
pub fn effective_toml_with_sources(
    cmd: &Command,
    subcommand: &str,
    matches: &ArgMatches,
    defaults: &[(&str, String)],
    merged: &Merged,
) -> String {
    effective(cmd, subcommand, matches, defaults, Some(merged))
}

fn effective(
    cmd: &Command,
    subcommand: &str,
    matches: &ArgMatches,
    defaults: &[(&str, String)],
    merged: Option<&Merged>,
) -> String {
    let mut root = cmd.clone();
    root.build();
    let Some(sub) = root.find_subcommand(subcommand) else {
        return format!("# the command has no subcommand '{subcommand}'\n");
    };
    // The root's matches or the subcommand's: `subcommand_matches` would panic (a debug
    // assertion) on the subcommand's own, which has no subcommands.
    let m = match matches.subcommand() {
        Some((name, m)) if name == sub.get_name() => m,
        _ => matches,
    };
    let mut out = "# The effective configuration: the command line over the configuration file \
                   over the defaults.\n"
        .to_owned();
    let mut opts = options(sub);
    // Globals last, under their own heading.
    opts.sort_by_key(|o| o.arg.is_global_set());
    let mut heading: Option<&str> = Some("Options");
    for opt in &opts {
        if matches!(opt.shape, Shape::Positional) || NOT_IN_FILE.contains(&opt.key.as_str()) {
            continue;
        }
        let h = if opt.arg.is_global_set() {
            Some("Global options")
        } else {
            opt.arg.get_help_heading()
        };
        if h != heading {
            let _ = write!(out, "\n# {}\n", h.unwrap_or("Options"));
        }
        heading = h;

        let id = opt.arg.get_id().as_str();
        let present = m.ids().any(|i| i.as_str() == id);
        let source = if present { m.value_source(id) } else { None };
        match source {
            Some(ValueSource::CommandLine | ValueSource::EnvVariable) => {
                let v = current_value(opt, m).unwrap_or_else(|| "\"\"".to_owned());
                let note = match (source, merged) {
                    (Some(ValueSource::EnvVariable), _) => "  # from the environment".to_owned(),
                    (_, Some(mg)) => match mg.from_file.iter().find(|s| s.arg_id == id) {
                        Some(s) => format!("  # {} line {}", mg.file.display(), s.line),
                        None => "  # command line".to_owned(),
                    },
                    _ => String::new(),
                };
                let _ = writeln!(out, "{} = {v}{note}", opt.key);
            }
            Some(ValueSource::DefaultValue) => match current_value(opt, m) {
                Some(v) => {
                    let _ = writeln!(out, "{} = {v}  # default", opt.key);
                }
                None => {
                    let _ = writeln!(out, "# {}: not set", opt.key);
                }
            },
            _ => {
                // Not set and no clap default: the value the settings use.
                let given = defaults
                    .iter()
                    .find(|(k, _)| *k == id)
                    .map(|(_, d)| d.clone());
                match given.or_else(|| documented_default(opt.arg)) {
                    Some(d) => match render_default(opt, &d) {
                        Some(v) => {
                            let _ = writeln!(out, "# {} = {v}  # default", opt.key);
                        }
                        None => {
                            let _ = writeln!(out, "# {}: not set (default: {d})", opt.key);
                        }
                    },
                    None if matches!(opt.shape, Shape::Repeat) => {
                        let _ = writeln!(out, "# {} = []  # default", opt.key);
                    }
                    None => {
                        let _ = writeln!(out, "# {}: not set", opt.key);
                    }
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The options of a subcommand.

/// What TOML type an option's values take, from the type its clap value parser produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    Bool,
    Int,
    Float,
    Str,
}

/// How an option is written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `--flag` (SetTrue: present when true; SetFalse: present when false).
    Flag { present_when: bool },
    /// `-v` repeated n times.
    Count,
    /// `--opt=value`.
    One,
    /// `--opt=a,b,c`.
    Delimited(char),
    /// `--opt=a --opt=b`.
    Repeat,
    /// `--opt a b c` (several values in one occurrence, no delimiter).
    Multi,
    /// Words after `--` (`last = true`).
    Trailing,
    /// A positional argument before `--`: command line only.
    Positional,
}

struct Opt<'a> {
    arg: &'a Arg,
    /// The canonical key: the long name, or the id for positional and short-only arguments.
    key: String,
    shape: Shape,
    scalar: Scalar,
}

fn normalize(key: &str) -> String {
    key.replace('_', "-")
}

/// Every option of the (built) subcommand that the file may name, in declaration order.
fn options(sub: &Command) -> Vec<Opt<'_>> {
    let mut out = Vec::new();
    for arg in sub.get_arguments() {
        let shape = match arg.get_action() {
            ArgAction::SetTrue => Shape::Flag { present_when: true },
            ArgAction::SetFalse => Shape::Flag {
                present_when: false,
            },
            ArgAction::Count => Shape::Count,
            ArgAction::Set | ArgAction::Append => {
                let many = arg.get_num_args().is_some_and(|r| r.max_values() > 1);
                if arg.is_positional() {
                    if arg.is_last_set() {
                        Shape::Trailing
                    } else {
                        Shape::Positional
                    }
                } else if let Some(c) = arg.get_value_delimiter() {
                    Shape::Delimited(c)
                } else if matches!(arg.get_action(), ArgAction::Append) {
                    Shape::Repeat
                } else if many {
                    Shape::Multi
                } else {
                    Shape::One
                }
            }
            _ => continue, // help, version
        };
        let key = match arg.get_long() {
            Some(l) => l.to_owned(),
            None => normalize(arg.get_id().as_str()),
        };
        out.push(Opt {
            arg,
            key,
            shape,
            scalar: scalar_of(arg),
        });
    }
    out
}

fn scalar_of(arg: &Arg) -> Scalar {
    let t = arg.get_value_parser().type_id();
    let ints = [
        TypeId::of::<u8>(),
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<u128>(),
        TypeId::of::<usize>(),
        TypeId::of::<i8>(),
        TypeId::of::<i16>(),
        TypeId::of::<i32>(),
        TypeId::of::<i64>(),
        TypeId::of::<i128>(),
        TypeId::of::<isize>(),
    ];
    if t == TypeId::of::<bool>() {
        Scalar::Bool
    } else if ints.iter().any(|i| t == *i) {
        Scalar::Int
    } else if t == TypeId::of::<f64>() || t == TypeId::of::<f32>() {
        Scalar::Float
    } else {
        Scalar::Str
    }
}

/// Whether `a` and `b` cannot both be given: a `conflicts_with` either way, or a group that
/// allows one member.
fn conflicting(sub: &Command, a: &Arg, b: &Arg) -> bool {
    let listed = |x: &Arg, y: &Arg| {
        sub.get_arg_conflicts_with(x)
            .iter()
            .any(|c| c.get_id() == y.get_id())
    };
    if listed(a, b) || listed(b, a) {
        return true;
    }
    sub.get_groups().any(|g| {
        !g.clone().is_multiple()
            && g.get_args().any(|i| i == a.get_id())
            && g.get_args().any(|i| i == b.get_id())
    })
}

/// Where the subcommand's name is in `argv`, skipping the root's options and their values.
fn subcommand_index(root: &Command, sub: &Command, argv: &[OsString]) -> Option<usize> {
    let takes_value = |a: &Arg| {
        matches!(a.get_action(), ArgAction::Set | ArgAction::Append)
            && a.get_num_args().is_none_or(|r| r.min_values() > 0)
    };
    let names: Vec<&str> = std::iter::once(sub.get_name())
        .chain(sub.get_all_aliases())
        .collect();
    let mut i = 1;
    while i < argv.len() {
        let w = argv[i].to_string_lossy();
        if w == "--" {
            return None;
        }
        if let Some(long) = w.strip_prefix("--") {
            if !long.contains('=')
                && root
                    .get_arguments()
                    .any(|a| a.get_long() == Some(long) && takes_value(a))
            {
                i += 1;
            }
        } else if let Some(shorts) = w.strip_prefix('-').filter(|s| !s.is_empty()) {
            // The value of a value-taking short is the rest of the word, or the next word.
            for (n, c) in shorts.char_indices() {
                if root
                    .get_arguments()
                    .any(|a| a.get_short() == Some(c) && takes_value(a))
                {
                    if n + c.len_utf8() == shorts.len() {
                        i += 1;
                    }
                    break;
                }
            }
        } else if names.iter().any(|n| *n == w) {
            return Some(i);
        } else {
            return None;
        }
        i += 1;
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Reading the file.

/// One key of the file, turned into command-line words.
struct Setting {
    opt: usize,
    key: String,
    line: usize,
    words: Vec<OsString>,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn read_settings(
    opts: &[Opt<'_>],
    help_cmd: &str,
    file: &Path,
    text: &str,
) -> Result<Vec<Setting>, ConfigFileError> {
    let path = file.display().to_string();
    let table = DeTable::parse(text).map_err(|e| {
        let (line, column) = match e.span() {
            Some(s) => line_col(text, s.start),
            None => line_col(text, text.len()),
        };
        ConfigFileError::Syntax {
            path: path.clone(),
            line,
            column,
            message: e.message().trim().replace('\n', "; "),
        }
    })?;
    let mut entries: Vec<_> = table.get_ref().iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);

    let mut by_name: HashMap<String, usize> = HashMap::new();
    for (i, o) in opts.iter().enumerate() {
        by_name.insert(normalize(&o.key), i);
        for alias in o.arg.get_all_aliases().unwrap_or_default() {
            by_name.entry(normalize(alias)).or_insert(i);
        }
    }
    let mut seen: HashMap<usize, (String, usize)> = HashMap::new();
    let mut out = Vec::new();
    for (k, v) in entries {
        let key: &str = k.get_ref();
        let line = line_col(text, k.span().start).0;
        let norm = normalize(key);
        if NOT_IN_FILE.contains(&norm.as_str()) {
            return Err(ConfigFileError::NotAllowed {
                path,
                line,
                key: key.to_owned(),
                reason: "give it on the command line",
            });
        }
        let Some(&idx) = by_name.get(&norm) else {
            let suggestion = suggest(&norm, opts);
            let mut message =
                format!("{path} line {line}: unknown key '{key}'; '{help_cmd}' lists the options");
            if let Some(s) = &suggestion {
                let _ = write!(message, " (did you mean '{s}'?)");
            } else if v.get_ref().is_table() {
                message.push_str(
                    "; the file has no [sections] or dotted keys: write each option at the top \
                     level, e.g. max-keys = 500000",
                );
            }
            return Err(ConfigFileError::UnknownKey {
                path,
                line,
                key: key.to_owned(),
                suggestion,
                message,
            });
        };
        if let Some((first_key, first_line)) = seen.get(&idx) {
            return Err(ConfigFileError::Duplicate {
                path,
                line,
                key: key.to_owned(),
                first_key: first_key.clone(),
                first_line: *first_line,
            });
        }
        seen.insert(idx, (key.to_owned(), line));
        let opt = &opts[idx];
        if matches!(opt.shape, Shape::Positional) {
            return Err(ConfigFileError::NotAllowed {
                path,
                line,
                key: key.to_owned(),
                reason: "it is a positional argument: give it on the command line",
            });
        }
        let words = to_words(opt, key, v.get_ref(), text).map_err(|(line, message)| {
            ConfigFileError::WrongType {
                path: path.clone(),
                line: line.unwrap_or(line_col(text, v.span().start).0),
                key: key.to_owned(),
                message,
            }
        })?;
        out.push(Setting {
            opt: idx,
            key: key.to_owned(),
            line,
            words,
        });
    }
    Ok(out)
}

/// The closest option name to an unknown key, if one is close.
fn suggest(key: &str, opts: &[Opt<'_>]) -> Option<String> {
    let key = key.trim_start_matches('-');
    opts.iter()
        .filter(|o| !matches!(o.shape, Shape::Positional))
        .map(|o| (strsim::jaro(key, &o.key), &o.key))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.clone())
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The text of one scalar value for an option whose values are of type `want`, or `None` when
/// the TOML type does not fit. Numbers may also be written as strings (the option's own parser
/// judges them); strings and flags take only their own type.
fn scalar_text(want: Scalar, v: &DeValue<'_>) -> Option<String> {
    match (want, v) {
        (_, DeValue::String(s)) => Some(s.to_string()),
        (Scalar::Bool, DeValue::Boolean(b)) => Some(b.to_string()),
        (Scalar::Int | Scalar::Float, DeValue::Integer(i)) => Some(
            i128::from_str_radix(i.as_str(), i.radix())
                .map_or_else(|_| i.to_string(), |n| n.to_string()),
        ),
        (Scalar::Float, DeValue::Float(f)) => Some(f.as_str().to_owned()),
        _ => None,
    }
}

/// The command-line words for one file value; on a type mismatch, the line of the offending
/// value (for array elements) and the message.
fn to_words(
    opt: &Opt<'_>,
    key: &str,
    v: &DeValue<'_>,
    text: &str,
) -> Result<Vec<OsString>, (Option<usize>, String)> {
    let arg = opt.arg;
    let flag: String = match (arg.get_long(), arg.get_short()) {
        (Some(l), _) => format!("--{l}"),
        (None, Some(s)) => format!("-{s}"),
        (None, None) => String::new(),
    };
    let with_value = |val: &str| -> OsString {
        if arg.get_long().is_some() || arg.get_short().is_some() {
            format!("{flag}={val}").into()
        } else {
            val.into()
        }
    };
    let wrong = |got: &DeValue<'_>| (None, wrong_type(opt, key, got));
    match opt.shape {
        Shape::Flag { present_when } => match v {
            DeValue::Boolean(b) if *b == present_when => Ok(vec![flag.into()]),
            DeValue::Boolean(_) => Ok(Vec::new()),
            other => Err(wrong(other)),
        },
        Shape::Count => {
            let n = match v {
                DeValue::Boolean(b) => i128::from(*b),
                DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix()).unwrap_or(-1),
                other => return Err(wrong(other)),
            };
            match u8::try_from(n) {
                Ok(n) => Ok(vec![OsString::from(&flag); usize::from(n)]),
                Err(_) => Err((
                    None,
                    format!(
                        "'{key}' must be an integer from 0 to 255 (how many times {flag} is \
                         given), not {n}"
                    ),
                )),
            }
        }
        Shape::One => match scalar_text(opt.scalar, v) {
            Some(t) => Ok(vec![with_value(&t)]),
            None => Err(wrong(v)),
        },
        Shape::Delimited(_) | Shape::Repeat | Shape::Multi | Shape::Trailing => {
            let items: Vec<String> = match v {
                DeValue::Array(a) => {
                    let mut items = Vec::with_capacity(a.len());
                    for e in a.iter() {
                        match scalar_text(opt.scalar, e.get_ref()) {
                            Some(t) => items.push(t),
                            None => {
                                let line = line_col(text, e.span().start).0;
                                let msg = format!(
                                    "'{key}' must be {}, and this element is {}",
                                    expectation(opt),
                                    type_name(e.get_ref())
                                );
                                return Err((Some(line), msg));
                            }
                        }
                    }
                    items
                }
                other => match scalar_text(opt.scalar, other) {
                    Some(t) => vec![t],
                    None => return Err(wrong(other)),
                },
            };
            if items.is_empty() {
                return Ok(Vec::new());
            }
            Ok(match opt.shape {
                Shape::Delimited(c) => vec![with_value(&items.join(&c.to_string()))],
                Shape::Repeat => items.iter().map(|t| with_value(t)).collect(),
                Shape::Multi => std::iter::once(OsString::from(&flag))
                    .chain(items.into_iter().map(OsString::from))
                    .collect(),
                _ => items.into_iter().map(OsString::from).collect(),
            })
        }
        Shape::Positional => Ok(Vec::new()),
    }
}

fn wrong_type(opt: &Opt<'_>, key: &str, got: &DeValue<'_>) -> String {
    let mut msg = format!(
        "'{key}' must be {}, not {}",
        expectation(opt),
        type_name(got)
    );
    if got.is_table() {
        msg.push_str(" (the file has no [sections] or dotted keys)");
    }
    msg
}

/// "a string like \"24h\"", "an integer like 1000000", "true or false", ...
fn expectation(opt: &Opt<'_>) -> String {
    let noun = |plural: bool| match (opt.scalar, plural) {
        (Scalar::Bool, false) => "true or false",
        (Scalar::Bool, true) => "booleans",
        (Scalar::Int, false) => "an integer",
        (Scalar::Int, true) => "integers",
        (Scalar::Float, false) => "a number",
        (Scalar::Float, true) => "numbers",
        (Scalar::Str, false) => "a string",
        (Scalar::Str, true) => "strings",
    };
    let choices: Vec<String> = opt
        .arg
        .get_possible_values()
        .iter()
        .filter(|p| !p.is_hide_set())
        .map(|p| toml::Value::String(p.get_name().to_owned()).to_string())
        .collect();
    let default = documented_default(opt.arg);
    let example = if opt.scalar == Scalar::Str && !choices.is_empty() {
        format!(" (one of {})", choices.join(", "))
    } else {
        default
            .as_deref()
            .and_then(|d| render_default(opt, d))
            .map(|e| format!(" like {e}"))
            .unwrap_or_default()
    };
    // A number written with a unit ("64M"): the option's parser takes strings too.
    let numeric_text = match (&default, opt.scalar) {
        (Some(d), Scalar::Int | Scalar::Float)
            if example.is_empty() && !d.is_empty() && !d.contains(char::is_whitespace) =>
        {
            Some(toml::Value::String(d.clone()).to_string())
        }
        _ => None,
    };
    match opt.shape {
        Shape::Flag { .. } => "true or false".to_owned(),
        Shape::Count => "an integer from 0 to 255 (a count), or true or false".to_owned(),
        Shape::One | Shape::Positional => match numeric_text {
            Some(t) => format!("{} or a string like {t}", noun(false)),
            None => format!("{}{example}", noun(false)),
        },
        Shape::Trailing => "a string like \"tcp port 80\" or an array of strings".to_owned(),
        Shape::Delimited(c) => format!(
            "an array of {}{example}, or a string with the values separated by '{c}'",
            noun(true)
        ),
        Shape::Repeat | Shape::Multi => {
            format!("an array of {}{example}, or {}", noun(true), noun(false))
        }
    }
}

/// The default of an option: clap's default values, else "\[default: X\]" in its help text.
fn documented_default(arg: &Arg) -> Option<String> {
    if matches!(arg.get_action(), ArgAction::Set | ArgAction::Append)
        && !arg.get_default_values().is_empty()
    {
        let d: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        return Some(d.join(&arg.get_value_delimiter().unwrap_or(',').to_string()));
    }
    let help = arg
        .get_long_help()
        .or(arg.get_help())
        .map(ToString::to_string)?;
    let start = help.find("[default: ")? + "[default: ".len();
    let end = help[start..].find(']')? + start;
    Some(help[start..end].trim().to_owned())
}

/// A documented default as a TOML value for the option, or `None` when it is prose (such as
/// "the cores available" for an integer).
fn render_default(opt: &Opt<'_>, d: &str) -> Option<String> {
    let one = |s: &str| -> Option<toml::Value> {
        let s = s.trim();
        match opt.scalar {
            // "none, not saved", "the cores available": prose, not a value.
            Scalar::Str if s.is_empty() || s.contains(char::is_whitespace) => None,
            Scalar::Str => Some(toml::Value::String(s.to_owned())),
            Scalar::Int => s.parse::<i64>().ok().map(toml::Value::Integer),
            Scalar::Float => s.parse::<f64>().ok().map(toml::Value::Float),
            Scalar::Bool => s.parse::<bool>().ok().map(toml::Value::Boolean),
        }
    };
    let v = match opt.shape {
        Shape::Flag { .. } | Shape::Count => return None,
        Shape::One | Shape::Positional | Shape::Trailing => one(d)?,
        Shape::Delimited(c) => toml::Value::Array(d.split(c).map(one).collect::<Option<Vec<_>>>()?),
        Shape::Repeat | Shape::Multi => toml::Value::Array(vec![one(d)?]),
    };
    Some(v.to_string())
}

/// The value of a set option in `m`, as TOML.
fn current_value(opt: &Opt<'_>, m: &ArgMatches) -> Option<String> {
    let id = opt.arg.get_id().as_str();
    match opt.shape {
        Shape::Flag { .. } => {
            let b = m.try_get_one::<bool>(id).ok().flatten().copied()?;
            Some(b.to_string())
        }
        Shape::Count => {
            let n = m.try_get_one::<u8>(id).ok().flatten().copied()?;
            Some(n.to_string())
        }
        _ => {
            let raw: Vec<&OsStr> = m.get_raw(id)?.collect();
            let one = |s: &OsStr| -> toml::Value {
                let s = s.to_string_lossy();
                let typed = match opt.scalar {
                    Scalar::Int => s.parse::<i64>().ok().map(toml::Value::Integer),
                    Scalar::Float => s.parse::<f64>().ok().map(toml::Value::Float),
                    Scalar::Bool => s.parse::<bool>().ok().map(toml::Value::Boolean),
                    Scalar::Str => None,
                };
                typed.unwrap_or_else(|| toml::Value::String(s.into_owned()))
            };
            let v = match opt.shape {
                Shape::Trailing => toml::Value::String(
                    raw.iter()
                        .map(|s| s.to_string_lossy())
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                Shape::One | Shape::Positional => one(raw.first()?),
                _ => toml::Value::Array(raw.into_iter().map(one).collect()),
            };
            Some(v.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, CommandFactory, Parser, Subcommand};

    #[derive(Debug, Parser)]
    #[command(name = "idemwatch")]
    struct TestCli {
        /// More logs.
        #[arg(short, long, action = ArgAction::Count, global = true)]
        verbose: u8,
        /// No summary.
        #[arg(short, long, global = true)]
        quiet: bool,
        #[command(subcommand)]
        command: TestCommand,
    }

    #[derive(Debug, Subcommand)]
    enum TestCommand {
        Live(LiveArgs),
        Read {
            #[arg(required = true)]
            files: Vec<PathBuf>,
        },
    }

    #[derive(Debug, Args)]
    struct LiveArgs {
        /// Interface to capture on.
        #[arg(short, long)]
        interface: String,
        /// Promiscuous mode.
        #[arg(long)]
        promisc: bool,
        /// How long a key is remembered [default: 24h].
        #[arg(long, value_name = "DURATION")]
        window: Option<String>,
        /// Methods, comma-separated [default: POST,PATCH].
        #[arg(long, value_delimiter = ',')]
        watch_methods: Option<Vec<String>>,
        /// Prefix (repeatable).
        #[arg(long)]
        require_key: Vec<String>,
        /// Most keys [default: 1000000].
        #[arg(long, value_name = "N")]
        max_keys: Option<usize>,
        /// Output file.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Write to stdout even if --output is configured.
        #[arg(long, conflicts_with = "output")]
        stdout: bool,
        /// Threads.
        #[arg(long, default_value_t = 4)]
        threads: u16,
        /// Which keyless requests are judged [default: learned].
        #[arg(long, value_enum)]
        missing_key: Option<Mode>,
        /// The configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Kernel buffer, in bytes (suffixes K, M, G).
        #[arg(long, default_value = "64M", value_parser = parse_bytes)]
        buffer_size: u64,
        /// Directory for saved keys [default: none, not saved].
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// BPF filter.
        #[arg(last = true, value_name = "FILTER")]
        filter: Vec<String>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
    enum Mode {
        Learned,
        All,
        Off,
    }

    fn parse_bytes(s: &str) -> Result<u64, String> {
        let (n, mult) = match s.strip_suffix('M') {
            Some(n) => (n, 1 << 20),
            None => (s, 1),
        };
        n.parse::<u64>()
            .map(|n| n * mult)
            .map_err(|e| e.to_string())
    }

    const FILE: &str = "/etc/idemwatch/idemwatch.toml";

    fn os(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    fn strings(words: &[OsString]) -> Vec<String> {
        words
            .iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect()
    }

    fn merged(cli: &[&str], text: &str) -> Result<Vec<String>, ConfigFileError> {
        merge_argv(&TestCli::command(), "live", os(cli), Path::new(FILE), text).map(|a| strings(&a))
    }

    fn parsed(cli: &[&str], text: &str) -> (TestCli, LiveArgs) {
        let argv = merged(cli, text).expect("file accepted");
        let cli = TestCli::try_parse_from(&argv).expect("merged argv parses");
        let TestCli {
            verbose,
            quiet,
            command,
        } = cli;
        match command {
            TestCommand::Live(a) => (
                TestCli {
                    verbose,
                    quiet,
                    command: TestCommand::Read { files: Vec::new() },
                },
                a,
            ),
            TestCommand::Read { .. } => panic!("not live"),
        }
    }

    #[test]
    fn file_supplies_a_required_option() {
        let (_, a) = parsed(&["idemwatch", "live"], "interface = \"eth0\"\n");
        assert_eq!(a.interface, "eth0");
        assert_eq!(
            merged(&["idemwatch", "live"], "interface = \"eth0\"\n").unwrap(),
            ["idemwatch", "live", "--interface=eth0"]
        );
    }

    #[test]
    fn command_line_overrides_the_file() {
        let text = "interface = \"eth0\"\nwindow = \"24h\"\nmax-keys = 500000\n";
        for cli in [
            &["idemwatch", "live", "-i", "eth1"][..],
            &["idemwatch", "live", "--interface", "eth1"],
            &["idemwatch", "live", "--interface=eth1"],
            &["idemwatch", "live", "-ieth1"],
            &["idemwatch", "-v", "live", "-qieth1"],
        ] {
            let (_, a) = parsed(cli, text);
            assert_eq!(a.interface, "eth1", "{cli:?}");
            assert_eq!(a.window.as_deref(), Some("24h"));
            assert_eq!(a.max_keys, Some(500_000));
        }
        let (_, a) = parsed(&["idemwatch", "live", "--window", "1h"], text);
        assert_eq!(
            (a.interface.as_str(), a.window.as_deref()),
            ("eth0", Some("1h"))
        );
    }

    #[test]
    fn file_words_go_after_the_subcommand_and_before_the_command_lines_own() {
        let argv = merged(
            &["idemwatch", "-v", "live", "-i", "eth1", "--", "port", "80"],
            "max-keys = 5\nfilter = \"tcp\"\n",
        )
        .unwrap();
        assert_eq!(
            argv,
            [
                "idemwatch",
                "-v",
                "live",
                "--max-keys=5",
                "-i",
                "eth1",
                "--",
                "port",
                "80"
            ]
        );
    }

    #[test]
    fn file_filter_used_only_without_a_command_line_filter() {
        let text = "interface = \"eth0\"\nfilter = \"tcp port 80\"\n";
        let argv = merged(&["idemwatch", "live"], text).unwrap();
        assert_eq!(argv[argv.len() - 2..], ["--", "tcp port 80"]);
        let (_, a) = parsed(&["idemwatch", "live"], text);
        assert_eq!(a.filter, ["tcp port 80"]);
        // An empty `--` on the command line: the file's words go after it.
        let (_, a) = parsed(&["idemwatch", "live", "--"], text);
        assert_eq!(a.filter, ["tcp port 80"]);
        // The command line's filter wins.
        let (_, a) = parsed(&["idemwatch", "live", "--", "port", "8080"], text);
        assert_eq!(a.filter, ["port", "8080"]);
        // An array of words.
        let (_, a) = parsed(
            &["idemwatch", "live"],
            "interface = \"eth0\"\nfilter = [\"tcp\", \"port\", \"80\"]\n",
        );
        assert_eq!(a.filter, ["tcp", "port", "80"]);
    }

    #[test]
    fn unknown_key_names_key_line_and_suggestion() {
        let text = "# idemwatch\ninterface = \"eth0\"\n\nmax-key = 5\n";
        let e = merged(&["idemwatch", "live"], text).unwrap_err();
        assert!(
            matches!(&e, ConfigFileError::UnknownKey { line: 4, key, suggestion: Some(s), .. }
                if key == "max-key" && s == "max-keys"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "/etc/idemwatch/idemwatch.toml line 4: unknown key 'max-key'; 'idemwatch live \
             --help' lists the options (did you mean 'max-keys'?)"
        );
        let e = merged(&["idemwatch", "live"], "bogus = 1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/idemwatch/idemwatch.toml line 1: unknown key 'bogus'; 'idemwatch live \
             --help' lists the options"
        );
        // An option of another subcommand is unknown here.
        let e = merged(&["idemwatch", "live"], "files = [\"a.pcap\"]\n").unwrap_err();
        assert!(matches!(e, ConfigFileError::UnknownKey { .. }), "{e:?}");
        // A section.
        let e = merged(&["idemwatch", "live"], "\n[live]\nmax-keys = 5\n").unwrap_err();
        assert_eq!(e.line(), Some(2));
        assert!(e.to_string().contains("no [sections]"), "{e}");
    }

    #[test]
    fn unknown_key_error_happens_even_when_the_command_line_sets_everything() {
        let e = merged(&["idemwatch", "live", "-i", "eth0"], "promisk = true\n").unwrap_err();
        assert!(e.to_string().contains("did you mean 'promisc'?"), "{e}");
    }

    #[test]
    fn wrong_type_names_key_line_and_expectation() {
        let e = merged(
            &["idemwatch", "live"],
            "interface = \"eth0\"\n\nwindow = 24\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/idemwatch/idemwatch.toml line 3: 'window' must be a string like \"24h\", \
             not an integer"
        );
        let e = merged(&["idemwatch", "live"], "promisc = \"yes\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/idemwatch/idemwatch.toml line 1: 'promisc' must be true or false, not a string"
        );
        let e = merged(&["idemwatch", "live"], "max-keys = true\n").unwrap_err();
        assert!(
            e.to_string()
                .ends_with("'max-keys' must be an integer like 1000000, not a boolean"),
            "{e}"
        );
        let e = merged(&["idemwatch", "live"], "window = 1979-05-27\n").unwrap_err();
        assert!(e.to_string().ends_with("not a date-time"), "{e}");
        let e = merged(&["idemwatch", "live"], "window = { a = 1 }\n").unwrap_err();
        assert!(e.to_string().contains("not a table"), "{e}");
        // An array element of the wrong type: the element's line.
        let e = merged(
            &["idemwatch", "live"],
            "watch-methods = [\n  \"POST\",\n  7,\n]\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/idemwatch/idemwatch.toml line 3: 'watch-methods' must be an array of strings \
             like [\"POST\", \"PATCH\"], or a string with the values separated by ',', and this \
             element is an integer"
        );
        let e = merged(&["idemwatch", "live"], "missing-key = false\n").unwrap_err();
        assert!(
            e.to_string().ends_with(
                "'missing-key' must be a string (one of \"learned\", \"all\", \"off\"), not a boolean"
            ),
            "{e}"
        );
        let (_, a) = parsed(
            &["idemwatch", "live"],
            "interface = \"eth0\"\nmissing-key = \"off\"\n",
        );
        assert_eq!(a.missing_key, Some(Mode::Off));
        let e = merged(&["idemwatch", "live"], "buffer-size = true\n").unwrap_err();
        assert!(
            e.to_string().ends_with(
                "'buffer-size' must be an integer or a string like \"64M\", not a boolean"
            ),
            "{e}"
        );
        let e = merged(&["idemwatch", "live"], "verbose = 300\n").unwrap_err();
        assert!(e.to_string().contains("from 0 to 255"), "{e}");
    }

    #[test]
    fn snake_case_keys_are_the_same_keys() {
        let (_, a) = parsed(
            &["idemwatch", "live"],
            "interface = \"eth0\"\nmax_keys = 7\nwatch_methods = [\"PUT\"]\nrequire_key = \"/x\"\n",
        );
        assert_eq!(a.max_keys, Some(7));
        assert_eq!(a.watch_methods, Some(vec!["PUT".to_owned()]));
        assert_eq!(a.require_key, ["/x"]);
        let e = merged(&["idemwatch", "live"], "max-keys = 1\nmax_keys = 2\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/idemwatch/idemwatch.toml line 2: 'max_keys' sets the same option as \
             'max-keys' on line 1"
        );
    }

    #[test]
    fn toml_syntax_error_has_a_line() {
        let e = merged(
            &["idemwatch", "live"],
            "interface = \"eth0\"\nmax-keys = = 5\n",
        )
        .unwrap_err();
        assert!(
            matches!(e, ConfigFileError::Syntax { line: 2, .. }),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("/etc/idemwatch/idemwatch.toml line 2, column "),
            "{e}"
        );
        let e = merged(&["idemwatch", "live"], "a = 1\nwindow = \"24h\nb = 2\n").unwrap_err();
        assert_eq!(e.line(), Some(2), "{e}");
        let e = merged(&["idemwatch", "live"], "window = \"1h\"\nwindow = \"2h\"\n").unwrap_err();
        assert_eq!(e.line(), Some(2), "{e}");
    }

    #[test]
    fn arrays_for_delimited_and_repeatable_options() {
        let text = "interface = \"eth0\"\nwatch-methods = [\"POST\", \"PUT\"]\n\
                    require-key = [\"/v1/charges\", \"/v1/refunds\"]\n";
        let argv = merged(&["idemwatch", "live"], text).unwrap();
        assert!(
            argv.contains(&"--watch-methods=POST,PUT".to_owned()),
            "{argv:?}"
        );
        assert!(
            argv.contains(&"--require-key=/v1/charges".to_owned()),
            "{argv:?}"
        );
        assert!(
            argv.contains(&"--require-key=/v1/refunds".to_owned()),
            "{argv:?}"
        );
        let (_, a) = parsed(&["idemwatch", "live"], text);
        assert_eq!(
            a.watch_methods,
            Some(vec!["POST".to_owned(), "PUT".to_owned()])
        );
        assert_eq!(a.require_key, ["/v1/charges", "/v1/refunds"]);
        // The command-line form of a delimited option.
        let (_, a) = parsed(
            &["idemwatch", "live"],
            "interface = \"eth0\"\nwatch-methods = \"POST,PUT\"\n",
        );
        assert_eq!(
            a.watch_methods,
            Some(vec!["POST".to_owned(), "PUT".to_owned()])
        );
        // The command line's repeatable option replaces the file's list.
        let (_, a) = parsed(&["idemwatch", "live", "--require-key", "/z"], text);
        assert_eq!(a.require_key, ["/z"]);
        // An empty array sets nothing.
        let argv = merged(&["idemwatch", "live"], "require-key = []\n").unwrap();
        assert_eq!(argv, ["idemwatch", "live"]);
    }

    #[test]
    fn numbers_may_be_strings_for_parsers_with_units() {
        let text = "interface = \"eth0\"\nbuffer-size = \"128M\"\nmax-keys = 10\n";
        let (_, a) = parsed(&["idemwatch", "live"], text);
        assert_eq!(a.buffer_size, 128 << 20);
        let (_, a) = parsed(
            &["idemwatch", "live"],
            "interface = \"eth0\"\nbuffer-size = 1048576\n",
        );
        assert_eq!(a.buffer_size, 1 << 20);
        // Other radixes and underscores become plain decimal.
        let argv = merged(&["idemwatch", "live"], "max-keys = 0x10\nthreads = 1_0\n").unwrap();
        assert_eq!(argv, ["idemwatch", "live", "--max-keys=16", "--threads=10"]);
    }

    #[test]
    fn booleans_and_counts() {
        let argv = merged(&["idemwatch", "live"], "promisc = false\nquiet = false\n").unwrap();
        assert_eq!(argv, ["idemwatch", "live"]);
        let (top, a) = parsed(
            &["idemwatch", "live"],
            "interface = \"eth0\"\npromisc = true\nquiet = true\nverbose = 2\n",
        );
        assert!(a.promisc);
        assert!(top.quiet);
        assert_eq!(top.verbose, 2);
        // -v on the command line, before or after the subcommand, wins over the file's count.
        for cli in [
            &["idemwatch", "-v", "live"][..],
            &["idemwatch", "live", "-v"],
        ] {
            let (top, _) = parsed(cli, "interface = \"eth0\"\nverbose = 3\n");
            assert_eq!(top.verbose, 1, "{cli:?}");
        }
    }

    #[test]
    fn a_file_setting_conflicting_with_the_command_line_is_dropped() {
        let text = "interface = \"eth0\"\noutput = \"/var/log/idemwatch.jsonl\"\n";
        let (_, a) = parsed(&["idemwatch", "live", "--stdout"], text);
        assert!(a.stdout);
        assert_eq!(a.output, None);
        let (_, a) = parsed(&["idemwatch", "live"], text);
        assert_eq!(
            a.output.as_deref(),
            Some(Path::new("/var/log/idemwatch.jsonl"))
        );
    }

    #[test]
    fn clap_errors_on_file_values_can_be_blamed_on_the_file() {
        let text = "interface = \"eth0\"\n\nmax_keys = \"lots\"\n";
        let m = merge(
            &TestCli::command(),
            "live",
            os(&["idemwatch", "live"]),
            Path::new(FILE),
            text,
        )
        .unwrap();
        let err = TestCli::try_parse_from(&m.argv).unwrap_err();
        assert_eq!(
            m.blame(&err).as_deref(),
            Some("the value of 'max_keys' comes from /etc/idemwatch/idemwatch.toml line 3")
        );
        // An error in the command line's own value is not blamed on the file.
        let m = merge(
            &TestCli::command(),
            "live",
            os(&["idemwatch", "live", "--threads", "x"]),
            Path::new(FILE),
            "interface = \"eth0\"\nmax-keys = 5\n",
        )
        .unwrap();
        let err = TestCli::try_parse_from(&m.argv).unwrap_err();
        assert_eq!(m.blame(&err), None, "{err}");
    }

    #[test]
    fn help_and_other_subcommands_pass_through() {
        let text = "interface = \"eth0\"\n";
        for cli in [
            &["idemwatch", "live", "--help"][..],
            &["idemwatch", "--version"],
            &["idemwatch", "read", "x.pcap"],
            &["idemwatch"],
        ] {
            assert_eq!(merged(cli, text).unwrap(), cli, "{cli:?}");
        }
    }

    #[test]
    fn config_and_positional_keys_are_refused() {
        let e = merged(&["idemwatch", "live"], "config = \"/x.toml\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/idemwatch/idemwatch.toml line 1: 'config' cannot be set in the configuration \
             file; give it on the command line"
        );
        let e = merge_argv(
            &TestCli::command(),
            "read",
            os(&["idemwatch", "read"]),
            Path::new(FILE),
            "files = [\"a.pcap\"]\n",
        )
        .unwrap_err();
        assert!(matches!(e, ConfigFileError::NotAllowed { .. }), "{e:?}");
        let e = merge_argv(
            &TestCli::command(),
            "nope",
            os(&["idemwatch"]),
            Path::new(FILE),
            "",
        )
        .unwrap_err();
        assert!(matches!(e, ConfigFileError::NoSubcommand(_)), "{e:?}");
    }

    #[test]
    fn effective_toml_round_trips() {
        let text = "interface = \"eth0\"\nwatch-methods = [\"POST\", \"PUT\"]\n\
                    require-key = [\"/a\", \"/b\"]\nfilter = \"tcp port 80\"\npromisc = true\n";
        let cli = ["idemwatch", "-vv", "live", "--max-keys", "500"];
        let m = merge(&TestCli::command(), "live", os(&cli), Path::new(FILE), text).unwrap();
        let matches = TestCli::command().try_get_matches_from(&m.argv).unwrap();
        let out = effective_toml(&TestCli::command(), "live", &matches, &[]);
        let v: toml::Table = toml::from_str(&out).expect(&out);
        assert_eq!(v["interface"].as_str(), Some("eth0"), "{out}");
        assert_eq!(v["max-keys"].as_integer(), Some(500), "{out}");
        assert_eq!(v["promisc"].as_bool(), Some(true), "{out}");
        assert_eq!(v["stdout"].as_bool(), Some(false), "{out}");
        assert_eq!(v["threads"].as_integer(), Some(4), "{out}");
        assert_eq!(v["verbose"].as_integer(), Some(2), "{out}");
        assert_eq!(v["quiet"].as_bool(), Some(false), "{out}");
        assert_eq!(v["filter"].as_str(), Some("tcp port 80"), "{out}");
        let methods: Vec<_> = v["watch-methods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        assert_eq!(methods, ["POST", "PUT"], "{out}");
        assert_eq!(v["require-key"].as_array().map(Vec::len), Some(2), "{out}");
        assert!(!v.contains_key("window"), "{out}");
        assert!(!out.contains("config:"), "{out}");
        assert!(!v.contains_key("config"), "{out}");
        assert!(out.contains("threads = 4  # default\n"), "{out}");
        assert!(out.contains("# window = \"24h\"  # default\n"), "{out}");
        assert!(out.contains("# output: not set\n"), "{out}");
        assert!(out.contains("buffer-size = \"64M\"  # default\n"), "{out}");
        assert!(
            out.contains("# state-dir: not set (default: none, not saved)\n"),
            "{out}"
        );
        // The output, fed back as a file, gives the same options.
        let again = merged(&["idemwatch", "live"], &out).unwrap();
        let matches2 = TestCli::command().try_get_matches_from(&again).unwrap();
        let out2 = effective_toml(&TestCli::command(), "live", &matches2, &[]);
        assert_eq!(toml::from_str::<toml::Table>(&out2).unwrap(), v, "{out2}");
        // With sources.
        let out = effective_toml_with_sources(&TestCli::command(), "live", &matches, &[], &m);
        assert!(
            out.contains("interface = \"eth0\"  # /etc/idemwatch/idemwatch.toml line 1\n"),
            "{out}"
        );
        assert!(out.contains("max-keys = 500  # command line\n"), "{out}");
        toml::from_str::<toml::Table>(&out).expect(&out);
    }

    #[test]
    fn effective_toml_takes_the_subcommands_own_matches_too() {
        // What check-config passes: a regression test for a debug assertion of clap's
        // `subcommand_matches`, which panicked on matches without subcommands.
        let m = TestCli::command()
            .try_get_matches_from(["idemwatch", "live", "-i", "eth0"])
            .unwrap();
        let sub = m.subcommand_matches("live").unwrap();
        let out = effective_toml(&TestCli::command(), "live", sub, &[]);
        assert!(out.contains("\ninterface = \"eth0\"\n"), "{out}");
        assert_eq!(out, effective_toml(&TestCli::command(), "live", &m, &[]));
    }

    #[test]
    fn read_config_default_missing_is_none_explicit_missing_is_an_error() {
        let dir = std::env::temp_dir().join(format!("idemwatch-cfg-{}", std::process::id()));
        let missing = dir.join("missing.toml");
        assert!(read_config(&missing, false).unwrap().is_none());
        let e = read_config(&missing, true).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("cannot read {}: ", missing.display())),
            "{e}"
        );
        assert!(
            e.to_string()
                .ends_with("; check the path given with --config"),
            "{e}"
        );
        std::fs::create_dir_all(&dir).unwrap();
        let present = dir.join("idemwatch.toml");
        std::fs::write(&present, "\u{feff}max-keys = 5\n").unwrap();
        assert_eq!(
            read_config(&present, false).unwrap().as_deref(),
            Some("max-keys = 5\n")
        );
        // A directory is an error even at the default path.
        assert!(read_config(&dir, false).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

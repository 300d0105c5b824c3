//! The configuration files (TOML) of `live` and `check-config` ([`DEFAULT_PATH`]) and of
//! `mirror` ([`MIRROR_DEFAULT_PATH`]): every command-line option of the subcommand, the command
//! line winning.
//!
//! The file's keys are the long option names of one subcommand, as written on the command line
//! (`max-keys = 500000`, `window = "24h"`, `watch-methods = ["POST", "PATCH"]`,
//! `promisc = true`); the snake_case spelling (`max_keys`) is the same key. A trailing positional
//! argument (`#[arg(last = true)]`, such as the BPF `filter`) is keyed by its id:
//! `filter = "tcp port 80"`. Global options of the root command (`verbose`, `quiet`) are keys too.
//!
//! What it gives: [`load`] checks the file against the clap [`Command`], so the keys can never
//! drift from the command line: every key an option (with a 'did you mean' when it is not),
//! given once, of a TOML type the option takes, each mistake with its line.
//! [`Settings::values`] then fills the options' own structs (`cli::LiveArgs`, `cli::GlobalArgs`)
//! by serde derive; their adapters (in `cli`) hand each value to the parser clap runs on the
//! same option, and an option the file leaves out keeps clap's default. A value a parser
//! refuses is found key by key (serde's `flatten` loses toml's positions) and said with its
//! line. [`effective_toml`] writes what `check-config` prints.
//!
//! What it leaves to `cli::parse`: putting the command line over the file (clap's matches of
//! the command line alone update the structs the file filled, by derive, so the command line
//! wins), and the relations between options (`cli::RELATIONS`: an option that needs or excludes
//! another), checked on both together.
//!
//! What changed for users when the file stopped being turned into command-line words: a bad
//! value in the file is said with the file's line and key (`FILE line 3: 'max-keys': invalid
//! value 'lots': invalid digit found in string`) rather than as clap's error followed by where
//! the value came from; a setting of the file that needs another, missing, is said with its line
//! (`FILE line 2: 'store-prefix' needs 'store' (in the file or as --store)`); the file can supply
//! what an option of the command line needs (`store` in the file, `--store-prefix` on the
//! command line); clap's usage lines no longer list the options the file sets; and an unknown
//! option or a bad value on the command line is reported before any mistake in the file.

use std::any::TypeId;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};

/// Where `idemwatch live` looks for its configuration when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/idemwatch/idemwatch.toml";

/// Where `idemwatch mirror` looks for its own configuration when `--config` is not given: a
/// file of its own, as it is a service of its own (`idemwatch-mirror.service`).
pub const MIRROR_DEFAULT_PATH: &str = "/etc/idemwatch/mirror.toml";

/// The default configuration file of a subcommand.
pub fn default_path(subcommand: &str) -> &'static str {
    if subcommand == "mirror" {
        MIRROR_DEFAULT_PATH
    } else {
        DEFAULT_PATH
    }
}

/// Options that make no sense inside the file: the file is already being read, and a file
/// that says "only check" would keep the service from ever starting.
const NOT_IN_FILE: &[&str] = &["config", "check-config"];

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
    /// A value of the right type that the option's parser refuses.
    #[error("{path} line {line}: '{key}': {message}")]
    WrongValue {
        path: String,
        line: usize,
        key: String,
        message: String,
    },
    /// Values that are right one by one but not together (not expected: no option depends on
    /// another's value).
    #[error("{path}: {message}")]
    Values { path: String, message: String },
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
    /// A setting that needs or excludes another (`cli::RELATIONS`).
    #[error("{path} line {line}: {message}")]
    Relation {
        path: String,
        line: usize,
        message: String,
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
            | Self::WrongValue { line, .. }
            | Self::Duplicate { line, .. }
            | Self::NotAllowed { line, .. }
            | Self::Relation { line, .. } => Some(*line),
            Self::Read { .. } | Self::Values { .. } | Self::NoSubcommand(_) => None,
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

/// The configuration file, checked against the options of one subcommand.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file.
    pub path: PathBuf,
    /// Its settings, in file order.
    pub settings: Vec<FileSetting>,
    /// Their TOML values by the option's key, the long name (serde's name of the field).
    values: toml::Table,
}

/// One key of the file.
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
    /// Whether it sets anything: `false` for a flag, 0 for a count and `[]` are as if the key
    /// were left out.
    pub present: bool,
    /// The values as the option's parser takes them, for `check-config`.
    texts: Vec<String>,
}

impl Settings {
    /// The setting of the option with this clap id, if the file has one.
    pub fn get(&self, arg_id: &str) -> Option<&FileSetting> {
        self.settings.iter().find(|s| s.arg_id == arg_id)
    }

    /// Keeps only the settings for which `keep` is true (the command line wins over the others).
    pub fn retain(&mut self, mut keep: impl FnMut(&FileSetting) -> bool) {
        let values = &mut self.values;
        self.settings.retain(|s| {
            let k = keep(s);
            if !k {
                values.remove(&s.option);
            }
            k
        });
    }

    /// The settings as `T`, an options struct that derives `Deserialize` (kebab-case names,
    /// defaults where the file says nothing). Keys that are no field of `T` are left to another
    /// struct. A value its option's parser refuses is an error with its line.
    pub fn values<T: DeserializeOwned>(&self) -> Result<T, ConfigFileError> {
        let path = self.path.display().to_string();
        let whole = match T::deserialize(toml::Value::Table(self.values.clone())) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        // serde's `flatten` loses toml's positions: each key alone finds the one at fault.
        for s in &self.settings {
            let Some(v) = self.values.get(&s.option) else {
                continue;
            };
            let one = toml::Table::from_iter([(s.option.clone(), v.clone())]);
            if let Err(e) = T::deserialize(toml::Value::Table(one)) {
                return Err(ConfigFileError::WrongValue {
                    path,
                    line: s.line,
                    key: s.key.clone(),
                    message: e.message().to_owned(),
                });
            }
        }
        Err(ConfigFileError::Values {
            path,
            message: whole.message().to_owned(),
        })
    }
}

/// Checks the configuration file `text` (at `file`) against the options of `subcommand` of
/// `cmd` (`Cli::command()`): every key an option the file may set, once, with a value of a TOML
/// type the option takes. The values themselves are judged by [`Settings::values`].
pub fn load(
    cmd: &Command,
    subcommand: &str,
    file: &Path,
    text: &str,
) -> Result<Settings, ConfigFileError> {
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
    let path = file.display().to_string();
    let syntax = |e: toml::de::Error| {
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
    };
    let table = DeTable::parse(text).map_err(syntax)?;
    let mut parsed: toml::Table = text.parse().map_err(syntax)?;
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
    let mut settings = Vec::new();
    let mut values = toml::Table::new();
    for (k, v) in entries {
        let key: &str = k.get_ref();
        let line = line_col(text, k.span().start).0;
        let norm = normalize(key);
        // Only an option of this subcommand: `check-config` is none of `live`'s.
        if NOT_IN_FILE.contains(&norm.as_str()) && by_name.contains_key(&norm) {
            return Err(ConfigFileError::NotAllowed {
                path,
                line,
                key: key.to_owned(),
                reason: "give it on the command line",
            });
        }
        let Some(&idx) = by_name.get(&norm) else {
            let suggestion = suggest(&norm, &opts);
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
        let texts = texts_of(opt, key, v.get_ref(), text).map_err(|(line, message)| {
            ConfigFileError::WrongType {
                path: path.clone(),
                line: line.unwrap_or(line_col(text, v.span().start).0),
                key: key.to_owned(),
                message,
            }
        })?;
        let present = match opt.shape {
            Shape::Flag { present_when } => texts.iter().any(|t| *t == present_when.to_string()),
            Shape::Count => texts.iter().any(|t| t != "0"),
            _ => !texts.is_empty(),
        };
        if let Some(value) = parsed.remove(key) {
            values.insert(opt.key.clone(), value);
        }
        settings.push(FileSetting {
            key: key.to_owned(),
            option: opt.key.clone(),
            arg_id: opt.arg.get_id().to_string(),
            line,
            present,
            texts,
        });
    }
    Ok(Settings {
        path: file.to_owned(),
        settings,
        values,
    })
}

/// The effective configuration as TOML (every option of the subcommand with its value — from
/// the command line, the file, or its default — and `# default` comments where not set), for
/// `idemwatch check-config`. `matches` are clap's matches of the command line alone: the root's
/// or the subcommand's; `file` the configuration file's settings, if any. Options whose default
/// is not clap's own (`Option` values whose default the program's settings pick) appear
/// commented out, as `# window = "24h"  # default`, so the output parses as TOML and holds
/// exactly the values set. `defaults` gives those values, by option id, as written on the
/// command line (from the run's settings); an option without one shows the "\[default: X\]"
/// prose of its help ("none, not saved").
pub fn effective_toml(
    cmd: &Command,
    subcommand: &str,
    matches: &ArgMatches,
    file: Option<&Settings>,
    defaults: &[(&str, String)],
) -> String {
    effective(cmd, subcommand, matches, file, defaults, false)
}

/// [`effective_toml`], marking each set value with where it came from: the file and its line,
/// or the command line.
pub fn effective_toml_with_sources(
    cmd: &Command,
    subcommand: &str,
    matches: &ArgMatches,
    file: Option<&Settings>,
    defaults: &[(&str, String)],
) -> String {
    effective(cmd, subcommand, matches, file, defaults, true)
}

fn effective(
    cmd: &Command,
    subcommand: &str,
    matches: &ArgMatches,
    file: Option<&Settings>,
    defaults: &[(&str, String)],
    sources: bool,
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
        let in_file = file
            .and_then(|f| f.get(id).map(|s| (f, s)))
            .filter(|(_, s)| s.present);
        match (source, in_file) {
            (Some(ValueSource::CommandLine | ValueSource::EnvVariable), _) => {
                let v = render(opt, &cli_texts(opt, m)).unwrap_or_else(|| "\"\"".to_owned());
                let note = match source {
                    Some(ValueSource::EnvVariable) => "  # from the environment",
                    _ if sources => "  # command line",
                    _ => "",
                };
                let _ = writeln!(out, "{} = {v}{note}", opt.key);
            }
            (_, Some((f, s))) => {
                let v = render(opt, &s.texts).unwrap_or_else(|| "\"\"".to_owned());
                let note = if sources {
                    format!("  # {} line {}", f.path.display(), s.line)
                } else {
                    String::new()
                };
                let _ = writeln!(out, "{} = {v}{note}", opt.key);
            }
            (Some(ValueSource::DefaultValue), None) => match render(opt, &cli_texts(opt, m)) {
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
    /// `--opt=a --opt=b`, or `--opt a b` (several values, no delimiter).
    Repeat,
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
                } else if matches!(arg.get_action(), ArgAction::Append) || many {
                    Shape::Repeat
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

// ---------------------------------------------------------------------------------------------
// Reading the file.

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
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

/// The texts of one file value, as the option's parser takes them (a delimited string split);
/// on a TOML type the option does not take, the line of the offending value (for array
/// elements) and the message.
fn texts_of(
    opt: &Opt<'_>,
    key: &str,
    v: &DeValue<'_>,
    text: &str,
) -> Result<Vec<String>, (Option<usize>, String)> {
    let wrong = |got: &DeValue<'_>| (None, wrong_type(opt, key, got));
    match opt.shape {
        Shape::Flag { .. } => match v {
            DeValue::Boolean(b) => Ok(vec![b.to_string()]),
            other => Err(wrong(other)),
        },
        Shape::Count => {
            let n = match v {
                DeValue::Boolean(b) => i128::from(*b),
                DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix()).unwrap_or(-1),
                other => return Err(wrong(other)),
            };
            let flag = match (opt.arg.get_long(), opt.arg.get_short()) {
                (Some(l), _) => format!("--{l}"),
                (None, Some(s)) => format!("-{s}"),
                (None, None) => opt.key.clone(),
            };
            match u8::try_from(n) {
                Ok(n) => Ok(vec![n.to_string()]),
                Err(_) => Err((
                    None,
                    format!(
                        "'{key}' must be an integer from 0 to 255 (how many times {flag} is \
                         given), not {n}"
                    ),
                )),
            }
        }
        Shape::One | Shape::Positional => match scalar_text(opt.scalar, v) {
            Some(t) => Ok(vec![t]),
            None => Err(wrong(v)),
        },
        Shape::Delimited(_) | Shape::Repeat | Shape::Trailing => {
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
            Ok(match opt.shape {
                Shape::Delimited(c) => items
                    .iter()
                    .flat_map(|t| t.split(c).map(str::to_owned))
                    .collect(),
                _ => items,
            })
        }
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
        Shape::Repeat => {
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
        Shape::Repeat => toml::Value::Array(vec![one(d)?]),
    };
    Some(v.to_string())
}

/// The texts of a set option in `m` (clap's matches of the command line).
fn cli_texts(opt: &Opt<'_>, m: &ArgMatches) -> Vec<String> {
    let id = opt.arg.get_id().as_str();
    match opt.shape {
        Shape::Flag { .. } => m
            .try_get_one::<bool>(id)
            .ok()
            .flatten()
            .map(bool::to_string),
        Shape::Count => m.try_get_one::<u8>(id).ok().flatten().map(u8::to_string),
        _ => {
            return m
                .get_raw(id)
                .map(|raw| {
                    raw.map(|s: &OsStr| s.to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
        }
    }
    .into_iter()
    .collect()
}

/// An option's value as TOML, from its texts (the command line's words or the file's values).
fn render(opt: &Opt<'_>, texts: &[String]) -> Option<String> {
    let one = |s: &str| -> toml::Value {
        let typed = match opt.scalar {
            Scalar::Int => s.parse::<i64>().ok().map(toml::Value::Integer),
            Scalar::Float => s.parse::<f64>().ok().map(toml::Value::Float),
            Scalar::Bool => s.parse::<bool>().ok().map(toml::Value::Boolean),
            Scalar::Str => None,
        };
        typed.unwrap_or_else(|| toml::Value::String(s.to_owned()))
    };
    let v = match opt.shape {
        Shape::Flag { .. } => toml::Value::Boolean(texts.first()?.parse().ok()?),
        Shape::Count => toml::Value::Integer(texts.first()?.parse().ok()?),
        Shape::Trailing => toml::Value::String(texts.join(" ")),
        Shape::One | Shape::Positional => one(texts.first()?),
        _ => toml::Value::Array(texts.iter().map(|t| one(t)).collect()),
    };
    Some(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, CommandFactory, Parser, Subcommand};
    use serde::Deserialize;

    #[derive(Debug, Parser)]
    #[command(name = "idemwatch")]
    struct TestCli {
        /// More logs.
        #[arg(short, long, action = ArgAction::Count, global = true)]
        verbose: u8,
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
        #[arg(short, long, alias = "iface")]
        interface: Option<String>,
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

    /// Some of the options above as plain serde fields (the options' own adapters are
    /// `cli`'s, tested there).
    #[derive(Debug, Default, Deserialize)]
    #[serde(default, rename_all = "kebab-case")]
    struct FileValues {
        interface: Option<String>,
        promisc: bool,
        watch_methods: Option<Vec<String>>,
        max_keys: Option<usize>,
    }

    const FILE: &str = "/etc/idemwatch/idemwatch.toml";

    fn loaded(text: &str) -> Result<Settings, ConfigFileError> {
        load(&TestCli::command(), "live", Path::new(FILE), text)
    }

    fn values(text: &str) -> Result<FileValues, ConfigFileError> {
        loaded(text)?.values()
    }

    #[test]
    fn settings_have_their_key_option_and_line() {
        let s = loaded("# idemwatch\ninterface = \"eth0\"\n\nmax_keys = 5\nverbose = 2\n").unwrap();
        let got: Vec<_> = s
            .settings
            .iter()
            .map(|s| (s.key.as_str(), s.option.as_str(), s.arg_id.as_str(), s.line))
            .collect();
        assert_eq!(
            got,
            [
                ("interface", "interface", "interface", 2),
                ("max_keys", "max-keys", "max_keys", 4),
                ("verbose", "verbose", "verbose", 5),
            ]
        );
        // An alias is the option's key.
        let s = loaded("iface = \"eth1\"\n").unwrap();
        assert_eq!(s.settings[0].option, "interface");
        assert_eq!(
            s.values::<FileValues>().unwrap().interface.as_deref(),
            Some("eth1")
        );
    }

    #[test]
    fn unknown_key_names_key_line_and_suggestion() {
        let text = "# idemwatch\ninterface = \"eth0\"\n\nmax-key = 5\n";
        let e = loaded(text).unwrap_err();
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
        let e = loaded("bogus = 1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/idemwatch/idemwatch.toml line 1: unknown key 'bogus'; 'idemwatch live \
             --help' lists the options"
        );
        // An option of another subcommand is unknown here.
        let e = loaded("files = [\"a.pcap\"]\n").unwrap_err();
        assert!(matches!(e, ConfigFileError::UnknownKey { .. }), "{e:?}");
        // A section.
        let e = loaded("\n[live]\nmax-keys = 5\n").unwrap_err();
        assert_eq!(e.line(), Some(2));
        assert!(e.to_string().contains("no [sections]"), "{e}");
    }

    #[test]
    fn wrong_type_names_key_line_and_expectation() {
        let e = loaded("interface = \"eth0\"\n\nwindow = 24\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/idemwatch/idemwatch.toml line 3: 'window' must be a string like \"24h\", \
             not an integer"
        );
        let e = loaded("promisc = \"yes\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/idemwatch/idemwatch.toml line 1: 'promisc' must be true or false, not a string"
        );
        let e = loaded("max-keys = true\n").unwrap_err();
        assert!(
            e.to_string()
                .ends_with("'max-keys' must be an integer like 1000000, not a boolean"),
            "{e}"
        );
        let e = loaded("window = 1979-05-27\n").unwrap_err();
        assert!(e.to_string().ends_with("not a date-time"), "{e}");
        let e = loaded("window = { a = 1 }\n").unwrap_err();
        assert!(e.to_string().contains("not a table"), "{e}");
        // An array element of the wrong type: the element's line.
        let e = loaded("watch-methods = [\n  \"POST\",\n  7,\n]\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/idemwatch/idemwatch.toml line 3: 'watch-methods' must be an array of strings \
             like [\"POST\", \"PATCH\"], or a string with the values separated by ',', and this \
             element is an integer"
        );
        let e = loaded("missing-key = false\n").unwrap_err();
        assert!(
            e.to_string().ends_with(
                "'missing-key' must be a string (one of \"learned\", \"all\", \"off\"), not a boolean"
            ),
            "{e}"
        );
        let e = loaded("buffer-size = true\n").unwrap_err();
        assert!(
            e.to_string().ends_with(
                "'buffer-size' must be an integer or a string like \"64M\", not a boolean"
            ),
            "{e}"
        );
        let e = loaded("verbose = 300\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/idemwatch/idemwatch.toml line 1: 'verbose' must be an integer from 0 to 255 \
             (how many times --verbose is given), not 300"
        );
    }

    #[test]
    fn a_value_serde_refuses_names_key_and_line() {
        let e = values("interface = \"eth0\"\n\nmax_keys = \"lots\"\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/etc/idemwatch/idemwatch.toml line 3: 'max_keys': "),
            "{e}"
        );
        let e = values("max-keys = -1\n").unwrap_err();
        assert_eq!(e.line(), Some(1), "{e}");
    }

    #[test]
    fn snake_case_keys_are_the_same_keys() {
        let v = values("max_keys = 7\nwatch_methods = [\"PUT\"]\n").unwrap();
        assert_eq!(v.max_keys, Some(7));
        assert_eq!(v.watch_methods, Some(vec!["PUT".to_owned()]));
        let e = loaded("max-keys = 1\nmax_keys = 2\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/idemwatch/idemwatch.toml line 2: 'max_keys' sets the same option as \
             'max-keys' on line 1"
        );
    }

    #[test]
    fn toml_syntax_error_has_a_line() {
        let e = loaded("interface = \"eth0\"\nmax-keys = = 5\n").unwrap_err();
        assert!(
            matches!(e, ConfigFileError::Syntax { line: 2, .. }),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("/etc/idemwatch/idemwatch.toml line 2, column "),
            "{e}"
        );
        let e = loaded("a = 1\nwindow = \"24h\nb = 2\n").unwrap_err();
        assert_eq!(e.line(), Some(2), "{e}");
        let e = loaded("window = \"1h\"\nwindow = \"2h\"\n").unwrap_err();
        assert_eq!(e.line(), Some(2), "{e}");
    }

    #[test]
    fn settings_that_set_nothing_are_not_present() {
        let s = loaded("promisc = false\nverbose = 0\nwatch-methods = []\n").unwrap();
        assert!(s.settings.iter().all(|s| !s.present), "{s:?}");
        let s = loaded("promisc = true\nverbose = 2\nwatch-methods = \"POST\"\n").unwrap();
        assert!(s.settings.iter().all(|s| s.present), "{s:?}");
        assert!(values("promisc = true\n").unwrap().promisc);
    }

    #[test]
    fn keys_missing_from_the_file_keep_the_structs_default() {
        let v = values("interface = \"eth0\"\n").unwrap();
        assert!(!v.promisc);
        assert_eq!(v.max_keys, None);
        // Settings removed (the command line won) are not read.
        let mut s = loaded("interface = \"eth0\"\nmax-keys = 5\n").unwrap();
        s.retain(|s| s.arg_id != "max_keys");
        assert_eq!(s.settings.len(), 1);
        assert_eq!(s.values::<FileValues>().unwrap().max_keys, None);
    }

    #[test]
    fn config_and_positional_keys_are_refused() {
        let e = loaded("config = \"/x.toml\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/idemwatch/idemwatch.toml line 1: 'config' cannot be set in the configuration \
             file; give it on the command line"
        );
        let e = load(
            &TestCli::command(),
            "read",
            Path::new(FILE),
            "files = [\"a.pcap\"]\n",
        )
        .unwrap_err();
        assert!(matches!(e, ConfigFileError::NotAllowed { .. }), "{e:?}");
        let e = load(&TestCli::command(), "nope", Path::new(FILE), "").unwrap_err();
        assert!(matches!(e, ConfigFileError::NoSubcommand(_)), "{e:?}");
    }

    #[test]
    fn effective_toml_round_trips() {
        let text = "interface = \"eth0\"\nwatch-methods = \"POST,PUT\"\n\
                    require-key = [\"/a\", \"/b\"]\nfilter = [\"tcp\", \"port\", \"80\"]\n\
                    promisc = true\nmax-keys = 0x10\nbuffer-size = \"128M\"\n";
        let cli = ["idemwatch", "-vv", "live", "--max-keys", "500"];
        let file = loaded(text).unwrap();
        let matches = TestCli::command().try_get_matches_from(cli).unwrap();
        let out = effective_toml(&TestCli::command(), "live", &matches, Some(&file), &[]);
        let v: toml::Table = toml::from_str(&out).expect(&out);
        assert_eq!(v["interface"].as_str(), Some("eth0"), "{out}");
        assert_eq!(v["max-keys"].as_integer(), Some(500), "{out}");
        assert_eq!(v["promisc"].as_bool(), Some(true), "{out}");
        assert_eq!(v["threads"].as_integer(), Some(4), "{out}");
        assert_eq!(v["verbose"].as_integer(), Some(2), "{out}");
        assert_eq!(v["filter"].as_str(), Some("tcp port 80"), "{out}");
        assert_eq!(v["buffer-size"].as_str(), Some("128M"), "{out}");
        assert!(
            out.contains("\nwatch-methods = [\"POST\", \"PUT\"]\n"),
            "{out}"
        );
        assert_eq!(v["require-key"].as_array().map(Vec::len), Some(2), "{out}");
        assert!(!v.contains_key("window"), "{out}");
        assert!(!v.contains_key("config"), "{out}");
        assert!(out.contains("threads = 4  # default\n"), "{out}");
        assert!(out.contains("# window = \"24h\"  # default\n"), "{out}");
        assert!(out.contains("# output: not set\n"), "{out}");
        assert!(out.contains("buffer-size = \"128M\"\n"), "{out}");
        assert!(
            out.contains("# state-dir: not set (default: none, not saved)\n"),
            "{out}"
        );
        // The output, fed back as a file, gives the same options.
        let again = loaded(&out).unwrap();
        let bare = TestCli::command()
            .try_get_matches_from(["idemwatch", "live", "-i", "eth0"])
            .unwrap();
        let out2 = effective_toml(&TestCli::command(), "live", &bare, Some(&again), &[]);
        assert_eq!(toml::from_str::<toml::Table>(&out2).unwrap(), v, "{out2}");
        // With sources.
        let out =
            effective_toml_with_sources(&TestCli::command(), "live", &matches, Some(&file), &[]);
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
        let out = effective_toml(&TestCli::command(), "live", sub, None, &[]);
        assert!(out.contains("\ninterface = \"eth0\"\n"), "{out}");
        assert_eq!(
            out,
            effective_toml(&TestCli::command(), "live", &m, None, &[])
        );
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

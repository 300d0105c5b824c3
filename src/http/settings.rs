//! The HTTP stage's settings: what it extracts from messages and how much it keeps.
//!
//! Takes nothing; gives [`Settings`] (key headers, redacted query parameters) and [`Limits`]
//! (bounds on heads, headers, pending requests and kept bodies), each with its defaults. How
//! they are set (command line, configuration file) is the caller's business.

/// Query parameters whose values never leave the process.
pub const DEFAULT_REDACTED_PARAMS: &[&str] = &[
    "api_key",
    "apikey",
    "access_token",
    "token",
    "password",
    "secret",
    "client_secret",
    "signature",
    "sig",
];

/// Header names that carry an idempotency key.
pub const DEFAULT_KEY_HEADERS: &[&str] = &["idempotency-key", "x-idempotency-key"];

/// What the HTTP layer extracts from messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Lower-case header names carrying idempotency keys.
    pub key_headers: Vec<String>,
    /// Lower-case query parameter names whose values are replaced by `REDACTED`.
    pub redacted_params: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            key_headers: DEFAULT_KEY_HEADERS.iter().map(|s| s.to_string()).collect(),
            redacted_params: DEFAULT_REDACTED_PARAMS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// Memory bounds of the HTTP layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest message head (start line and headers).
    pub max_head_bytes: usize,
    /// Most header lines in one message.
    pub max_headers: usize,
    /// Requests awaiting a response on one connection.
    pub max_pending_requests: usize,
    /// Content-decoded request body kept for the canonical hash; larger bodies fall back to the
    /// hash of the decoded bytes.
    pub max_canon_body_bytes: usize,
    /// Content-decoded bytes produced from one body at most (decompression bombs).
    pub max_decoded_body_bytes: u64,
    /// Response body kept to find a top-level JSON `id`.
    pub max_response_body_bytes: usize,
}

impl Limits {
    /// The defaults, as a constant so that the command line's help can show them.
    pub const DEFAULT: Limits = Limits {
        max_head_bytes: 64 * 1024,
        max_headers: 128,
        max_pending_requests: 256,
        max_canon_body_bytes: 64 * 1024,
        max_decoded_body_bytes: 16 << 20,
        max_response_body_bytes: 64 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

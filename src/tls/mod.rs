//! TLS decryption with the session secrets clients and servers log (NSS key-log format,
//! RFC 9850), between reassembly and HTTP: the pieces, not yet wired into the pipeline.
//!
//! - [`keylog`]: key-log lines in, secrets by client random out (bounded; bad lines counted).
//! - [`record`]: a reassembled direction's bytes in, TLS records and handshake messages out.
//! - [`crypto`]: key schedules (TLS 1.2 PRF, TLS 1.3 HKDF-Expand-Label) and AEAD record
//!   decryption.
//!
//! A key log is a credential: nothing here prints a secret, and the types holding one do not
//! show it in their `Debug`.

pub mod conn;
pub mod crypto;
pub mod keylog;
pub mod record;
#[cfg(test)]
mod testing;

use std::io;

/// Everything that can go wrong while encoding or decoding pipecache's bytes at rest.
///
/// Corruption is reported with its own variants (never as I/O), so callers can count it and
/// turn it into a named error for the user.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Reading or writing a chunk file failed at the operating-system level.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, including the path when there is one.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The bytes were written by a newer pipecache than this one.
    #[error(
        "{what} has format version {found}, this pipecache reads up to version {supported}; upgrade pipecache"
    )]
    UnsupportedVersion {
        /// Which structure carried the version.
        what: &'static str,
        /// Version found in the bytes.
        found: u32,
        /// Highest version this build understands.
        supported: u32,
    },
    /// The bytes do not decode: bad magic, bad checksum, impossible lengths, bad CBOR.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// Which structure was being decoded.
        what: &'static str,
        /// What exactly was wrong.
        detail: String,
    },
    /// Fewer bytes than the structure needs (for example a frame cut short by a crash).
    #[error("truncated {what}: need {needed} bytes, have {available}")]
    Truncated {
        /// Which structure was being decoded.
        what: &'static str,
        /// Bytes required.
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// A value could not be encoded (should only happen on a programming error).
    #[error("cannot encode {what}: {detail}")]
    Encode {
        /// Which structure was being encoded.
        what: &'static str,
        /// The encoder's message.
        detail: String,
    },
}

impl FormatError {
    /// A copy with the same variant and fields (an I/O error keeps its kind and message), for
    /// handing one failure to several waiters.
    pub fn duplicate(&self) -> Self {
        match self {
            Self::Io { context, source } => Self::Io {
                context: context.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Self::UnsupportedVersion {
                what,
                found,
                supported,
            } => Self::UnsupportedVersion {
                what,
                found: *found,
                supported: *supported,
            },
            Self::Corrupt { what, detail } => Self::Corrupt {
                what,
                detail: detail.clone(),
            },
            Self::Truncated {
                what,
                needed,
                available,
            } => Self::Truncated {
                what,
                needed: *needed,
                available: *available,
            },
            Self::Encode { what, detail } => Self::Encode {
                what,
                detail: detail.clone(),
            },
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn corrupt(what: &'static str, detail: impl Into<String>) -> Self {
        Self::Corrupt {
            what,
            detail: detail.into(),
        }
    }

    /// True when the error means the bytes are damaged or from an unknown future format, as
    /// opposed to the operating system failing to read them.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Self::Corrupt { .. } | Self::Truncated { .. })
    }
}

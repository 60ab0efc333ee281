//! [`Detail`]: the message of a configuration or migration error, and the error
//! underneath it, arranged so that an error reporter prints each text once.

/// The message of an [`Error::Config`](crate::Error::Config) or [`Error::Migration`](crate::Error::Migration), for the caller, and
/// the error underneath it when there is one (its [`std::error::Error::source`]; the
/// message does not repeat it). Reads as a `str`: `detail.contains("DATABASE_URL")`.
pub struct Detail {
    message: String,
    error: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    /// Whether `message` already says what `error` says: then the chain goes on with
    /// `error`'s own source, so that no reporter prints the same text twice.
    message_says_error: bool,
}

impl Detail {
    /// A message with no error underneath.
    pub fn new(message: impl Into<String>) -> Self {
        Detail {
            message: message.into(),
            error: None,
            message_says_error: false,
        }
    }

    /// A message about `source`, which stays available as the error's source.
    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Detail {
            message: message.into(),
            error: Some(source.into()),
            message_says_error: false,
        }
    }

    /// `error`'s own text as the message, `error` kept: the source is `error`'s source.
    pub fn from_error(
        error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        let error = error.into();
        Detail {
            message: error.to_string(),
            error: Some(error),
            message_says_error: true,
        }
    }

    /// The error this detail is about, if any.
    pub fn error(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.error.as_deref()
    }

    /// The message.
    pub fn as_str(&self) -> &str {
        &self.message
    }

    /// The next error of the chain: the error this detail is about, or, when the
    /// message already says it, that error's source.
    pub fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let error = self.error.as_deref()?;
        if self.message_says_error {
            error.source()
        } else {
            Some(error as &(dyn std::error::Error + 'static))
        }
    }
}

impl std::ops::Deref for Detail {
    type Target = str;

    fn deref(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::fmt::Debug for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Detail");
        d.field("message", &self.message);
        if let Some(error) = &self.error {
            d.field("error", error);
        }
        d.finish()
    }
}

impl From<String> for Detail {
    fn from(message: String) -> Self {
        Detail::new(message)
    }
}

impl From<&str> for Detail {
    fn from(message: &str) -> Self {
        Detail::new(message)
    }
}

impl PartialEq<str> for Detail {
    fn eq(&self, other: &str) -> bool {
        self.message == other
    }
}

impl PartialEq<&str> for Detail {
    fn eq(&self, other: &&str) -> bool {
        self.message == *other
    }
}

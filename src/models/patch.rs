//! The shape every patch of a row a user owns (a task, a habit) is validated into: the
//! new values of its own columns, and the version the update is conditional on. The
//! repositories bind it as it is (`repo::owned`): a new table writes its columns and
//! nothing else.

use crate::error::{Error, Result};

use super::validate;

/// A validated patch: the changes of the table's own columns (`C`), the version the
/// row must still have for the update to apply (`None`: any version), and the id of
/// this write, stored in the row's write mark by a table that has one
/// (`OwnedTable::WRITE_MARK`; `None` for a patch without one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Versioned<C> {
    pub columns: C,
    pub expected_version: Option<i32>,
    pub write_id: Option<uuid::Uuid>,
}

impl<C> Versioned<C> {
    /// The patch with `write_id` as the id of its write.
    pub(crate) fn marked(self, write_id: uuid::Uuid) -> Versioned<C> {
        Versioned {
            write_id: Some(write_id),
            ..self
        }
    }
}

/// The patch whose `expected_version` is checked first (at least 1), then its columns
/// by `columns`.
///
/// # Errors
/// [`Error::Validation`] of `expected_version`, or the first error of `columns`.
pub(crate) fn versioned<C>(
    expected_version: Option<i32>,
    columns: impl FnOnce() -> Result<C>,
) -> Result<Versioned<C>> {
    if expected_version.is_some_and(|v| v < 1) {
        return Err(Error::validation("expected_version", "must be at least 1"));
    }
    Ok(Versioned {
        columns: columns()?,
        expected_version,
        write_id: None,
    })
}

/// The change of a nullable column, as the update binds it: whether to set the column
/// at all, and its new value (`None`: NULL).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NullableChange<T> {
    pub set: bool,
    pub value: Option<T>,
}

impl<T> From<Option<Option<T>>> for NullableChange<T> {
    /// A patch field: `None` leaves the column, `Some(None)` clears it.
    fn from(field: Option<Option<T>>) -> Self {
        NullableChange {
            set: field.is_some(),
            value: field.flatten(),
        }
    }
}

/// The new value of a required text column (`None`: unchanged), checked as
/// [`validate::required_text`] checks it.
pub(crate) fn required_text<'a>(
    field: &str,
    value: Option<&'a str>,
    max: usize,
) -> Result<Option<&'a str>> {
    value
        .map(|v| validate::required_text(field, v, max))
        .transpose()
}

/// The change of a nullable text column (`None` leaves it, `Some(None)` clears it),
/// checked as [`validate::optional_text`] checks it.
pub(crate) fn optional_text<'a>(
    field: &str,
    value: Option<&'a Option<String>>,
    max: usize,
) -> Result<NullableChange<&'a str>> {
    let checked = value
        .map(|v| validate::optional_text(field, v.as_deref(), max))
        .transpose()?;
    Ok(checked.into())
}

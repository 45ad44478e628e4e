//! Errors as a person reads them: what failed (its subject in backticks),
//! each cause once, and what to do next as the last line, `hint: …`.
//!
//! A hint is data, never text inside a message: error types give theirs
//! through [`Hint`], and [`hinted`] or [`ResultExt::hint`] attach one to
//! any other error. [`render`] is the one function that turns an error into
//! the text the terminal shows; [`one_line`] is the same for a log line.
//!
//! Messages never hold `{source}`: the cause is printed by the renderer,
//! once, after the message, as `message: cause`.

use std::error::Error as StdError;
use std::fmt;

/// An error type that knows what the person should do next.
pub trait Hint {
    /// The advice, without the `hint: ` prefix: one sentence naming the next
    /// command or setting.
    fn hint(&self) -> String;
}

/// An error with a hint attached from outside: a message of a command, or a
/// library error given advice that only the caller can give.
#[derive(Debug)]
pub struct Hinted {
    error: anyhow::Error,
    hint: String,
}

impl Hinted {
    pub fn hint(&self) -> &str {
        &self.hint
    }
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only the outermost message: the causes follow in the chain.
        fmt::Display::fmt(&self.error, f)
    }
}

impl StdError for Hinted {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.error.source()
    }
}

/// A new error: `message`, and what to do about it.
pub fn hinted(message: impl fmt::Display, hint: impl fmt::Display) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        error: anyhow::anyhow!("{message}"),
        hint: hint.to_string(),
    })
}

/// Attaching a hint to the error of a `Result`.
pub trait ResultExt<T> {
    /// On error, this hint (replacing any the error had).
    fn hint(self, hint: impl fmt::Display) -> anyhow::Result<T>;
    /// On error, the message `context` over the cause, and this hint.
    fn context_hint(self, context: impl fmt::Display, hint: impl fmt::Display)
    -> anyhow::Result<T>;
}

impl<T, E> ResultExt<T> for Result<T, E>
where
    E: Into<anyhow::Error>,
{
    fn hint(self, hint: impl fmt::Display) -> anyhow::Result<T> {
        self.map_err(|error| {
            anyhow::Error::new(Hinted {
                error: error.into(),
                hint: hint.to_string(),
            })
        })
    }

    fn context_hint(
        self,
        context: impl fmt::Display,
        hint: impl fmt::Display,
    ) -> anyhow::Result<T> {
        self.map_err(|error| {
            let error: anyhow::Error = error.into();
            anyhow::Error::new(Hinted {
                error: error.context(context.to_string()),
                hint: hint.to_string(),
            })
        })
    }
}

/// An error type whose [`Hint`] [`render`] finds in any chain. Each module
/// registers its own types beside their `Hint` implementation:
///
/// ```ignore
/// inventory::submit!(crate::error::Registered::of::<GitError>());
/// ```
///
/// so this module names none of them and sits below all of them. The test
/// `hints::every_hint_is_registered_and_renders` finds each `impl Hint`
/// in the source and fails for one that is not registered here.
#[derive(Debug)]
pub struct Registered {
    /// The type's path, as `std::any::type_name` gives it.
    pub name: fn() -> &'static str,
    hint: fn(&(dyn StdError + 'static)) -> Option<String>,
}

impl Registered {
    pub const fn of<T: Hint + StdError + 'static>() -> Self {
        Registered {
            name: std::any::type_name::<T>,
            hint: |cause| cause.downcast_ref::<T>().map(Hint::hint),
        }
    }
}

inventory::collect!(Registered);

/// Every registered error type, for tests and `shop` itself.
pub fn registered() -> impl Iterator<Item = &'static Registered> {
    inventory::iter::<Registered>.into_iter()
}

/// The hint of one error of a chain, if its type has one. The outermost
/// hint of a chain wins: it was given closest to what the person did.
fn hint_of(cause: &(dyn StdError + 'static)) -> Option<String> {
    if let Some(hinted) = cause.downcast_ref::<Hinted>() {
        return Some(hinted.hint.clone());
    }
    registered().find_map(|registered| (registered.hint)(cause))
}

/// The message and each cause once, joined by `: `; a cause whose text the
/// message already holds is not repeated.
pub fn message(error: &(dyn StdError + 'static)) -> String {
    let mut text = String::new();
    let mut cause = Some(error);
    while let Some(current) = cause {
        let part = current.to_string();
        let part = part.trim_end();
        if !part.is_empty() && !text.contains(part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(part);
        }
        cause = current.source();
    }
    text
}

/// The advice of an error: the outermost hint in its chain.
pub fn hint(error: &(dyn StdError + 'static)) -> Option<String> {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(hint) = hint_of(current) {
            return Some(hint);
        }
        cause = current.source();
    }
    None
}

/// What the terminal shows after `error: `: the message with its causes,
/// then the hint as the last line.
pub fn render(error: &anyhow::Error) -> String {
    let error: &(dyn StdError + 'static) = error.as_ref();
    let mut text = message(error);
    if let Some(hint) = hint(error) {
        text.push_str("\nhint: ");
        text.push_str(&hint);
    }
    text
}

/// An error on one line, for a log: `message: cause (hint: …)`.
pub fn one_line(error: &(dyn StdError + 'static)) -> String {
    let mut text = message(error).replace('\n', " ");
    if let Some(hint) = hint(error) {
        text.push_str(" (hint: ");
        text.push_str(&hint);
        text.push(')');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read `{path}`")]
    struct Read {
        path: String,
        source: std::io::Error,
    }

    fn missing() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory")
    }

    #[test]
    fn the_cause_prints_once_and_the_hint_last() {
        let error: anyhow::Result<()> = Err(Read {
            path: "notes.md".into(),
            source: missing(),
        })
        .hint("give a readable text file to --notes");
        assert_eq!(
            render(&error.unwrap_err()),
            "cannot read `notes.md`: No such file or directory\n\
             hint: give a readable text file to --notes"
        );
    }

    #[test]
    fn context_goes_before_the_cause() {
        let error = Err::<(), _>(missing())
            .context_hint("cannot read `--notes` file `x`", "give a readable file")
            .unwrap_err();
        assert_eq!(
            render(&error),
            "cannot read `--notes` file `x`: No such file or directory\nhint: give a readable file"
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("`{0}` is empty")]
    struct Empty(&'static str);

    impl Hint for Empty {
        fn hint(&self) -> String {
            format!("set `{}` to a value", self.0)
        }
    }

    inventory::submit!(Registered::of::<Empty>());

    #[test]
    fn typed_errors_give_their_hint_through_context() {
        let error = anyhow::Error::new(Empty("GITHUB_TOKEN")).context("cannot start");
        assert_eq!(
            render(&error),
            "cannot start: `GITHUB_TOKEN` is empty\nhint: set `GITHUB_TOKEN` to a value"
        );
        assert_eq!(
            one_line(error.as_ref()),
            "cannot start: `GITHUB_TOKEN` is empty (hint: set `GITHUB_TOKEN` to a value)"
        );
    }

    #[test]
    fn the_outermost_hint_wins() {
        let inner = hinted("Stripe refused", "inner advice");
        let outer: anyhow::Result<()> = Err(inner).hint("outer advice");
        assert_eq!(
            render(&outer.unwrap_err()),
            "Stripe refused\nhint: outer advice"
        );
    }
}

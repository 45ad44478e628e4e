//! A rendered message made whole: its parts, its headers (`Message-ID`,
//! `List-Unsubscribe`, `List-Id`), and a file attached.

use lettre::Message;
use lettre::message::{Mailbox, MultiPart, SinglePart, header};

use super::{MailError, Rendered};

/// A whole message: both parts, a `Message-ID`, and for notices a
/// one-click `List-Unsubscribe`.
pub fn compose(
    from: &str,
    to: &str,
    rendered: &Rendered,
    message_id: &str,
    unsubscribe: Option<&str>,
) -> Result<Message, MailError> {
    let from: Mailbox = from.parse().map_err(|error| MailError::Address {
        address: from.to_owned(),
        message: format!("{error}"),
    })?;
    let to: Mailbox = to.parse().map_err(|error| MailError::Address {
        address: to.to_owned(),
        message: format!("{error}"),
    })?;
    let mut builder = Message::builder()
        .from(from)
        .to(to)
        .subject(&rendered.subject)
        .message_id(Some(message_id.to_owned()));
    if let Some(url) = unsubscribe {
        builder = builder
            .header(ListUnsubscribe(format!("<{url}>")))
            .header(ListUnsubscribePost("List-Unsubscribe=One-Click".into()));
    }
    builder
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(header::ContentType::TEXT_PLAIN)
                        .body(rendered.text.clone()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(header::ContentType::TEXT_HTML)
                        .body(rendered.html.clone()),
                ),
        )
        .map_err(|error| MailError::Build(error.to_string()))
}

/// A file as an attachment beside a short text: what Send to Kindle mails
/// (Amazon reads the attachment and ignores the rest).
pub struct Attached<'a> {
    pub subject: &'a str,
    pub text: &'a str,
    pub file_name: &'a str,
    pub content_type: &'a str,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Attached<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attached")
            .field("subject", &self.subject)
            .field("file_name", &self.file_name)
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// A message from `from` to `to` carrying `attached`.
pub fn compose_attached(
    from: &str,
    to: &str,
    attached: Attached<'_>,
    message_id: &str,
) -> Result<Message, MailError> {
    let mailbox = |address: &str| -> Result<Mailbox, MailError> {
        address.parse().map_err(|error| MailError::Address {
            address: address.to_owned(),
            message: format!("{error}"),
        })
    };
    let content_type = header::ContentType::parse(attached.content_type)
        .map_err(|error| MailError::Build(error.to_string()))?;
    Message::builder()
        .from(mailbox(from)?)
        .to(mailbox(to)?)
        .subject(attached.subject)
        .message_id(Some(message_id.to_owned()))
        .multipart(
            MultiPart::mixed()
                .singlepart(
                    SinglePart::builder()
                        .header(header::ContentType::TEXT_PLAIN)
                        .body(attached.text.to_owned()),
                )
                .singlepart(
                    lettre::message::Attachment::new(attached.file_name.to_owned())
                        .body(attached.bytes, content_type),
                ),
        )
        .map_err(|error| MailError::Build(error.to_string()))
}

macro_rules! text_header {
    ($name:ident, $header:literal) => {
        #[derive(Debug, Clone)]
        struct $name(String);

        impl header::Header for $name {
            fn name() -> header::HeaderName {
                header::HeaderName::new_from_ascii_str($header)
            }

            fn parse(text: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Ok($name(text.to_owned()))
            }

            fn display(&self) -> header::HeaderValue {
                header::HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}
text_header!(ListUnsubscribe, "List-Unsubscribe");
text_header!(ListUnsubscribePost, "List-Unsubscribe-Post");
text_header!(ListId, "List-Id");

/// A message of a list (a post): [`compose`]'s, with the list's `List-Id`
/// (RFC 2919) beside its one-click unsubscribe.
pub fn compose_to_list(
    from: &str,
    to: &str,
    rendered: &Rendered,
    message_id: &str,
    unsubscribe: &str,
    list_id: &str,
) -> Result<Message, MailError> {
    let mut message = compose(from, to, rendered, message_id, Some(unsubscribe))?;
    message.headers_mut().set(ListId(format!("<{list_id}>")));
    Ok(message)
}

/// A `Message-ID` in the shop's domain.
pub fn message_id(local: &str, from: &str) -> String {
    let domain = from
        .rsplit_once('@')
        .map_or("localhost", |(_, domain)| domain.trim_end_matches('>'));
    format!("<{local}@{domain}>")
}

//! Where mail goes: lettre's file, SMTP (a pool of our own) and sendmail
//! transports, as shop.toml says.

use std::path::{Path, PathBuf};

use lettre::{AsyncTransport, Message};

use super::MailError;
use crate::net;
use crate::secret::Secret;
use crate::store::{MailTransport, Settings, SmtpSecurity};

/// Where mail goes, as shop.toml says.
pub enum Mailer {
    File(lettre::AsyncFileTransport<lettre::Tokio1Executor>, PathBuf),
    Smtp(SmtpPool),
    Sendmail(lettre::AsyncSendmailTransport<lettre::Tokio1Executor>),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mailer::File(_, dir) => write!(f, "Mailer::File({})", dir.display()),
            Mailer::Smtp(_) => f.write_str("Mailer::Smtp"),
            Mailer::Sendmail(_) => f.write_str("Mailer::Sendmail"),
        }
    }
}

impl Mailer {
    /// The transport of `settings`; SMTP's password from `password`.
    pub fn new(
        settings: &Settings,
        store_root: &Path,
        password: Option<Secret>,
    ) -> Result<Mailer, MailError> {
        net::install_crypto_provider();
        Ok(match &settings.mail.transport {
            MailTransport::File { outbox } => {
                let dir = if outbox.is_absolute() {
                    outbox.clone()
                } else {
                    store_root.join(outbox)
                };
                std::fs::create_dir_all(&dir).map_err(|source| MailError::Io {
                    path: dir.clone(),
                    source,
                })?;
                Mailer::File(lettre::AsyncFileTransport::new(&dir), dir)
            }
            MailTransport::Smtp {
                host,
                port,
                security,
                user,
            } => {
                let credentials = match user {
                    None => None,
                    Some(user) => {
                        let password = password.ok_or_else(|| {
                            MailError::Setup(format!(
                                "`mail.smtp.user` is `{user}` but `SHOP_SMTP_PASSWORD` is not set"
                            ))
                        })?;
                        Some(lettre::transport::smtp::authentication::Credentials::new(
                            user.clone(),
                            password.expose().to_owned(),
                        ))
                    }
                };
                Mailer::Smtp(SmtpPool {
                    host: host.clone(),
                    port: *port,
                    security: *security,
                    credentials,
                    idle: std::sync::Mutex::new(Vec::new()),
                })
            }
            MailTransport::Sendmail { command } => {
                Mailer::Sendmail(lettre::AsyncSendmailTransport::new_with_command(command))
            }
        })
    }

    /// Sends `message`; `Ok` only once the transport accepted it.
    pub async fn send(&self, message: Message) -> Result<(), MailError> {
        match self {
            Mailer::File(transport, _) => transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|error| MailError::Send(error.to_string())),
            Mailer::Smtp(pool) => pool
                .send(&message)
                .await
                .map_err(|error| MailError::Send(error.to_string())),
            Mailer::Sendmail(transport) => transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|error| MailError::Send(error.to_string())),
        }
    }
}

/// How long one SMTP exchange (connecting, or sending one message) may take.
const SMTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A connection idle longer than this is checked (`NOOP`) before reuse.
const SMTP_IDLE_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// SMTP over connections shop opens itself and keeps for the next message.
/// By hand rather than lettre's `AsyncSmtpTransport` because that one
/// leaves Nagle's algorithm on: the end of each message then waits for the
/// server's delayed ACK (40 ms on Linux), which held `shop notify` to 166
/// messages a second on loopback. Here the socket has `TCP_NODELAY`;
/// lettre still speaks the protocol (EHLO, STARTTLS, AUTH, the envelope).
/// Implicit TLS (port 465) connects through lettre, without the option.
pub struct SmtpPool {
    host: String,
    port: u16,
    security: SmtpSecurity,
    credentials: Option<lettre::transport::smtp::authentication::Credentials>,
    idle: std::sync::Mutex<
        Vec<(
            lettre::transport::smtp::client::AsyncSmtpConnection,
            std::time::Instant,
        )>,
    >,
}

/// Says where, never the credentials.
impl std::fmt::Debug for SmtpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SmtpPool({}:{}, {:?})",
            self.host, self.port, self.security
        )
    }
}

impl SmtpPool {
    async fn connect(
        &self,
    ) -> Result<lettre::transport::smtp::client::AsyncSmtpConnection, String> {
        self.connect_inner()
            .await
            .map_err(|error| error.to_string())
    }

    async fn connect_inner(
        &self,
    ) -> Result<lettre::transport::smtp::client::AsyncSmtpConnection, Box<dyn std::error::Error>>
    {
        use lettre::transport::smtp::authentication::Mechanism;
        use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
        use lettre::transport::smtp::extension::ClientId;
        let hello = ClientId::default();
        let mut connection = match self.security {
            SmtpSecurity::Tls => {
                AsyncSmtpConnection::connect_tokio1(
                    (self.host.as_str(), self.port),
                    Some(SMTP_TIMEOUT),
                    &hello,
                    Some(TlsParameters::new(self.host.clone())?),
                    None,
                )
                .await?
            }
            SmtpSecurity::StartTls | SmtpSecurity::None => {
                let stream = tokio::time::timeout(
                    SMTP_TIMEOUT,
                    tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
                )
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))
                .and_then(|connected| connected)
                .and_then(|stream| stream.set_nodelay(true).map(|()| stream))
                .map_err(|error| {
                    format!("cannot connect to `{}:{}`: {error}", self.host, self.port)
                })?;
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &hello).await?
            }
        };
        if self.security == SmtpSecurity::StartTls {
            connection
                .starttls(TlsParameters::new(self.host.clone())?, &hello)
                .await?;
        }
        if let Some(credentials) = &self.credentials {
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await?;
        }
        Ok(connection)
    }

    /// Sends one message on an idle connection, or a new one; the
    /// connection is kept only when the exchange went through.
    async fn send(&self, message: &Message) -> Result<(), String> {
        let reused = self.idle.lock().map(|mut idle| idle.pop()).ok().flatten();
        let mut connection = match reused {
            Some((mut connection, since)) => {
                if since.elapsed() < SMTP_IDLE_CHECK || connection.test_connected().await {
                    connection
                } else {
                    self.connect().await?
                }
            }
            None => tokio::time::timeout(SMTP_TIMEOUT, self.connect())
                .await
                .map_err(|_| format!("no answer from `{}:{}` in time", self.host, self.port))??,
        };
        let sent = tokio::time::timeout(
            SMTP_TIMEOUT,
            connection.send(message.envelope(), &message.formatted()),
        )
        .await
        .map_err(|_| format!("no answer from `{}:{}` in time", self.host, self.port))?;
        sent.map_err(|error| error.to_string())?;
        if let Ok(mut idle) = self.idle.lock() {
            idle.push((connection, std::time::Instant::now()));
        }
        Ok(())
    }
}

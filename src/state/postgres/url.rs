//! Where the database is: a `postgres://` URL read into the driver's
//! settings, and TLS (`sslmode=require` and stronger) with the server's
//! certificate and name verified against the roots the URL names.

use crate::net;
use crate::secret::Secret;
use crate::state::StateError;

/// Where the database is, and whether the way there is TLS.
pub struct Target {
    pub(super) config: tokio_postgres::Config,
    /// Whose certificates a server must prove itself with, when the URL
    /// asks for TLS. Read when connecting, not here: the URL is read once to
    /// check it before anything starts, and again to connect.
    pub(super) tls: Option<Roots>,
}

/// The authorities a TLS connection trusts.
#[derive(Debug)]
pub(super) enum Roots {
    /// The system's (`rustls-native-certs`).
    System,
    /// Those in a PEM file (`sslrootcert=PATH`).
    File(String),
}

impl std::fmt::Debug for Target {
    /// Never the URL: it may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Reads a PostgreSQL URL (`postgres://…`, or `key=value` pairs), with
/// libpq's TLS options: `sslmode=require` (or `verify-ca`, `verify-full`)
/// and `sslmode=prefer` connect over TLS, and `sslrootcert=PATH` names the
/// PEM file of the authorities a server's certificate must come from (the
/// system's, without it or with `sslrootcert=system`; `sslrootcert` alone
/// means `verify-full`). Every TLS connection verifies the certificate and
/// the host name, as libpq's `verify-full`: a server that cannot prove it
/// is the one named is refused, whatever the mode. Without `sslmode` (or
/// with `disable`), no TLS, as before this was built: Debian's own server
/// offers TLS with a certificate no authority signed, and a store that
/// reached it in the clear would otherwise stop reaching it.
pub fn parse_url(url: &Secret) -> Result<Target, StateError> {
    let not_postgres = || StateError::NotPostgres {
        name: url.name().to_owned(),
    };
    let text = url.expose();
    let is_url = text.starts_with("postgres://") || text.starts_with("postgresql://");
    let (config, tls) = if is_url {
        // tokio-postgres knows neither `sslrootcert` nor the `verify-*`
        // modes: they are taken out here, the other parameters handed over
        // byte for byte (it decodes `%XX` and not `+`, so no form decoder
        // may touch them).
        let (base, query) = text.split_once('?').unwrap_or((text, ""));
        let mut kept: Vec<&str> = Vec::new();
        let (mut mode, mut roots) = (None, None);
        let decode = |value: &str| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map(|value| value.into_owned())
                .map_err(|_| not_postgres())
        };
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", value)) => mode = Some(decode(value)?),
                Some(("sslrootcert", value)) => roots = Some(decode(value)?),
                Some((key @ ("sslcert" | "sslkey" | "sslpassword" | "sslcrl"), _)) => {
                    return Err(StateError::TlsSettings {
                        message: format!("`{key}` is not supported (no client certificates)"),
                    });
                }
                _ => kept.push(pair),
            }
        }
        let (driver_mode, tls) = match (mode.as_deref(), &roots) {
            (None, None) | (Some("disable"), _) => ("disable", false),
            (Some("prefer" | "allow"), _) => ("prefer", true),
            (None, Some(_)) | (Some("require" | "verify-ca" | "verify-full"), _) => {
                ("require", true)
            }
            (Some(other), _) => {
                return Err(StateError::TlsSettings {
                    message: format!("`sslmode={other}` is not a mode PostgreSQL knows"),
                });
            }
        };
        let sslmode = format!("sslmode={driver_mode}");
        kept.push(&sslmode);
        let config = format!("{base}?{}", kept.join("&"))
            .parse::<tokio_postgres::Config>()
            .map_err(|_| not_postgres())?;
        let roots = match roots.as_deref() {
            None | Some("system") => Roots::System,
            Some(path) => Roots::File(path.to_owned()),
        };
        (config, tls.then_some(roots))
    } else {
        let config = text
            .parse::<tokio_postgres::Config>()
            .map_err(|_| not_postgres())?;
        let tls = config.get_ssl_mode() == tokio_postgres::config::SslMode::Require;
        (config, tls.then_some(Roots::System))
    };
    Ok(Target { config, tls })
}

/// A TLS client that trusts the authorities of `roots`.
pub(super) fn tls_config(roots: &Roots) -> Result<rustls::ClientConfig, StateError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut store = rustls::RootCertStore::empty();
    match roots {
        Roots::System => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // One certificate the system holds and rustls cannot read
                // leaves the others usable.
                let _ = store.add(cert);
            }
        }
        Roots::File(path) => {
            let unreadable = |why: String| StateError::TlsSettings {
                message: format!("cannot read the certificates in `{path}`: {why}"),
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|error| unreadable(error.to_string()))?;
            for cert in certs {
                let cert = cert.map_err(|error| unreadable(error.to_string()))?;
                store
                    .add(cert)
                    .map_err(|error| unreadable(error.to_string()))?;
            }
            if store.is_empty() {
                return Err(unreadable("it holds no certificate".into()));
            }
        }
    }
    net::install_crypto_provider();
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(store)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_postgres::config::SslMode;

    fn target(url: &str) -> Target {
        parse_url(&Secret::new("SHOP_STATE_URL", url).unwrap()).unwrap()
    }

    #[test]
    fn a_url_reaches_the_driver_as_written_but_for_its_tls_options() {
        let plain = target(
            "postgres://shop:p%40ss@db.internal:5433/shop\
             ?options=-c%20statement_timeout%3D5s&application_name=a+b",
        );
        assert_eq!(plain.config.get_options(), Some("-c statement_timeout=5s"));
        assert_eq!(plain.config.get_application_name(), Some("a+b"));
        assert_eq!(plain.config.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(plain.config.get_ports(), [5433]);
        assert_eq!(plain.config.get_ssl_mode(), SslMode::Disable);
        assert!(plain.tls.is_none());

        let verified =
            target("postgres://shop@db.internal/shop?sslmode=verify-full&connect_timeout=3");
        assert_eq!(verified.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(
            verified.config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(3))
        );
        assert!(verified.tls.is_some());

        let preferred = target("postgres://shop@db.internal/shop?sslmode=prefer");
        assert_eq!(preferred.config.get_ssl_mode(), SslMode::Prefer);
        assert!(preferred.tls.is_some());
        assert!(
            target("postgres://shop@db.internal/shop?sslmode=disable")
                .tls
                .is_none()
        );

        let client_certificate = parse_url(
            &Secret::new(
                "SHOP_STATE_URL",
                "postgres://shop@db.internal/shop?sslmode=require&sslcert=/etc/shop.crt",
            )
            .unwrap(),
        );
        assert!(matches!(
            client_certificate,
            Err(StateError::TlsSettings { message }) if message.starts_with("`sslcert`")
        ));

        // `key=value` pairs: TLS when they require it.
        assert!(
            target("host=db.internal user=shop sslmode=require")
                .tls
                .is_some()
        );
        assert!(target("host=db.internal user=shop").tls.is_none());
    }
}

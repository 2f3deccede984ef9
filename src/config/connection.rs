//! Where and how to reach Nomad, from the connection flags and Nomad's own environment variables.

use super::error::ConfigError;
use crate::cli::NomadArgs;
use crate::nomad::{Address, ConnectionSettings, Secret, TlsSettings, TokenFile, TokenSource};

/// The connection settings: the address, the token (the token file wins over `NOMAD_TOKEN`),
/// the region, TLS and basic auth.
pub(super) fn connection(args: NomadArgs) -> Result<ConnectionSettings, ConfigError> {
    // The token file wins: it is this program's own, more specific option, and NOMAD_TOKEN is
    // often set in an operator's environment for other tools.
    let token = match (args.token_file, args.token) {
        (Some(path), _) => TokenSource::File(TokenFile::new(path)),
        (None, Some(token)) if !token.expose().is_empty() => TokenSource::Static(token),
        _ => TokenSource::None,
    };
    let basic_auth = args
        .http_auth
        .map(|auth| split_basic_auth(&auth))
        .transpose()?;
    Ok(ConnectionSettings {
        address: Address::parse(&args.address)?,
        token,
        region: args.region.filter(|r| !r.is_empty()),
        tls: TlsSettings {
            ca_cert: args.ca_cert,
            ca_path: args.ca_path,
            client_cert: args.client_cert,
            client_key: args.client_key,
            server_name: args.tls_server_name.filter(|n| !n.is_empty()),
            skip_verify: args.tls_skip_verify,
        },
        basic_auth,
    })
}

/// `user[:password]`, as Nomad reads `NOMAD_HTTP_AUTH`.
fn split_basic_auth(auth: &Secret) -> Result<(String, Option<Secret>), ConfigError> {
    let (user, password) = match auth.expose().split_once(':') {
        Some((user, password)) => (user, Some(Secret::new(password.to_owned()))),
        None => (auth.expose(), None),
    };
    if user.is_empty() {
        return Err(ConfigError::BadHttpAuth);
    }
    Ok((user.to_owned(), password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_splits_user_and_password() {
        let (user, password) = split_basic_auth(&Secret::new("ops:p:w".to_owned())).expect("valid");
        assert_eq!(user, "ops");
        assert_eq!(password.expect("password").expose(), "p:w");
        assert!(split_basic_auth(&Secret::new(":nouser".to_owned())).is_err());
    }
}

//! The AWS SDK's configuration: one HTTPS client on rustls with ring (the TLS stack of the
//! rest of the workspace), credentials and region from the environment.
//!
//! Lambda hands every function its credentials (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and region (`AWS_REGION`) in environment
//! variables for the life of the execution environment, so aws-config's provider chain
//! (profiles, SSO, STS web identity, ECS, IMDS) is not used: it only added code and build
//! time. `AWS_ENDPOINT_URL` points the SDK at a local stand-in (moto) in devstack.

use aws_sdk_sqs::config::{BehaviorVersion, Credentials};
use aws_smithy_http_client::{
    Builder,
    tls::{Provider, rustls_provider::CryptoMode},
};
pub use aws_types::SdkConfig;
use aws_types::{
    region::Region,
    sdk_config::{SharedCredentialsProvider, SharedHttpClient},
};

use crate::config::{ConfigError, optional_var, required_var};

/// The SDK's HTTP client: hyper 1 over rustls with ring, the operating system's roots
/// (Amazon Linux's bundle in Lambda). Plain `http://` endpoints (moto) work too.
pub fn http_client() -> SharedHttpClient {
    Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The SDK configuration of a Lambda function (or devstack): credentials and region from
/// the environment, and `AWS_ENDPOINT_URL` when set.
pub fn sdk_config_from_env() -> Result<SdkConfig, ConfigError> {
    let credentials = Credentials::new(
        required_var("AWS_ACCESS_KEY_ID")?,
        required_var("AWS_SECRET_ACCESS_KEY")?,
        optional_var("AWS_SESSION_TOKEN")?,
        None,
        "environment",
    );
    let region = optional_var("AWS_REGION")?
        .or(optional_var("AWS_DEFAULT_REGION")?)
        .ok_or(ConfigError::Missing("AWS_REGION"))?;
    Ok(sdk_config(
        credentials,
        region,
        optional_var("AWS_ENDPOINT_URL")?.as_deref(),
    ))
}

/// An SDK configuration from explicit parts (tests point it at moto).
pub fn sdk_config(
    credentials: Credentials,
    region: impl Into<String>,
    endpoint_url: Option<&str>,
) -> SdkConfig {
    let builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http_client())
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .region(Region::new(region.into()));
    match endpoint_url {
        Some(url) => builder.endpoint_url(url).build(),
        None => builder.build(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_https_endpoint_is_reached_through_a_tls_handshake() {
        // A server that answers in plain text: the client must start a TLS handshake and
        // fail it (no network is needed to prove the HTTPS client is wired in).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut hello = [0u8; 5];
            socket.read_exact(&mut hello).await.expect("client hello");
            let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            hello
        });
        let config = sdk_config(
            Credentials::new("test", "test", None, None, "test"),
            "us-east-1",
            Some(&format!("https://{address}")),
        );
        let client = aws_sdk_sqs::Client::new(&config);

        let error = client
            .list_queues()
            .send()
            .await
            .expect_err("not a TLS server");

        // The first record the server saw is a TLS handshake record (type 22, version 3.x).
        let hello = server.await.expect("server task");
        assert_eq!(&hello[..2], &[22, 3], "{hello:?}");
        let text = format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&error));
        assert!(
            matches!(error, aws_sdk_sqs::error::SdkError::DispatchFailure(_)),
            "{text}"
        );
    }

    #[test]
    fn the_sdk_config_carries_region_endpoint_client_and_credentials() {
        let config = sdk_config(
            Credentials::new("test", "test", None, None, "test"),
            "eu-west-1",
            Some("https://sqs.eu-west-1.amazonaws.com"),
        );

        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(
            config.endpoint_url(),
            Some("https://sqs.eu-west-1.amazonaws.com")
        );
        assert!(config.http_client().is_some());
        assert!(config.credentials_provider().is_some());
        assert!(config.behavior_version().is_some());
    }
}

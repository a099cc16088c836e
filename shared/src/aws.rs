//! The AWS SDK's configuration: the workspace's one HTTPS client (reqwest on rustls with
//! ring), credentials and region from the environment.
//!
//! Lambda hands every function its credentials (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and region (`AWS_REGION`) in environment
//! variables for the life of the execution environment, so aws-config's provider chain
//! (profiles, SSO, STS web identity, ECS, IMDS) is not used: it only added code and build
//! time. `AWS_ENDPOINT_URL` points the SDK at a local stand-in (moto) in devstack.
//!
//! The SDK's requests go through reqwest, the client every function already links for Meta,
//! OpenAI and Google, rather than `aws-smithy-http-client`'s own hyper client: that one
//! always compiles in HTTP/2 (the `h2` crate, 0.6–0.75 MiB of code in each function) and
//! the OS root store loader, and the two services used here (Secrets Manager, SQS) answer
//! over HTTP/1.1 (docs/benchmarks.md, "Under 10 MB").

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use aws_sdk_sqs::config::{BehaviorVersion, Credentials};
use aws_smithy_runtime_api::client::{
    http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
    },
    orchestrator::{HttpRequest, HttpResponse},
    result::ConnectorError,
    runtime_components::RuntimeComponents,
};
use aws_smithy_types::body::SdkBody;
pub use aws_types::SdkConfig;
use aws_types::{
    region::Region,
    sdk_config::{SharedCredentialsProvider, SharedHttpClient},
};

use crate::config::{ConfigError, optional_var, required_var};

/// The SDK's HTTP client: reqwest over rustls with ring and the public web roots (those of
/// [`crate::http::client`]). Plain `http://` endpoints (moto) work too.
pub fn http_client() -> SharedHttpClient {
    SharedHttpClient::new(ReqwestHttpClient::default())
}

/// Hands the SDK one connector per distinct timeout setting (the SDK asks for a connector
/// on every request; each one keeps its reqwest client, and so its connection pool).
#[derive(Debug, Default)]
struct ReqwestHttpClient {
    connectors: Mutex<Vec<(TimeoutKey, SharedHttpConnector)>>,
}

type TimeoutKey = (Option<Duration>, Option<Duration>);

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, connector)) = connectors.iter().find(|(k, _)| *k == key) {
            return connector.clone();
        }
        let connector = SharedHttpConnector::new(ReqwestConnector::new(key));
        connectors.push((key, connector.clone()));
        connector
    }
}

/// One reqwest client with the SDK's connect and read timeouts.
#[derive(Debug)]
struct ReqwestConnector {
    client: Result<reqwest::Client, Arc<reqwest::Error>>,
}

impl ReqwestConnector {
    fn new((connect_timeout, read_timeout): TimeoutKey) -> Self {
        let mut builder = reqwest::Client::builder();
        if let Some(timeout) = connect_timeout {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(timeout) = read_timeout {
            builder = builder.read_timeout(timeout);
        }
        Self {
            client: builder.build().map_err(Arc::new),
        }
    }
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = match &self.client {
            Ok(client) => client.clone(),
            Err(error) => {
                let error = ConnectorError::other(error.to_string().into(), None);
                return HttpConnectorFuture::ready(Err(error));
            }
        };
        let request = match to_reqwest(request) {
            Ok(request) => request,
            Err(error) => return HttpConnectorFuture::ready(Err(error)),
        };
        HttpConnectorFuture::new(async move {
            let mut response = client.execute(request).await.map_err(connector_error)?;
            let status = response.status();
            let headers = std::mem::take(response.headers_mut());
            // The services used here answer with small JSON documents: read them whole.
            let body = response.bytes().await.map_err(connector_error)?;
            let mut response = http::Response::new(SdkBody::from(body));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// The SDK's request as reqwest's. Its bodies are in memory (JSON documents); a streaming
/// body (which neither Secrets Manager nor SQS sends) is refused.
fn to_reqwest(request: HttpRequest) -> Result<reqwest::Request, ConnectorError> {
    let request = request
        .try_into_http1x()
        .map_err(|e| ConnectorError::user(e.into()))?;
    let (parts, body) = request.into_parts();
    let body = body
        .bytes()
        .map(bytes::Bytes::copy_from_slice)
        .ok_or_else(|| ConnectorError::user("streaming request bodies are not supported".into()))?;
    reqwest::Request::try_from(http::Request::from_parts(parts, body))
        .map_err(|e| ConnectorError::user(e.into()))
}

/// Sorts reqwest's failures the way the SDK's retry policy reads them: timeouts and
/// connection failures are transient.
fn connector_error(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        ConnectorError::timeout(error.into())
    } else if error.is_connect() || error.is_request() || error.is_body() {
        ConnectorError::io(error.into())
    } else if error.is_builder() {
        ConnectorError::user(error.into())
    } else {
        ConnectorError::other(error.into(), None)
    }
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

    /// An SQS client on `endpoint` through [`http_client`], with one attempt and the
    /// given read timeout.
    fn one_attempt_client(endpoint: &str, read_timeout: Duration) -> aws_sdk_sqs::Client {
        let config = sdk_config(
            Credentials::new("test", "test", None, None, "test"),
            "us-east-1",
            Some(endpoint),
        );
        let config = aws_sdk_sqs::config::Builder::from(&config)
            .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
                    .read_timeout(read_timeout)
                    .build(),
            )
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    #[tokio::test]
    async fn a_silent_server_is_a_timeout_and_a_closed_port_an_io_error() {
        // Both are what the SDK's retry policy treats as transient.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let silent = listener.local_addr().expect("address");
        let hold = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(socket);
        });
        let error = one_attempt_client(&format!("http://{silent}"), Duration::from_millis(300))
            .list_queues()
            .send()
            .await
            .expect_err("no answer");
        let text = format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&error));
        match &error {
            aws_sdk_sqs::error::SdkError::DispatchFailure(failure) => {
                assert!(failure.is_timeout(), "{text}");
            }
            other => panic!("expected a dispatch failure, got {other:?}"),
        }
        hold.abort();

        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("address")
        };
        let error = one_attempt_client(&format!("http://{closed}"), Duration::from_secs(5))
            .list_queues()
            .send()
            .await
            .expect_err("nothing listens");
        let text = format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&error));
        match &error {
            aws_sdk_sqs::error::SdkError::DispatchFailure(failure) => {
                assert!(failure.is_io(), "{text}");
            }
            other => panic!("expected a dispatch failure, got {other:?}"),
        }
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

//! Fetching a media header's sample for submission: the size cap is enforced while the body
//! streams in (a declared `Content-Length` over it is refused before reading), and the type
//! is checked twice, by the declared content type and by the file's first bytes.

use bytes::{Bytes, BytesMut};
use shared::domain::HeaderType;

/// Size caps of header media, by type (Meta's limits by default), and whether hosts on
/// private networks may be fetched.
#[derive(Debug, Clone, Copy)]
pub struct MediaLimits {
    pub image_bytes: usize,
    pub video_bytes: usize,
    pub document_bytes: usize,
    /// `false` in Lambda: a `media_url` whose host resolves to a loopback, private,
    /// link-local or otherwise non-public address is refused, so a tenant cannot make the
    /// function fetch from inside its network. devstack and tests serve media on loopback.
    pub allow_private_hosts: bool,
}

impl Default for MediaLimits {
    fn default() -> Self {
        Self {
            image_bytes: 5 * 1024 * 1024,
            video_bytes: 16 * 1024 * 1024,
            document_bytes: 100 * 1024 * 1024,
            allow_private_hosts: false,
        }
    }
}

/// Whether an address is one a public media URL may point at: not loopback, private,
/// link-local, shared (CGNAT), benchmarking, reserved, multicast or documentation space, and
/// no IPv6 form that carries such an IPv4 address (mapped, compatible, NAT64, 6to4).
fn is_public(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || (a == 192 && b == 0 && c == 0))
        }
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                std::net::Ipv4Addr::new(
                    (hi >> 8) as u8,
                    (hi & 0xff) as u8,
                    (lo >> 8) as u8,
                    (lo & 0xff) as u8,
                )
            };
            let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0];
            let six_to_four = s[0] == 0x2002;
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || v6.to_ipv4().is_some_and(|v4| !is_public(v4.into()))
                || (nat64 && !is_public(embedded(s[6], s[7]).into()))
                || (six_to_four && !is_public(embedded(s[1], s[2]).into())))
        }
    }
}

/// A DNS resolver that answers only public addresses, so the address connected to is the
/// one checked: a host that resolves to a public address for the check and a private one
/// for the fetch (DNS rebinding) gets no address at all.
#[derive(Debug, Clone, Copy)]
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<std::net::SocketAddr> =
                found.filter(|address| is_public(address.ip())).collect();
            if public.is_empty() {
                return Err("the host resolves to no public address".into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The client that fetches media samples in Lambda: redirects are not followed (the host
/// check must hold for the host fetched), every name resolves to public addresses only, and
/// slow hosts time out.
pub fn media_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(std::sync::Arc::new(PublicOnly))
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(20))
        .build()
}

/// Refuses a URL whose host resolves to a non-public address (see
/// [`MediaLimits::allow_private_hosts`]).
async fn check_host(url: &str) -> Result<(), MediaError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| MediaError::Unreachable(e.to_string()))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| MediaError::Unreachable("the URL has no host".to_owned()))?;
    let port = parsed.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| MediaError::Unreachable(format!("its host does not resolve: {e}")))?;
    for address in addresses {
        if !is_public(address.ip()) {
            return Err(MediaError::PrivateHost);
        }
    }
    Ok(())
}

impl MediaLimits {
    fn cap(&self, kind: HeaderType) -> usize {
        match kind {
            HeaderType::Video => self.video_bytes,
            HeaderType::Document => self.document_bytes,
            _ => self.image_bytes,
        }
    }
}

/// A fetched sample, ready for the resumable upload.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Bytes,
    /// `image/jpeg`, `image/png`, `video/mp4`, `application/pdf`.
    pub content_type: &'static str,
    pub file_name: String,
}

/// Why a sample was refused; each completes "header.media_url …".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaError {
    Unreachable(String),
    PrivateHost,
    Status(u16),
    WrongType {
        found: String,
        expected: &'static str,
    },
    TooLarge {
        cap: usize,
    },
}

impl std::fmt::Display for MediaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(why) => write!(f, "could not be fetched: {why}"),
            Self::Status(status) => write!(f, "answered HTTP {status}"),
            Self::WrongType { found, expected } => {
                write!(f, "is {found}, but this header takes {expected}")
            }
            Self::PrivateHost => write!(f, "points at a private or local network address"),
            Self::TooLarge { cap } => write!(
                f,
                "is larger than this header allows ({} MB)",
                cap / (1024 * 1024)
            ),
        }
    }
}

impl std::error::Error for MediaError {}

fn expected(kind: HeaderType) -> &'static str {
    match kind {
        HeaderType::Video => "video/mp4",
        HeaderType::Document => "application/pdf",
        _ => "image/jpeg or image/png",
    }
}

/// The media type of `bytes` by their signature, when it is one a header takes.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if bytes.len() >= 8 && &bytes[4..8] == b"ftyp" {
        Some("video/mp4")
    } else {
        None
    }
}

fn allowed(kind: HeaderType, content_type: &str) -> bool {
    match kind {
        HeaderType::Image => matches!(content_type, "image/jpeg" | "image/png"),
        HeaderType::Video => content_type == "video/mp4",
        HeaderType::Document => content_type == "application/pdf",
        _ => false,
    }
}

/// Fetches `url` for a `kind` header.
pub async fn fetch(
    http: &reqwest::Client,
    url: &str,
    kind: HeaderType,
    limits: MediaLimits,
) -> Result<Fetched, MediaError> {
    let cap = limits.cap(kind);
    if !limits.allow_private_hosts {
        check_host(url).await?;
    }
    let mut response = http
        .get(url)
        .send()
        .await
        .map_err(|e| MediaError::Unreachable(e.without_url().to_string()))?;
    if !response.status().is_success() {
        return Err(MediaError::Status(response.status().as_u16()));
    }
    let declared = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if !allowed(kind, &declared) {
        return Err(MediaError::WrongType {
            found: if declared.is_empty() {
                "of no declared type".to_owned()
            } else {
                declared
            },
            expected: expected(kind),
        });
    }
    if response
        .content_length()
        .is_some_and(|length| usize::try_from(length).map_or(true, |l| l > cap))
    {
        return Err(MediaError::TooLarge { cap });
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| MediaError::Unreachable(e.without_url().to_string()))?
    {
        if body.len() + chunk.len() > cap {
            return Err(MediaError::TooLarge { cap });
        }
        body.extend_from_slice(&chunk);
    }
    let content_type = match sniff(&body) {
        Some(found) if allowed(kind, found) => found,
        found => {
            return Err(MediaError::WrongType {
                found: format!("{} by its content", found.unwrap_or("unrecognised")),
                expected: expected(kind),
            });
        }
    };
    let file_name = url
        .rsplit('/')
        .next()
        .map(|name| name.split(['?', '#']).next().unwrap_or_default())
        .filter(|name| !name.is_empty())
        .unwrap_or("header")
        .to_owned();
    Ok(Fetched {
        bytes: body.freeze(),
        content_type,
        file_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "198.18.0.1",
            "198.19.255.255",
            "240.0.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "2002:7f00:1::",
        ] {
            let ip: std::net::IpAddr = private.parse().expect(private);
            assert!(!is_public(ip), "{private} must be refused");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            let ip: std::net::IpAddr = public.parse().expect(public);
            assert!(is_public(ip), "{public} must pass");
        }
    }

    #[tokio::test]
    async fn the_media_client_connects_to_no_private_address_even_by_name() {
        let client = media_client().expect("client");
        let refused = client
            .get("http://localhost:9/sample.jpg")
            .send()
            .await
            .expect_err("localhost resolves to loopback only");
        let chain = format!("{:?}", refused);
        assert!(chain.contains("no public address"), "{chain}");
    }
}

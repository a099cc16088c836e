//! Fetching a media header's sample for submission: the size cap is enforced while the body
//! streams in (a declared `Content-Length` over it is refused before reading), and the type
//! is checked twice, by the declared content type and by the file's first bytes.

use bytes::{Bytes, BytesMut};
use shared::domain::HeaderType;

/// Size caps of header media, by type (Meta's limits by default).
#[derive(Debug, Clone, Copy)]
pub struct MediaLimits {
    pub image_bytes: usize,
    pub video_bytes: usize,
    pub document_bytes: usize,
}

impl Default for MediaLimits {
    fn default() -> Self {
        Self {
            image_bytes: 5 * 1024 * 1024,
            video_bytes: 16 * 1024 * 1024,
            document_bytes: 100 * 1024 * 1024,
        }
    }
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
